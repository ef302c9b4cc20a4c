"""Database building blocks the apps share: generated ratios and composite foreign keys."""

from __future__ import annotations

from django.db import migrations, models
from django.db.models import F, Value
from django.db.models.expressions import Combinable
from django.db.models.functions import Cast, NullIf


def ratio_field(
    numerator: str | tuple[str, ...],
    denominator: str,
    *,
    max_digits: int = 20,
    decimal_places: int = 6,
    help_text: str = "",
) -> models.GeneratedField:
    """A stored generated ratio `sum(numerator) / denominator`, NULL when the denominator is zero.

    Stored so that it can be indexed (`roas DESC`) and can never disagree with its inputs.
    Each term is cast to numeric before it is added, so a sum of integer counters cannot
    overflow `integer`.
    """
    terms = (numerator,) if isinstance(numerator, str) else numerator
    wide: models.DecimalField[object, object] = models.DecimalField(max_digits=30, decimal_places=10)
    total: Combinable = Cast(F(terms[0]), wide)
    for term in terms[1:]:
        total = total + Cast(F(term), wide)
    return models.GeneratedField(
        expression=total / NullIf(F(denominator), Value(0)),
        output_field=models.DecimalField(max_digits=max_digits, decimal_places=decimal_places, null=True),
        db_persist=True,
        help_text=help_text,
    )


def composite_foreign_key(
    *,
    table: str,
    name: str,
    columns: tuple[str, ...],
    ref_table: str,
    ref_columns: tuple[str, ...],
    on_delete: str = "CASCADE",
) -> migrations.RunSQL:
    """Add a multi-column foreign key, which Django's ORM cannot declare.

    Child tables carry their parent's `shop_domain`; the key `(parent_id, shop_domain)` ->
    `parent(id, shop_domain)` makes it impossible for a child to point at another shop's parent.
    """
    cols = ", ".join(columns)
    refs = ", ".join(ref_columns)
    return migrations.RunSQL(
        sql=(
            f"ALTER TABLE {table} ADD CONSTRAINT {name} FOREIGN KEY ({cols}) "
            f"REFERENCES {ref_table} ({refs}) ON DELETE {on_delete}"
        ),
        reverse_sql=f"ALTER TABLE {table} DROP CONSTRAINT {name}",
    )


def nonnegative_checks(*fields: str) -> list[models.CheckConstraint]:
    """CHECK (field >= 0) for counters and amounts; NULL passes, as in SQL."""
    return [
        models.CheckConstraint(
            condition=models.Q(**{f"{field}__gte": 0}),
            name=f"%(app_label)s_%(class)s_{field}_nonnegative",
        )
        for field in fields
    ]


def range_checks(low: float, high: float, *fields: str) -> list[models.CheckConstraint]:
    """CHECK (field BETWEEN low AND high) for scores, ratings and probabilities."""
    label = f"{low:g}_{high:g}".replace(".", "")
    return [
        models.CheckConstraint(
            condition=models.Q(**{f"{field}__gte": low, f"{field}__lte": high}),
            name=f"%(app_label)s_%(class)s_{field}_{label}",
        )
        for field in fields
    ]


def choices_check(field: str, choices: type[models.TextChoices]) -> models.CheckConstraint:
    """CHECK (field IN (...)): the database refuses values the enumeration does not know."""
    return models.CheckConstraint(
        condition=models.Q(**{f"{field}__in": choices.values}),
        name=f"%(app_label)s_%(class)s_{field}_valid",
    )
