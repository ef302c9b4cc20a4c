"""The tenant scope: which database role and which shop/subject a transaction acts as.

Row level security policies read `app.current_shop`, `request.jwt.claim.sub` (through
`auth.uid()`) and `app.current_role`. They and the role are set with `set_config(..., true)` (for
`role` the same as `SET LOCAL ROLE`), so they end with the transaction: a pooled or persistent connection
cannot carry one request's shop into the next. A scope also restores the previous role and
settings when it exits, because `SET LOCAL` inside a savepoint survives `RELEASE SAVEPOINT`
and would otherwise leak into the code after a nested scope.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.db import DEFAULT_DB_ALIAS, connections, transaction
from psycopg.pq import TransactionStatus

# The NOLOGIN roles of the bootstrap. `app_owner` may SET ROLE to them but inherits none.
AUTHENTICATED = "authenticated"
ANON = "anon"
BACK_OFFICE = "back_office"
SERVICE_ROLE = "service_role"
SCOPE_ROLES = frozenset({AUTHENTICATED, ANON, BACK_OFFICE, SERVICE_ROLE})

SETTINGS = (
    "app.current_shop",
    "request.jwt.claim.sub",
    "request.jwt.claims",
    "app.current_role",
    "app.staff_shops",
)
# app.staff_shops value for staff who may see every shop.
ALL_SHOPS = "*"


_local = threading.local()


def active_scope(*, using: str = DEFAULT_DB_ALIAS) -> Scope | None:
    """The innermost scope this thread has entered on `using`, if any."""
    stack: list[tuple[str, Scope]] = getattr(_local, "stack", [])
    for alias, scope in reversed(stack):
        if alias == using:
            return scope
    return None


class ScopeError(RuntimeError):
    """A scope was entered where it cannot hold (outside a transaction, unknown role)."""


@dataclass(frozen=True)
class Scope:
    """Who the database should believe is acting: a role, and for tenants a shop and subject."""

    role: str
    shop: str | None = None
    subject: str | None = None
    member_role: str | None = None
    # back_office only: the shops a staff user may see; None means every shop.
    staff_shops: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.role not in SCOPE_ROLES:
            raise ScopeError(f"unknown scope role {self.role!r}; expected one of {sorted(SCOPE_ROLES)}")

    def settings(self) -> tuple[str, ...]:
        claims = json.dumps({"sub": self.subject, "role": self.role}) if self.subject else ""
        staff = ""
        if self.role == BACK_OFFICE:
            staff = ALL_SHOPS if self.staff_shops is None else ",".join(self.staff_shops)
        return (self.shop or "", self.subject or "", claims, self.member_role or "", staff)


def shop_scope(*, shop: str, subject: str | None, member_role: str | None) -> Scope:
    """An API consumer acting for one shop (role `authenticated`)."""
    return Scope(role=AUTHENTICATED, shop=shop, subject=subject, member_role=member_role)


def back_office_scope(*, subject: str | None, shops: tuple[str, ...] | None) -> Scope:
    """Staff in the Django admin (role `back_office`): `shops` are the shops they may see, None
    every shop. Required, so "every shop" is always written out, never a forgotten argument."""
    return Scope(role=BACK_OFFICE, subject=subject, staff_shops=shops)


def service_scope(*, subject: str | None = None, shop: str | None = None) -> Scope:
    """A system job that works across shops (role `service_role`): commands, demo and test data."""
    return Scope(role=SERVICE_ROLE, shop=shop, subject=subject)


# `role` through set_config is SET ROLE (the SQL command sets the same variable; PostgREST
# switches roles this way): one statement sets the role and every setting, with the role
# name as a bound parameter instead of a quoted identifier. 'none' is SET ROLE NONE.
_SET_ALL = ", ".join(["set_config('role', %s, true)", *(f"set_config('{name}', %s, true)" for name in SETTINGS)])
# The previous role and settings are read in the same statement, before it changes them: the
# MATERIALIZED CTE is evaluated before the outer target list that calls set_config.
_ENTER_SQL = (
    "WITH previous AS MATERIALIZED (SELECT current_user::text AS role, "
    + ", ".join(f"coalesce(current_setting('{name}', true), '')" for name in SETTINGS)
    + f") SELECT previous.*, {_SET_ALL} FROM previous"
)
_SET_SQL = f"SELECT {_SET_ALL}"
_NO_ROLE = "none"


@contextmanager
def enter_scope(scope: Scope, *, using: str = DEFAULT_DB_ALIAS, ends_transaction: bool = False) -> Iterator[Scope]:
    """Act as `scope` until the block exits; must run inside `transaction.atomic()`.

    `ends_transaction`: the caller commits or rolls back the transaction as soon as the block
    exits, with nothing in between. If the scope was entered at the transaction's outermost
    level (not in a savepoint), its SET LOCALs end with the transaction and are not restored.
    """
    connection = connections[using]
    if not connection.in_atomic_block:
        raise ScopeError(
            "a tenant scope must be entered inside a transaction (transaction.atomic() or "
            "ATOMIC_REQUESTS); outside one SET LOCAL would not hold"
        )
    restore = not (ends_transaction and len(connection.atomic_blocks) == 1)
    with connection.cursor() as cursor:
        cursor.execute(_ENTER_SQL, [scope.role, *scope.settings()])
        row = cursor.fetchone()
    assert row is not None
    previous_role, previous_settings = str(row[0]), tuple(str(v) for v in row[1 : 1 + len(SETTINGS)])
    stack: list[tuple[str, Scope]] = _local.__dict__.setdefault("stack", [])
    stack.append((using, scope))
    try:
        yield scope
    finally:
        stack.pop()
        if restore:
            _restore(using, previous_role, previous_settings)


def _restore(using: str, previous_role: str, previous_settings: tuple[str, ...]) -> None:
    connection = connections[using]
    raw = connection.connection
    if raw is None or raw.info.transaction_status == TransactionStatus.INERROR or connection.needs_rollback:
        # The statement that failed left the transaction aborted; the rollback that must
        # follow (of the transaction or of a savepoint taken before this scope) undoes the
        # scope's SET LOCAL as well. Running SQL now would only mask the original error.
        return
    # Outside any scope the connection acts as its login role (SET ROLE NONE).
    role = previous_role if previous_role in SCOPE_ROLES else _NO_ROLE
    with connection.cursor() as cursor:
        cursor.execute(_SET_SQL, [role, *previous_settings])


def current_scope(*, using: str = DEFAULT_DB_ALIAS) -> tuple[str, str]:
    """(current_user, app.current_shop) of the connection, for diagnostics and tests."""
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT current_user, coalesce(current_setting('app.current_shop', true), '')")
        row = cursor.fetchone()
    assert row is not None
    return str(row[0]), str(row[1])


@contextmanager
def atomic_scope(scope: Scope, *, using: str = DEFAULT_DB_ALIAS) -> Iterator[Scope]:
    """A transaction (a savepoint when nested) with `scope` entered: what commands and
    background jobs wrap their work in."""
    with transaction.atomic(using=using), enter_scope(scope, using=using) as entered:
        yield entered
