from __future__ import annotations

import datetime
from typing import Any

from django.apps import AppConfig
from django.core import checks
from django.db.models.signals import post_migrate


def _ensure_partitions(sender: AppConfig, using: str, verbosity: int = 1, **kwargs: Any) -> None:
    """After every migrate: the monthly partitions of the retention window and the next months
    exist, so a deploy never depends on the daily `ensure_partitions` job having run.

    `flush` (every transactional test's teardown) sends post_migrate too, with no plan: it
    empties tables and leaves partitions as they are, so there is nothing to walk then."""
    if kwargs.get("plan") is None:
        return
    from .partitions import partitions_ensure

    reports = partitions_ensure(today=datetime.datetime.now(datetime.UTC).date(), using=using)
    created = sum(len(report.created) for report in reports)
    if verbosity >= 1 and created:
        print(f"  Created {created} monthly partitions (tenancy.partitions).")


class TenancyConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "tenancy"

    def ready(self) -> None:
        from .checks import check_tenant_tables

        post_migrate.connect(_ensure_partitions, sender=self, dispatch_uid="tenancy.ensure_partitions")
        # Every app's models declare their tenancy traits (tenancy/tables.py); the check
        # validates the declarations at start-up.
        checks.register(check_tenant_tables, checks.Tags.models)
