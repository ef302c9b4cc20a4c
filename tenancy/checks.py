"""System checks of the tenant table declarations (tenancy/tables.py), run when Django starts:
a misspelt column fails `manage.py check` (and every command), not the first purge at night."""

from __future__ import annotations

from typing import Any

from django.core import checks
from django.core.exceptions import FieldDoesNotExist
from django.db import models

from .tables import PolicyKind, declaration, declared_tables

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
        errors.extend(_parent_errors(model, traits.parent))
    return errors


def _parent_errors(model: type[models.Model], parent: str | None) -> list[checks.CheckMessage]:
    """A key to another tenant table makes this a child table: the row it names must exist in
    the shop, and both the API's bulk check and the importer learn the key from `parent` only,
    so a child table that declares none would accept rows they never check."""
    label = model._meta.label
    if parent is not None:
        try:
            field = model._meta.get_field(parent)
        except FieldDoesNotExist:
            field = None
        if not isinstance(field, models.ForeignKey) or declaration(field.related_model) is None:  # type: ignore[arg-type]
            message = f"{label} declares {parent!r} as its parent, which is not a foreign key to a tenant table."
            return [checks.Error(message, obj=model, id="tenancy.E006")]
    undeclared = [
        field.name
        for field in model._meta.concrete_fields
        if isinstance(field, models.ForeignKey)
        # A key to a row of the same table (a document's previous version) is no parent.
        and field.related_model is not model
        and declaration(field.related_model) is not None  # type: ignore[arg-type]
        and field.name != parent
    ]
    return [
        checks.Error(
            f"{label}.{name} is a key to another tenant table; declare it as the parent "
            f"(TenantTable(parent={name!r})) so that the API and the importer check it.",
            obj=model,
            id="tenancy.E005",
        )
        for name in undeclared
    ]
