"""The ratios the schema calls "calculated" are stored generated columns: PostgreSQL computes
them from the inputs (NULL on a zero denominator), recomputes them on every update, and
refuses a value written to them directly."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, localcontext
from typing import Any

import pytest
from django.db import DatabaseError, IntegrityError, connection, models, transaction

from advanced.experiments.factories import ExperimentResultFactory
from advanced.models import ExperimentResult
from growth.factories import AdPerformanceFactory, SocialAnalyticsFactory
from growth.models import AdPerformance, SocialAnalytics

SIX_PLACES = Decimal("0.000001")  # numeric(20,6): ctr, cpc, cpa, roas, engagement_rate
EIGHT_PLACES = Decimal("0.00000001")  # numeric(20,8): conversion_rate


def ratio(numerator: Decimal | int, denominator: Decimal | int, places: Decimal = SIX_PLACES) -> Decimal | None:
    """numerator / denominator rounded as PostgreSQL rounds numeric (half away from zero)."""
    if denominator == 0:
        return None
    with localcontext() as context:
        context.prec = 60
        return (Decimal(numerator) / Decimal(denominator)).quantize(places, rounding=ROUND_HALF_UP)


def stored(model: type[models.Model], pk: Any, *columns: str) -> dict[str, Any]:
    """The values the database holds now (not the instance's attributes)."""
    return model._base_manager.filter(pk=pk).values(*columns).get()


AD_INPUTS = [
    pytest.param(
        {
            "impressions": 12_345,
            "clicks": 678,
            "conversions": Decimal("23.50"),
            "cost": Decimal("456.78"),
            "revenue": Decimal("1890.12"),
        },
        id="typical-day",
    ),
    pytest.param(
        {"impressions": 3, "clicks": 2, "conversions": Decimal("0.01"), "cost": Decimal("0.07"), "revenue": 0},
        id="tiny-figures",
    ),
    pytest.param(
        {
            "impressions": 2_147_483_647,
            "clicks": 2_147_483_647,
            "conversions": Decimal("9999999999.99"),
            "cost": Decimal("9999999999.99"),
            "revenue": Decimal("0.01"),
        },
        id="largest-inputs",
    ),
    pytest.param(
        {"impressions": 1000, "clicks": 0, "conversions": 0, "cost": Decimal("5.00"), "revenue": 0},
        id="no-clicks-no-conversions",
    ),
]


def expected_ad_ratios(inputs: dict[str, Any]) -> dict[str, Decimal | None]:
    return {
        "ctr": ratio(inputs["clicks"], inputs["impressions"]),
        "cpc": ratio(inputs["cost"], inputs["clicks"]),
        "cpa": ratio(inputs["cost"], inputs["conversions"]),
        "roas": ratio(inputs["revenue"], inputs["cost"]),
    }


@pytest.mark.parametrize("inputs", AD_INPUTS)
def test_ad_performance_ratios_are_computed_by_the_database(service: None, inputs: dict[str, Any]) -> None:
    row = AdPerformanceFactory(**inputs)
    assert stored(AdPerformance, row.pk, "ctr", "cpc", "cpa", "roas") == expected_ad_ratios(inputs)


def test_ad_performance_zero_denominators_give_null_not_zero_or_an_error(service: None) -> None:
    row = AdPerformanceFactory(impressions=0, clicks=0, conversions=0, cost=0, revenue=Decimal("10.00"))
    assert stored(AdPerformance, row.pk, "ctr", "cpc", "cpa", "roas") == {
        "ctr": None,
        "cpc": None,
        "cpa": None,
        "roas": None,
    }
    # NULL ratios sort after every real one in the "top campaigns" order the index serves.
    best = AdPerformanceFactory(impressions=100, clicks=10, conversions=1, cost=Decimal("2.00"), revenue=Decimal("9"))
    top = AdPerformance.objects.filter(pk__in=[row.pk, best.pk]).order_by(models.F("roas").desc(nulls_last=True))
    assert list(top.values_list("pk", flat=True)) == [best.pk, row.pk]


def test_ad_performance_ratios_follow_an_update_of_their_inputs(service: None) -> None:
    row = AdPerformanceFactory(
        impressions=1000, clicks=10, conversions=Decimal("1.00"), cost=Decimal("20.00"), revenue=Decimal("50.00")
    )
    AdPerformance.objects.filter(pk=row.pk).update(clicks=40, cost=Decimal("30.00"), revenue=0)
    assert stored(AdPerformance, row.pk, "ctr", "cpc", "cpa", "roas") == {
        "ctr": Decimal("0.040000"),
        "cpc": Decimal("0.750000"),
        "cpa": Decimal("30.000000"),
        "roas": Decimal("0.000000"),
    }
    AdPerformance.objects.filter(pk=row.pk).update(impressions=0, clicks=0, conversions=0, cost=0)
    assert stored(AdPerformance, row.pk, "ctr", "cpc", "cpa", "roas") == {
        "ctr": None,
        "cpc": None,
        "cpa": None,
        "roas": None,
    }


@pytest.mark.parametrize(
    ("likes", "comments", "shares", "reach"),
    [
        pytest.param(150, 25, 12, 4321, id="typical-post"),
        pytest.param(1, 0, 0, 3, id="repeating-fraction"),
        # The sum overflows integer (2^31 - 1): each term must be cast before it is added.
        pytest.param(2_000_000_000, 2_000_000_000, 2_000_000_000, 7, id="sum-beyond-integer"),
        pytest.param(5, 1, 1, 0, id="zero-reach"),
    ],
)
def test_engagement_rate_is_interactions_over_reach(
    service: None, likes: int, comments: int, shares: int, reach: int
) -> None:
    row = SocialAnalyticsFactory(likes=likes, comments=comments, shares=shares, reach=reach)
    expected = ratio(Decimal(likes) + Decimal(comments) + Decimal(shares), reach)
    assert stored(SocialAnalytics, row.pk, "engagement_rate") == {"engagement_rate": expected}


@pytest.mark.parametrize(
    ("conversions", "participants"),
    [
        pytest.param(97, 3000, id="typical-variant"),
        pytest.param(1, 7, id="repeating-fraction"),
        pytest.param(2_147_483_647, 2_147_483_647, id="everyone-converted"),
        pytest.param(0, 0, id="no-participants"),
    ],
)
def test_conversion_rate_is_conversions_over_participants(service: None, conversions: int, participants: int) -> None:
    row = ExperimentResultFactory(conversions=conversions, participants=participants)
    expected = ratio(conversions, participants, EIGHT_PLACES)
    assert stored(ExperimentResult, row.pk, "conversion_rate") == {"conversion_rate": expected}


def test_an_impossible_conversion_count_is_refused_by_its_check_not_by_an_overflow(service: None) -> None:
    # The generated rate is computed before CHECK constraints run: it must be wide enough
    # (numeric(20,8)) for an impossible 10 conversions of 1 participant, so that the row is
    # refused by the constraint that says why, as for 2 of 1, not by a numeric overflow.
    result = ExperimentResultFactory(participants=1, conversions=1)
    for conversions in (2, 10):
        refused = pytest.raises(IntegrityError, match="advanced_experimentresult_conversions_lte_participants")
        with refused, transaction.atomic():
            ExperimentResult.objects.filter(pk=result.pk).update(conversions=conversions)
    assert stored(ExperimentResult, result.pk, "conversions") == {"conversions": 1}


GENERATED = [
    pytest.param(AdPerformanceFactory, "ad_performance", "ctr", id="ad_performance.ctr"),
    pytest.param(AdPerformanceFactory, "ad_performance", "cpc", id="ad_performance.cpc"),
    pytest.param(AdPerformanceFactory, "ad_performance", "cpa", id="ad_performance.cpa"),
    pytest.param(AdPerformanceFactory, "ad_performance", "roas", id="ad_performance.roas"),
    pytest.param(SocialAnalyticsFactory, "social_analytics", "engagement_rate", id="social_analytics.engagement_rate"),
    pytest.param(
        ExperimentResultFactory, "experiment_results", "conversion_rate", id="experiment_results.conversion_rate"
    ),
]


def sql_error(sql: str, params: list[Any]) -> DatabaseError:
    with pytest.raises(DatabaseError) as excinfo, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)
    return excinfo.value


