"""Resolve the tenant context of an API request (shop, subject, member role) once, check the
role permissions against it and run the view inside its scope."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import connection, models, transaction
from django.db.models.options import Options
from django.http import HttpRequest, HttpResponseBase
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework import authentication, exceptions, permissions
from rest_framework.request import Request

from tenancy.models import Shop, ShopMembership, User, shop_domain_validator
from tenancy.scope import Scope, enter_scope, shop_scope

from .filters import refuse_repeated_parameters
from .permissions import IsShopWriterOrReadOnly
from .throttling import failed_authentication_gate

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


class ShopHeaderMissing(exceptions.APIException):
    status_code = 400
    default_detail = f"The {SHOP_HEADER} header is required: name the shop this request acts for."
    default_code = "shop_header_missing"


class NotAShopMember(exceptions.PermissionDenied):
    default_code = "not_a_member"


@dataclass(frozen=True)
class ShopHeader:
    """The `X-Shop-Domain` header, parsed and validated once per request."""

    raw: str
    # The lowercased domain when the header holds a valid one, else None.
    domain: str | None

    @classmethod
    def of(cls, request: HttpRequest | Request) -> ShopHeader:
        raw = request.headers.get(SHOP_HEADER, "").strip()
        try:
            shop_domain_validator(raw.lower())
        except DjangoValidationError:
            return cls(raw=raw, domain=None)
        return cls(raw=raw, domain=raw.lower())

    def required_domain(self, *, required: bool) -> str | None:
        """The shop the request names; a missing header is an error when `required`, an
        invalid one always is."""
        if not self.raw:
            if required:
                raise ShopHeaderMissing()
            return None
        if self.domain is None:
            raise exceptions.ValidationError({SHOP_HEADER: [f"{self.raw!r} is not a shop domain."]})
        return self.domain


@dataclass(frozen=True)
class MembershipLookup:
    """What the user's statement read about the shop the header names: the caller's role
    there (None: no membership of an active shop)."""

    header: ShopHeader
    role: str | None


@dataclass(frozen=True)
class TokenAuth:
    """`request.auth` of a bearer token: its claims, and the membership read with the user."""

    claims: dict[str, Any]
    membership: MembershipLookup


@dataclass(frozen=True)
class TenantContext:
    """Who an API request acts as and for which shop, resolved once per request (after
    authentication): the shop (None for resources scoped by the subject alone, when no header
    names one), the token's subject and the caller's role in the shop."""

    shop: str | None
    subject: str
    member_role: str | None

    @property
    def required_shop(self) -> str:
        """The shop, on resources that require one (`shop_required`): resolving refused the
        request without it."""
        if self.shop is None:
            raise RuntimeError("this resource is scoped by the subject alone: it has no shop")
        return self.shop

    def scope(self) -> Scope:
        return shop_scope(shop=self.shop or "", subject=self.subject, member_role=self.member_role)


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


def active_user(subject: uuid.UUID, *, shop: str | None) -> tuple[User, str | None] | None:
    """The active user `subject`, and their role in `shop` read in the same statement (a request
    needs both: one round trip instead of two); None when there is no such active user."""
    sql, fields = _user_sql(with_role=shop is not None)
    with connection.cursor() as cursor:
        cursor.execute(sql, {"user": subject, "shop": shop})
        row = cursor.fetchone()
    if row is None:
        return None
    user = User.from_db(connection.alias, list(fields), row[: len(fields)])
    return user, (row[len(fields)] if shop is not None else None)


def tenant_context(request: Request, *, required: bool) -> TenantContext:
    """The request's tenant context: the shop named by the header and the caller's role there
    (read as app_owner, before any scope exists: memberships are a directory table without
    RLS). A bearer token's authentication already read the role with the user; a session's
    did not, and it is read now."""
    auth = request.auth
    lookup = auth.membership if isinstance(auth, TokenAuth) else None
    header = lookup.header if lookup is not None else ShopHeader.of(request)
    subject = str(request.user.pk)
    domain = header.required_domain(required=required)
    if domain is None:
        return TenantContext(shop=None, subject=subject, member_role=None)
    if lookup is not None:
        role = lookup.role
    else:
        # Not read with the user (session authentication): the same statement now.
        found = active_user(uuid.UUID(subject), shop=domain)
        role = found[1] if found is not None else None
    if role is None:
        # The same answer whether or not the shop exists: no existence leak.
        raise NotAShopMember(f"You are not a member of shop {domain!r}.")
    return TenantContext(shop=domain, subject=subject, member_role=role)


class TenantScopedViewMixin:
    """Resolve the tenant context once the caller is authenticated, check the role permissions
    and enter the tenant scope.

    The order of the answers is the contract's: 401 (authentication), 429 (throttling, in
    DRF's `initial`), then 400/403 for the shop header and the membership, then 403 from
    `tenant_permission_classes`.

    The view opens the request's transaction itself (instead of ATOMIC_REQUESTS) so that the
    scope provably ends with it: nothing runs between leaving the scope and the commit or
    rollback. The scope's SET LOCAL role and settings then end with the transaction, and
    restoring them first would be one more statement for nothing. Inside an enclosing
    transaction (tests, a caller's atomic block) the transaction is a savepoint, and the scope
    restores what it changed as everywhere else.

    The transaction opens after authentication and throttling, not before: the throttles count
    through their own connection (the `ratelimit` alias), and a request that held a transaction on
    `default` while it waited for that one needed two server connections at once. Behind a
    transaction pooler whose pool is smaller than twice the busy workers, every pooled
    connection was then held by a request waiting for a second: the pool deadlocked (seen with
    3 gunicorn workers on a PgBouncer pool of 2, tests/deploy/test_pgbouncer.py). Now each step
    holds at most one: the user lookup is its own short transaction, the count another.
    """

    # False for resources scoped by the subject alone (feature tours).
    shop_required: bool = True
    # DRF permission classes that need the tenant context (`view.tenant`); DRF's own
    # `permission_classes` run before it is resolved.
    tenant_permission_classes: Sequence[type[permissions.BasePermission]] = (IsShopWriterOrReadOnly,)
    # Actions that only read although they are sent as POST.
    read_actions: tuple[str, ...] = ()
    tenant: TenantContext

    @classmethod
    def as_view(cls, *args: Any, **kwargs: Any) -> Any:
        # `dispatch` opens the transaction; ATOMIC_REQUESTS would wrap it in a second one.
        return transaction.non_atomic_requests(super().as_view(*args, **kwargs))  # type: ignore[misc]

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        with ExitStack() as stack:
            self._scope_stack = stack
            # Inside an enclosing transaction (tests, a caller's atomic block) the connection is
            # held already: the savepoint opens at once, so that an error answered before
            # `initial` (401, 429) rolls back this savepoint rather than the caller's transaction.
            self._in_transaction = connection.in_atomic_block
            if self._in_transaction:
                stack.enter_context(transaction.atomic())
            response: HttpResponseBase = super().dispatch(request, *args, **kwargs)  # type: ignore[misc]
            if self._in_transaction and getattr(response, "exception", False):
                # An error answered by the exception handler: nothing of the request is kept.
                transaction.set_rollback(True)
            return response

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        # An address past its failed-authentication rate is refused before any credentials are
        # checked, whichever authentication class would read them (tenancy/api/throttling.py).
        if authentication.get_authorization_header(request):
            failed_authentication_gate(request)
        # Authentication and throttling first, each in its own short transaction (class docstring).
        super().initial(request, *args, **kwargs)  # type: ignore[misc]
        refuse_repeated_parameters(request, self)  # type: ignore[arg-type]
        if not self._in_transaction:
            self._scope_stack.enter_context(transaction.atomic())
            self._in_transaction = True
        self.tenant = tenant_context(request, required=self.shop_required)
        self.check_tenant_permissions(request)
        self._scope_stack.enter_context(enter_scope(self.tenant.scope(), ends_transaction=True))

    def check_tenant_permissions(self, request: Request) -> None:
        for permission_class in self.tenant_permission_classes:
            permission = permission_class()
            if not permission.has_permission(request, self):  # type: ignore[arg-type]
                self.permission_denied(  # type: ignore[attr-defined]
                    request, message=getattr(permission, "message", None), code=getattr(permission, "code", None)
                )
