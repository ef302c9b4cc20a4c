"""Erase a shop: every row with its domain in every table of its data, then its memberships.

All or nothing: the rows go in one transaction as `service_role` (the only scope that may
touch every row of a shop), which also checks, before it commits, that no table still holds a
row with the domain. The `ShopErasure` record is committed before that transaction starts and
updated after it, so a crash half-way leaves the shop untouched and the record `running` or
`failed`; running the erasure again (the webhook's retry, or `manage.py erase_shop`) finishes
it.

The shop's data is not only in its tables. In the same transaction the erasure also removes:
- the admin log's entries (`django_admin_log`: `object_repr` is a campaign's name, a
  document's title) about the shop's rows, the shop and its memberships, and any entry whose
  text names the shop's domain;
- from `job_runs`, the lines of a run's output and error that name the shop (a briefing run
  prints "<shop>: <figures>" per shop), and the shop in a run's arguments (`--shop DOMAIN`);
- the shop's webhook delivery records, except its `shop/redact` deliveries (the request for
  this erasure, and the key that makes a duplicate of it a replay) and a delivery still being
  processed.
Afterwards only the shop's row in `shops` (inactive, its name replaced by its domain), the
erasure records and the shop/redact deliveries still name the shop (docs/security.md,
"Erasure", lists what remains and why; tests/shopify/test_erasure_everywhere.py searches
every column of every table for it).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from django.apps import apps
from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models import Q
from django.utils import timezone

from jobs.models import JobRun
from tenancy.models import Shop
from tenancy.scope import atomic_scope, service_scope

from .models import RECORD_TABLES, DeliveryStatus, ErasureStatus, ShopErasure, WebhookDelivery
from .registry import (
    MEMBERSHIPS_TABLE,
    SHOP_COLUMN,
    SHOPS_TABLE,
    TablePlan,
    shop_data_plan,
    tables_with_shop_column,
)

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


# What replaces a line of a job's output, or an argument, that named an erased shop.
ERASED_LINE = "[line about an erased shop removed]"
ERASED_ARGUMENT = "[erased shop]"
# The delivery topic whose records outlive the erasure (see the module docstring).
SHOP_REDACT_TOPIC = "shop/redact"


def names_shop(text: str, shop_domain: str) -> bool:
    """Whether `text` names `shop_domain` as a whole host name: "beta-alpha.example.com" and
    "alpha.example.com.evil" do not name "alpha.example.com" (domains are suffixes of others)."""
    pattern = rf"(?<![a-z0-9.-]){re.escape(shop_domain)}(?![a-z0-9-]|\.[a-z0-9])"
    return re.search(pattern, text, flags=re.IGNORECASE) is not None


def _shop_models(plan: list[TablePlan]) -> list[Any]:
    """The models of the shop's tables, its memberships and `shops` (admin log entries point
    at rows by content type and primary key)."""
    tables = {table.table for table in plan} | {MEMBERSHIPS_TABLE, SHOPS_TABLE}
    return [model for model in apps.get_models() if model._meta.db_table in tables and not model._meta.proxy]


def _admin_log_erase_rows(*, shop_domain: str, plan: list[TablePlan], using: str) -> int:
    """Delete the admin log's entries about rows of the shop. Runs before the rows go: an
    entry points at its row only by content type and primary key (as text)."""
    manager = ContentType.objects.db_manager(using)
    content_types = {model: manager.get_for_model(model, for_concrete_model=False).pk for model in _shop_models(plan)}
    # Only the tables staff ever changed in the admin: the others (ad_performance, millions of
    # rows) are not read at all.
    logged = set(
        LogEntry.objects.using(using)
        .filter(content_type_id__in=content_types.values())
        .values_list("content_type_id", flat=True)
        .distinct()
    )
    log = _quote(LogEntry._meta.db_table, using=using)
    deleted = 0
    for model, content_type in content_types.items():
        if content_type not in logged:
            continue
        table = _quote(model._meta.db_table, using=using)
        pk = _quote(model._meta.pk.column, using=using)
        column = _quote(SHOP_COLUMN if model._meta.db_table != SHOPS_TABLE else model._meta.pk.column, using=using)
        with connections[using].cursor() as cursor:
            # IN (subquery) is one pass over the shop's rows, whatever the number of entries.
            cursor.execute(
                f"DELETE FROM {log} WHERE content_type_id = %s "
                f"AND object_id IN (SELECT t.{pk}::text FROM {table} t WHERE t.{column} = %s)",
                [content_type, shop_domain],
            )
            deleted += int(cursor.rowcount)
    return deleted


def _admin_log_erase_naming(*, shop_domain: str, using: str) -> int:
    """Delete the admin log's entries whose text names the shop: entries about rows deleted
    before (a membership's "user @ shop"), or any other that quotes the domain."""
    candidates = LogEntry.objects.using(using).filter(
        Q(object_repr__icontains=shop_domain) | Q(change_message__icontains=shop_domain)
    )
    ids = [
        entry.pk
        for entry in candidates.only("pk", "object_repr", "change_message")
        if names_shop(f"{entry.object_repr}\n{entry.change_message}", shop_domain)
    ]
    deleted, _ = LogEntry.objects.using(using).filter(pk__in=ids).delete()
    return int(deleted)


def _without_shop(value: Any, shop_domain: str) -> Any:
    if isinstance(value, str):
        return ERASED_ARGUMENT if names_shop(value, shop_domain) else value
    if isinstance(value, list):
        return [_without_shop(item, shop_domain) for item in value]
    if isinstance(value, dict):
        return {key: _without_shop(item, shop_domain) for key, item in value.items()}
    return value


def _lines_without_shop(text: str, shop_domain: str) -> str:
    return "\n".join(ERASED_LINE if names_shop(line, shop_domain) else line for line in text.split("\n"))


@transaction.atomic
def job_runs_scrub(*, shop_domain: str, using: str = DEFAULT_DB_ALIAS) -> int:
    """Remove the shop from the record of every job run: each line of output or error that
    names it is replaced, as is each argument naming it. Returns the runs changed.

    The only place this app touches `job_runs` (the app `jobs` owns it): the runs stay, with
    their status and times, and what they said about other shops. A run limited to the shop
    (`shop`) loses that mark too: it is then shown like a run across every shop, to the staff
    who may see every shop only (jobs/admin.py)."""
    runs = JobRun.objects.using(using).filter(
        Q(output__icontains=shop_domain)
        | Q(error__icontains=shop_domain)
        | Q(arguments__icontains=shop_domain)
        | Q(shop=shop_domain)
    )
    changed = 0
    for run in runs.only("pk", "output", "error", "arguments", "shop"):
        scrubbed = {
            "output": _lines_without_shop(run.output, shop_domain),
            "error": _lines_without_shop(run.error, shop_domain),
            "arguments": _without_shop(run.arguments, shop_domain),
            "shop": "" if run.shop == shop_domain else run.shop,
        }
        if scrubbed != {"output": run.output, "error": run.error, "arguments": run.arguments, "shop": run.shop}:
            JobRun.objects.using(using).filter(pk=run.pk).update(**scrubbed)
            changed += 1
    return changed


def _deliveries_erase(*, shop_domain: str, using: str) -> int:
    """Delete the shop's webhook delivery records but its shop/redact ones and any still being
    processed (its request records the outcome when it ends)."""
    deleted, _ = (
        WebhookDelivery.objects.using(using)
        .filter(shop_domain=shop_domain)
        .exclude(topic=SHOP_REDACT_TOPIC)
        .exclude(status=DeliveryStatus.RECEIVED)
        .delete()
    )
    return int(deleted)


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
        admin_log = _admin_log_erase_rows(shop_domain=domain, plan=plan, using=using)
        # Children before parents: the composite foreign keys (child -> parent) are checked
        # per statement.
        for table in reversed(plan):
            counts[table.table] = _delete(table.table, domain, using=using)
        counts[MEMBERSHIPS_TABLE] = _delete(MEMBERSHIPS_TABLE, domain, using=using)
        counts[LogEntry._meta.db_table] = admin_log + _admin_log_erase_naming(shop_domain=domain, using=using)
        counts[WebhookDelivery._meta.db_table] = _deliveries_erase(shop_domain=domain, using=using)
        runs = job_runs_scrub(shop_domain=domain, using=using)
        if runs:
            logger.info("erasure of %s: removed the shop from %d job runs", domain, runs)
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
