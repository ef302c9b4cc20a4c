"""What a tenant table declares about itself, and the registry that collects the declarations.

A domain model states its tenancy traits next to its fields, as one class attribute:

    class SeoRanking(ShopScopedModel):
        tenancy = TenantTable(
            policy=PolicyKind.SHOP,
            retention=Retention("tracked_on", days=365),
            partition_by="tracked_on",
        )

`tenancy` knows no domain app: it finds the declarations in the app registry
(`apps.get_models()`), and derives from them the row level security policies
(`tenancy.rls.tenant_policies`), the monthly partitions (`tenancy.partitions.partitioned_tables`),
the retention rules (`tenancy.retention.retention_rules`) and the parents a child row must find
in its shop (`parent_key`: the API's bulk check and the metrics importer). The system check
`tenancy.E001`-`E006` (tenancy/checks.py) validates every declaration when Django starts, and
`manage.py show_security` prints the whole security model in one place.

A model without the attribute is not a tenant table (the directory tables `shops` and
`shop_memberships` have their own policies in tenancy's migrations). A catalog test fails for
any table with a `shop_domain` or `user_id` column that declares nothing.
"""

from __future__ import annotations

import datetime
import enum
from dataclasses import dataclass

from django.apps import apps
from django.db import models
from django.utils.text import capfirst

# The class attribute a tenant model declares its traits in.
ATTRIBUTE = "tenancy"


class PolicyKind(enum.StrEnum):
    """Who may see a row (tenancy/rls.py has the SQL of each)."""

    # Rows of the shop in scope.
    SHOP = "shop"
    # Rows of the signed-in user, whatever the shop.
    USER = "user"
    # Rows of the signed-in user in the shop in scope.
    USER_SHOP = "user+shop"
    # Rows of the shop in scope, and only for its CEO or owner.
    CEO = "ceo"


@dataclass(frozen=True)
class Retention:
    """How long rows are kept: rows whose `column` (a date, or a timestamp cut at UTC
    midnight) is more than `days` days before today are deleted by `purge_expired`.
    `Retention.forever()` states that the schema keeps them for good."""

    column: str | None = None
    days: int | None = None

    def __post_init__(self) -> None:
        if (self.column is None) != (self.days is None):
            raise ValueError("Retention needs both a column and days, or neither (forever)")
        if self.days is not None and self.days < 1:
            raise ValueError(f"Retention days must be at least 1, not {self.days}")

    @classmethod
    def forever(cls) -> Retention:
        return cls()

    @property
    def expires(self) -> bool:
        return self.days is not None

    def first_kept(self, today: datetime.date) -> datetime.date:
        """The first UTC day whose rows are kept: with `today` 2026-06-30 and 365 days, a row
        of 2025-06-30 is kept and one of 2025-06-29 is expired."""
        if self.days is None:
            raise ValueError("rows kept forever have no first kept day")
        return today - datetime.timedelta(days=self.days)


@dataclass(frozen=True)
class TenantTable:
    """A model's tenancy traits: its policy kind, its retention and its monthly partitioning."""

    policy: PolicyKind
    retention: Retention | None = None
    # The date or timestamp column the table is range-partitioned on by month, if any.
    partition_by: str | None = None
    # A child table's foreign key to the row it belongs to (an ad's daily performance to its
    # campaign): the one place the API's bulk check and the file importer learn which rows must
    # exist in the shop first. A key to another tenant table must be declared here
    # (tenancy.E005, tenancy/checks.py).
    parent: str | None = None


@dataclass(frozen=True)
class DeclaredTable:
    """One model and what it declared."""

    model: type[models.Model]
    traits: TenantTable

    @property
    def table(self) -> str:
        return self.model._meta.db_table

    @property
    def app_label(self) -> str:
        return self.model._meta.app_label


def declaration(model: type[models.Model]) -> TenantTable | None:
    # Read from the class itself, not inherited: an abstract base must not make every
    # subclass a tenant table by accident.
    traits = model.__dict__.get(ATTRIBUTE)
    return traits if isinstance(traits, TenantTable) else None


@dataclass(frozen=True)
class ParentKey:
    """A child table's declared key to its parent (`TenantTable.parent`), and how a row whose
    parent is not in the shop is refused.

    The two refusals were published before they were derived from here and keep their words:
    the API names the field of the row ("Campaign 7 does not exist in this shop."), the file
    importer the parent's table ("ad campaign 7 does not exist in this shop")."""

    field: models.ForeignKey[models.Model, models.Model]

    @property
    def attname(self) -> str:
        """The row's column as the API and the importer take it (`campaign_id`)."""
        return self.field.attname

    @property
    def model(self) -> type[models.Model]:
        parent: type[models.Model] = self.field.related_model  # type: ignore[assignment]
        return parent

    def api_message(self, key: object) -> str:
        return f"{capfirst(self.field.verbose_name)} {key} does not exist in this shop."

    @property
    def import_label(self) -> str:
        """What the importer's reason starts with, before the key and "does not exist in this shop"."""
        return str(self.model._meta.verbose_name)


def parent_key(model: type[models.Model]) -> ParentKey | None:
    """The declared parent of a tenant table, or None (not a child table, or no declaration).
    The system check tenancy.E006 makes sure a declared name is a foreign key."""
    traits = declaration(model)
    if traits is None or traits.parent is None:
        return None
    field = model._meta.get_field(traits.parent)
    if not isinstance(field, models.ForeignKey):
        raise TypeError(f"{model._meta.label}.{traits.parent} is declared as the parent but is not a foreign key")
    return ParentKey(field=field)


def declared_tables() -> list[DeclaredTable]:
    """Every tenant table of every installed app, in the app registry's order (INSTALLED_APPS,
    then the order of the models in each app). Django caches `get_models()`; building this list
    costs microseconds, so it is not cached here (tests may change a declaration)."""
    found: list[DeclaredTable] = []
    for model in apps.get_models():
        traits = declaration(model)
        if traits is not None:
            found.append(DeclaredTable(model=model, traits=traits))
    return found
