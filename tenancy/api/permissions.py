"""Role permissions of tenant resources: DRF permission classes checked once the request's
tenant context is resolved (`TenantScopedViewMixin.tenant_permission_classes`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rest_framework import permissions
from rest_framework.request import Request

from tenancy.models import MembershipRole

if TYPE_CHECKING:
    from .scoping import TenantContext

WRITER_ROLES = frozenset({MembershipRole.OWNER, MembershipRole.CEO, MembershipRole.MEMBER})


def view_tenant(view: Any) -> TenantContext:
    """The tenant context the view resolved (after authentication, before its permissions)."""
    tenant: TenantContext = view.tenant
    return tenant


def is_read(request: Request, view: Any) -> bool:
    """A safe method, or an action the view declares a read although sent as POST (a search
    whose body may carry 1536 floats)."""
    return request.method in permissions.SAFE_METHODS or getattr(view, "action", None) in getattr(
        view, "read_actions", ()
    )


class IsShopWriterOrReadOnly(permissions.BasePermission):
    """Viewers read; owners, CEOs and members also write.

    The caller's own rows (resources whose `owner_fields` include `user`: progress, tours) are
    not shop data: a viewer writes their own too, and the policies limit every read and write
    to the token's subject."""

    message = "Your role in this shop is read-only."

    def has_permission(self, request: Request, view: Any) -> bool:
        if is_read(request, view) or "user" in getattr(view, "owner_fields", ()):
            return True
        tenant = view_tenant(view)
        return tenant.shop is None or tenant.member_role in WRITER_ROLES