@pytest.mark.parametrize(("factory", "table", "column"), GENERATED)
def test_generated_column_refuses_a_value_written_directly(
    service: None, factory: Any, table: str, column: str
) -> None:
    row = factory()
    model = type(row)
    before = stored(model, row.pk, column)
    qn = connection.ops.quote_name

    update = sql_error(f"UPDATE {qn(table)} SET {qn(column)} = 0.5 WHERE id = %s", [row.pk])
    assert getattr(update.__cause__, "sqlstate", None) == "428C9"  # generated_always
    assert f'column "{column}" can only be updated to DEFAULT' in str(update)

    insert = sql_error(f"INSERT INTO {qn(table)} ({qn(column)}) VALUES (0.5)", [])
    assert getattr(insert.__cause__, "sqlstate", None) == "428C9"
    assert f'cannot insert a non-DEFAULT value into column "{column}"' in str(insert)

    assert stored(model, row.pk, column) == before
    assert model._base_manager.count() == 1


def test_orm_writes_leave_generated_columns_to_the_database(service: None) -> None:
    row = AdPerformanceFactory(
        impressions=200, clicks=20, conversions=Decimal("2.00"), cost=Decimal("10.00"), revenue=Decimal("35.00")
    )
    # Django leaves generated fields out of UPDATE and INSERT: a value set on them is ignored.
    AdPerformance.objects.filter(pk=row.pk).update(roas=Decimal("99"))
    row.ctr = Decimal("0.99")
    row.save()
    assert stored(AdPerformance, row.pk, "ctr", "roas") == {"ctr": Decimal("0.100000"), "roas": Decimal("3.500000")}
