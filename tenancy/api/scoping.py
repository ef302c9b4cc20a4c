"""Resolve the shop a request acts for and run the view inside that tenant scope."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import HttpRequest, HttpResponseBase
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework import exceptions, permissions
from rest_framework.request import Request
from rest_framework.views import APIView

from tenancy.models import MembershipRole, ShopMembership, shop_domain_validator
from tenancy.scope import Scope, enter_scope, shop_scope

SHOP_HEADER = "X-Shop-Domain"
SHOP_HEADER_PARAMETER = OpenApiParameter(
    name=SHOP_HEADER,
    type=OpenApiTypes.STR,
    location=OpenApiParameter.HEADER,
    required=True,
    description="The shop the request acts for, e.g. `demo-1.myshopify.com`. The user must be a member.",
)
OPTIONAL_SHOP_HEADER_PARAMETER = OpenApiParameter(
    name=SHOP_HEADER,
    type=OpenApiTypes.STR,
    location=OpenApiParameter.HEADER,
    required=False,
    description="Optional for this resource: the user's own data is scoped by the token's subject.",
)
WRITER_ROLES = frozenset({MembershipRole.OWNER, MembershipRole.CEO, MembershipRole.MEMBER})


class ShopHeaderMissing(exceptions.APIException):
    status_code = 400
    default_detail = f"The {SHOP_HEADER} header is required: name the shop this request acts for."
    default_code = "shop_header_missing"


class NotAShopMember(exceptions.PermissionDenied):
    default_code = "not_a_member"


def resolve_membership(request: Request, *, required: bool) -> ShopMembership | None:
    """The caller's membership of the shop named by the header (read as app_owner, before
    any scope exists: memberships are a directory table without RLS)."""
    raw = request.headers.get(SHOP_HEADER, "").strip()
    if not raw:
        if required:
            raise ShopHeaderMissing()
        return None
    domain = raw.lower()
    try:
        shop_domain_validator(domain)
    except DjangoValidationError as exc:
        raise exceptions.ValidationError({SHOP_HEADER: [f"{raw!r} is not a shop domain."]}) from exc
    membership = (
        ShopMembership.objects.filter(user_id=str(request.user.pk), shop_id=domain, shop__is_active=True)
        .only("role", "shop_id", "user_id")
        .first()
    )
    if membership is None:
        # The same answer whether or not the shop exists: no existence leak.
        raise NotAShopMember(f"You are not a member of shop {domain!r}.")
    return membership


class IsShopWriterOrReadOnly(permissions.BasePermission):
    """Viewers read; owners, CEOs and members also write."""

    message = "Your role in this shop is read-only."

    def has_permission(self, request: Request, view: APIView) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return True
        membership: ShopMembership | None = getattr(request, "membership", None)
        return membership is None or membership.role in WRITER_ROLES


class TenantScopedViewMixin:
    """Enter the tenant scope once the caller is authenticated and the shop resolved.

    ATOMIC_REQUESTS wraps the view in the request's transaction; the scope's SET LOCAL ROLE
    and settings live inside it and are restored (or rolled back) when the view returns.
    """

    # False for resources scoped by the subject alone (feature tours).
    shop_required: bool = True

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        with ExitStack() as stack:
            self._scope_stack = stack
            return super().dispatch(request, *args, **kwargs)  # type: ignore[misc]

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # type: ignore[misc]
        membership = resolve_membership(request, required=self.shop_required)
        request.membership = membership  # type: ignore[attr-defined]
        self.check_role(request)
        self._scope_stack.enter_context(enter_scope(self.scope_for(request, membership)))

    def check_role(self, request: Request) -> None:
        if "user" in getattr(self, "owner_fields", ()):
            # The caller's own rows (progress, tours) are not shop data: a viewer writes their
            # own too, and the policies limit every read and write to the token's subject.
            return
        permission = IsShopWriterOrReadOnly()
        if not permission.has_permission(request, self):  # type: ignore[arg-type]
            raise exceptions.PermissionDenied(permission.message)

    def scope_for(self, request: Request, membership: ShopMembership | None) -> Scope:
        return shop_scope(
            shop=membership.shop_id if membership else "",
            subject=str(request.user.pk),
            member_role=membership.role if membership else None,
        )
