"""Erase a shop: every row with its domain in every table of its data, then its memberships.

All or nothing: the rows go in one transaction as `service_role` (the only scope that may
touch every row of a shop), which also checks, before it commits, that no table still holds a
row with the domain. The `ShopErasure` record is committed before that transaction starts and
updated after it, so a crash half-way leaves the shop untouched and the record `running` or
`failed`; running the erasure again (the webhook's retry, or `manage.py erase_shop`) finishes
it. Afterwards only the shop's row in `shops` (inactive, its name replaced by its domain) and
the records of this app still name the shop.
"""

from __future__ import annotations

import logging

from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.utils import timezone

from tenancy.models import Shop
from tenancy.scope import atomic_scope, service_scope

from .models import RECORD_TABLES, ErasureStatus, ShopErasure, WebhookDelivery
from .registry import MEMBERSHIPS_TABLE, SHOP_COLUMN, SHOPS_TABLE, shop_data_plan, tables_with_shop_column

logger = logging.getLogger(__name__)


class ErasureIncomplete(RuntimeError):
    """Rows with the shop's domain remained after every delete: nothing was erased."""


def _quote(name: str, *, using: str) -> str:
    return connections[using].ops.quote_name(name)


def _delete(table: str, shop_domain: str, *, using: str) -> int:
    with connections[using].cursor() as cursor:
        cursor.execute(f"DELETE FROM {_quote(table, using=using)} WHERE {SHOP_COLUMN} = %s", [shop_domain])
        return int(cursor.rowcount)


def remaining_rows(shop_domain: str, *, using: str = DEFAULT_DB_ALIAS) -> dict[str, int]:
    """{table: rows} of every table that still names the shop, apart from `shops` and the
    records of this app. Run as service_role to see every row."""
    left: dict[str, int] = {}
    for table in sorted(set(tables_with_shop_column(using=using)) - {SHOPS_TABLE} - RECORD_TABLES):
        with connections[using].cursor() as cursor:
            cursor.execute(f"SELECT count(*) FROM {_quote(table, using=using)} WHERE {SHOP_COLUMN} = %s", [shop_domain])
            row = cursor.fetchone()
        if row and row[0]:
            left[table] = int(row[0])
    return left


@transaction.atomic
def _erasure_start(
    *, shop_domain: str, reason: str, delivery: WebhookDelivery | None, requested_by: str | None
) -> ShopErasure:
    with atomic_scope(service_scope()):
        return ShopErasure.objects.create(
            shop_domain=shop_domain, reason=reason, delivery=delivery, requested_by=requested_by
        )


@transaction.atomic
def _erasure_failed(*, erasure: ShopErasure, error: str) -> None:
    with atomic_scope(service_scope()):
        erasure.status = ErasureStatus.FAILED
        erasure.error = error
        erasure.finished_at = timezone.now()
        erasure.save(update_fields=["status", "error", "finished_at"])


@transaction.atomic
def _shop_rows_erase(*, erasure: ShopErasure, using: str = DEFAULT_DB_ALIAS) -> ShopErasure:
    domain = erasure.shop_domain
    with atomic_scope(service_scope(), using=using):
        # The plan refuses to run while a table with shop_domain is not registered.
        plan = shop_data_plan(using=using)
        # Serialises with session-token sign-ups and imports of the same shop.
        shop = Shop.objects.using(using).select_for_update().filter(domain=domain).first()
        counts: dict[str, int] = {}
        # Children before parents: the composite foreign keys (child -> parent) are checked
        # per statement.
        for table in reversed(plan):
            counts[table.table] = _delete(table.table, domain, using=using)
        counts[MEMBERSHIPS_TABLE] = _delete(MEMBERSHIPS_TABLE, domain, using=using)
        left = remaining_rows(domain, using=using)
        if left:
            raise ErasureIncomplete(f"rows of {domain} remain after the erasure: {left}")
        if shop is not None:
            shop.is_active = False
            shop.name = domain
            shop.save(update_fields=["is_active", "name", "updated_at"])
        erasure.status = ErasureStatus.COMPLETED
        erasure.rows_deleted = counts
        erasure.error = ""
        erasure.finished_at = timezone.now()
        erasure.save(using=using, update_fields=["status", "rows_deleted", "error", "finished_at"])
    return erasure


def shop_erasure_run(
    *,
    shop_domain: str,
    reason: str,
    delivery: WebhookDelivery | None = None,
    requested_by: str | None = None,
) -> ShopErasure:
    """Erase `shop_domain` and return the erasure's record.

    Not one transaction on purpose: the record is committed first, the erasure runs all or
    nothing in a transaction of its own, and a failure is recorded in a third, so that the
    record survives the rollback of the erasure it describes."""
    erasure = _erasure_start(shop_domain=shop_domain, reason=reason, delivery=delivery, requested_by=requested_by)
    try:
        _shop_rows_erase(erasure=erasure)
    except Exception as exc:
        # The class and message only: no parameters of the failed statement, no settings.
        _erasure_failed(erasure=erasure, error=f"{type(exc).__name__}: {exc}")
        logger.exception("erasure of %s failed; run it again to finish it", shop_domain)
        raise
    logger.info("erased shop %s: %s", shop_domain, erasure.rows_deleted)
    return erasure


def shop_is_erased(shop_domain: str) -> bool:
    """True once an erasure of the shop has completed (its row in `shops` is kept, inactive)."""
    with atomic_scope(service_scope()):
        return ShopErasure.objects.filter(shop_domain=shop_domain, status=ErasureStatus.COMPLETED).exists()
