"""Role permissions of the advanced resources (tenancy/api/permissions.py has the shared ones)."""

from __future__ import annotations

from typing import Any

from rest_framework import permissions
from rest_framework.request import Request

from tenancy.api.permissions import is_read, view_tenant
from tenancy.models import MembershipRole

# The roles the ceo_briefings policy shows briefings to.
BRIEFING_ROLES = frozenset({MembershipRole.CEO, MembershipRole.OWNER})


class IsBriefingWriterOrReadOnly(permissions.BasePermission):
    """Only the shop's CEO and owner write briefings.

    The policy hides briefings from other roles (an empty list, 404 on an id) and would refuse
    their writes with a database error; a write is refused here, before any lookup."""

    message = "Only the shop's CEO or owner may write briefings."

    def has_permission(self, request: Request, view: Any) -> bool:
        return is_read(request, view) or view_tenant(view).member_role in BRIEFING_ROLES
