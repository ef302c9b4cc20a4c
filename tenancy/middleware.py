"""Run staff requests to the Django admin inside the `back_office` scope."""

from __future__ import annotations

from collections.abc import Callable

from django.db import transaction
from django.http import HttpRequest, HttpResponseBase
from django.urls import reverse

from .models import VIEW_ALL_SHOPS, ShopMembership
from .scope import Scope, back_office_scope, enter_scope


class BackOfficeScopeMiddleware:
    """Admin requests by staff run as `back_office`, limited to the staff user's shops.

    The scope is entered inside a transaction that this middleware opens, so ATOMIC_REQUESTS
    nests the view in a savepoint within it and every SET LOCAL ends with the request. Other
    requests pass through untouched: the API enters its own tenant scope once it has
    authenticated the caller and resolved the shop.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response
        self._admin_prefix: str | None = None

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        scope = self.scope_for(request)
        if scope is None:
            return self.get_response(request)
        with transaction.atomic(), enter_scope(scope):
            return self.get_response(request)

    def scope_for(self, request: HttpRequest) -> Scope | None:
        if self._admin_prefix is None:
            self._admin_prefix = reverse("admin:index")
        if not request.path.startswith(self._admin_prefix):
            return None
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated or not user.is_active or not user.is_staff:
            return None
        # "Every shop" is an explicit grant: superuser, or the tenancy.view_all_shops permission.
        # Other staff see the shops they are members of, and no shop once they have none: the
        # absence of memberships must never widen access (the back_office policies read
        # app.staff_shops, where an empty list matches no row).
        if user.is_superuser or user.has_perm(VIEW_ALL_SHOPS):
            return back_office_scope(subject=str(user.pk), shops=None)
        return back_office_scope(subject=str(user.pk), shops=ShopMembership.objects.shop_domains_of(user.pk))
