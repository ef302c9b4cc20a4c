"""System checks of the tenant table declarations (tenancy/tables.py), run when Django starts:
a misspelt column fails `manage.py check` (and every command), not the first purge at night."""

from __future__ import annotations

from typing import Any

from django.core import checks
from django.core.exceptions import FieldDoesNotExist
from django.db import models

from .tables import PolicyKind, declared_tables

# The column each policy kind compares with the request's scope.
_POLICY_COLUMNS: dict[PolicyKind, tuple[str, ...]] = {
    PolicyKind.SHOP: ("shop_domain",),
    PolicyKind.USER: ("user_id",),
    PolicyKind.USER_SHOP: ("user_id", "shop_domain"),
    PolicyKind.CEO: ("shop_domain",),
}


def _date_field(model: type[models.Model], name: str) -> models.Field[Any, Any] | None:
    try:
        field = model._meta.get_field(name)
    except FieldDoesNotExist:
        return None
    return field if isinstance(field, models.DateField) else None


def check_tenant_tables(**kwargs: Any) -> list[checks.CheckMessage]:
    errors: list[checks.CheckMessage] = []
    for declared in declared_tables():
        model, traits = declared.model, declared.traits
        label = model._meta.label
        columns = {field.column for field in model._meta.concrete_fields}
        for column in _POLICY_COLUMNS[traits.policy]:
            if column not in columns:
                errors.append(
                    checks.Error(
                        f"{label} declares a {traits.policy} policy but has no {column} column.",
                        obj=model,
                        id="tenancy.E001",
                    )
                )
        retention = traits.retention
        if retention is not None and retention.column is not None and _date_field(model, retention.column) is None:
            errors.append(
                checks.Error(
                    f"{label} keeps rows by {retention.column!r}, which is not a date or timestamp field.",
                    obj=model,
                    id="tenancy.E002",
                )
            )
        if traits.partition_by is not None:
            if _date_field(model, traits.partition_by) is None:
                errors.append(
                    checks.Error(
                        f"{label} is partitioned by {traits.partition_by!r}, which is not a date or timestamp field.",
                        obj=model,
                        id="tenancy.E003",
                    )
                )
            elif retention is not None and retention.column not in (None, traits.partition_by):
                # Retention drops whole monthly partitions: only right when both use one column.
                errors.append(
                    checks.Error(
                        f"{label} is partitioned by {traits.partition_by!r} but expires rows by "
                        f"{retention.column!r}; retention drops whole partitions, so they must be the same.",
                        obj=model,
                        id="tenancy.E004",
                    )
                )
    return errors
