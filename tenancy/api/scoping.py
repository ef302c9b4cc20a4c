"""Resolve the shop a request acts for and run the view inside that tenant scope."""

from __future__ import annotations

import functools
import uuid
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import connection, models, transaction
from django.db.models.options import Options
from django.http import HttpRequest, HttpResponseBase
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework import exceptions, permissions
from rest_framework.request import Request

from tenancy.models import MembershipRole, Shop, ShopMembership, User, shop_domain_validator
from tenancy.scope import Scope, enter_scope, shop_scope

if TYPE_CHECKING:
    # Imported for annotations only: rest_framework.views imports the authentication classes,
    # which import this module.
    from rest_framework.views import APIView

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


# Set on the user by `active_user`: (shop, role or None) of the membership the header names,
# read in the same query as the user.
_MEMBERSHIP_CACHE = "_requested_membership"


def _shop_header(request: HttpRequest | Request) -> tuple[str, str]:
    raw = request.headers.get(SHOP_HEADER, "").strip()
    # --- Hook: Shopify session tokens (shopify/session_tokens.py, issue 16) -----------------
    # A session token names its shop (`dest`); the authenticator keeps it on the request. It
    # wins over the header, and a header naming another shop is refused.
    token_shop: str | None = getattr(request, "shopify_token_shop", None)
    if token_shop:
        if raw and raw.lower() != token_shop:
            raise exceptions.ValidationError(
                {SHOP_HEADER: [f"{raw!r} does not match the session token's shop {token_shop!r}."]}
            )
        return token_shop, token_shop
    # --- End of hook ---------------------------------------------------------------------
    return raw, raw.lower()


def requested_shop(request: HttpRequest | Request) -> str | None:
    """The shop the header names, when it is a valid domain (errors are `resolve_membership`'s)."""
    _, domain = _shop_header(request)
    try:
        shop_domain_validator(domain)
    except DjangoValidationError:
        return None
    return domain


@functools.cache
def _user_sql(*, with_role: bool) -> tuple[str, tuple[str, ...]]:
    """SELECT of an active user by id, with the role of their membership of a given active shop
    as an extra column. Written once from the models' metadata: the ORM would compile the
    same statement (with a subquery) on every request."""
    q = connection.ops.quote_name
    user, member, shop = User._meta, ShopMembership._meta, Shop._meta

    def col(meta: Options[Any], name: str) -> str:
        field = meta.get_field(name)
        assert isinstance(field, models.Field) and field.column
        return q(field.column)

    fields = tuple(f.attname for f in user.concrete_fields)
    columns = ", ".join(f"u.{q(f.column)}" for f in user.concrete_fields)
    role = (
        f", (SELECT m.{col(member, 'role')} FROM {q(member.db_table)} m JOIN {q(shop.db_table)} s "
        f"ON s.{col(shop, 'domain')} = m.{col(member, 'shop')} WHERE m.{col(member, 'user')} = u.{col(user, 'id')} "
        f"AND m.{col(member, 'shop')} = %(shop)s AND s.{col(shop, 'is_active')})"
    )
    sql = (
        f"SELECT {columns}{role if with_role else ''} FROM {q(user.db_table)} u "
        f"WHERE u.{col(user, 'id')} = %(user)s AND u.{col(user, 'is_active')}"
    )
    return sql, fields


def active_user(subject: uuid.UUID, *, shop: str | None) -> User | None:
    """The active user `subject`, with their membership of `shop` read in the same statement (a
    request needs both: one round trip instead of two)."""
    sql, fields = _user_sql(with_role=shop is not None)
    with connection.cursor() as cursor:
        cursor.execute(sql, {"user": subject, "shop": shop})
        row = cursor.fetchone()
    if row is None:
        return None
    user = User.from_db(connection.alias, list(fields), row[: len(fields)])
    if shop is not None:
        setattr(user, _MEMBERSHIP_CACHE, (shop, row[len(fields)]))
    return user


def resolve_membership(request: Request, *, required: bool) -> ShopMembership | None:
    """The caller's membership of the shop named by the header (read as app_owner, before
    any scope exists: memberships are a directory table without RLS)."""
    raw, domain = _shop_header(request)
    if not raw:
        if required:
            raise ShopHeaderMissing()
        return None
    try:
        shop_domain_validator(domain)
    except DjangoValidationError as exc:
        raise exceptions.ValidationError({SHOP_HEADER: [f"{raw!r} is not a shop domain."]}) from exc
    cached: tuple[str, str | None] | None = getattr(request.user, _MEMBERSHIP_CACHE, None)
    if cached is None or cached[0] != domain:
        # Not read with the user (session authentication): the same statement now.
        again = active_user(uuid.UUID(str(request.user.pk)), shop=domain)
        cached = (domain, None) if again is None else getattr(again, _MEMBERSHIP_CACHE)
    role = cached[1]
    if role is None:
        # The same answer whether or not the shop exists: no existence leak.
        raise NotAShopMember(f"You are not a member of shop {domain!r}.")
    # Only the role and the shop are read from it; it is never saved.
    return ShopMembership(user_id=str(request.user.pk), shop_id=domain, role=role)


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

    The view opens the request's transaction itself (instead of ATOMIC_REQUESTS) so that the
    scope provably ends with it: nothing runs between leaving the scope and the commit or
    rollback. The scope's SET LOCAL role and settings then end with the transaction, and
    restoring them first would be one more statement for nothing. Inside an enclosing
    transaction (tests, a caller's atomic block) the transaction is a savepoint, and the scope
    restores what it changed as everywhere else.
    """

    # False for resources scoped by the subject alone (feature tours).
    shop_required: bool = True

    @classmethod
    def as_view(cls, *args: Any, **kwargs: Any) -> Any:
        # `dispatch` opens the transaction; ATOMIC_REQUESTS would wrap it in a second one.
        return transaction.non_atomic_requests(super().as_view(*args, **kwargs))  # type: ignore[misc]

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        with transaction.atomic(), ExitStack() as stack:
            self._scope_stack = stack
            response: HttpResponseBase = super().dispatch(request, *args, **kwargs)  # type: ignore[misc]
            if getattr(response, "exception", False):
                # An error answered by the exception handler: nothing of the request is kept.
                transaction.set_rollback(True)
            return response

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # type: ignore[misc]
        membership = resolve_membership(request, required=self.shop_required)
        request.membership = membership  # type: ignore[attr-defined]
        self.check_role(request)
        scope = self.scope_for(request, membership)
        self._scope_stack.enter_context(enter_scope(scope, ends_transaction=True))

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
