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
(`tenancy.rls.tenant_policies`), the monthly partitions (`tenancy.partitions.partitioned_tables`)
and the retention rules (`tenancy.retention.retention_rules`). The system check
`tenancy.E001`-`E004` (tenancy/checks.py) validates every declaration when Django starts, and
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
