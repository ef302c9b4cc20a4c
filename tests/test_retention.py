"""Retention: `purge_expired` deletes rows past each table's period, in every shop, in batches."""

from __future__ import annotations

import datetime
import threading
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connections, models

from advanced.briefings.factories import CeoBriefingFactory
from advanced.experiments.factories import ExperimentResultFactory
from advanced.knowledge.factories import KnowledgeDocumentFactory
from advanced.models import CeoBriefing, ExperimentResult, KnowledgeDocument
from growth.factories import (
    AdCampaignFactory,
    AdPerformanceFactory,
    SeoRankingFactory,
    SocialAnalyticsFactory,
    SocialPostFactory,
)
from growth.models import AdPerformance, SeoRanking, SocialAnalytics
from tenancy.factories import ShopFactory
from tenancy.retention import expired_rows_purge, retention_rules
from tenancy.scope import atomic_scope, current_scope, service_scope

TODAY = datetime.date(2026, 6, 30)
SHOPS = ("alpha.myshopify.com", "bravo.myshopify.com")
PURGED = {"seo_rankings": 2, "social_analytics": 2, "ad_performance": 2, "ceo_briefings": 2}
ALL_MODELS: tuple[type[models.Model], ...] = (
    SeoRanking,
    SocialAnalytics,
    AdPerformance,
    CeoBriefing,
    ExperimentResult,
    KnowledgeDocument,
)


def _days_ago(days: int) -> datetime.date:
    return TODAY - datetime.timedelta(days=days)


def _midnight(day: datetime.date) -> datetime.datetime:
    return datetime.datetime.combine(day, datetime.time.min, tzinfo=datetime.UTC)


def _counts() -> dict[str, int]:
    with atomic_scope(service_scope()):
        return {model._meta.db_table: model.objects.count() for model in ALL_MODELS}


def _values(model: type[models.Model], column: str) -> list[tuple[str, Any]]:
    with atomic_scope(service_scope()):
        return sorted(model.objects.values_list("shop_id", column))


def _ranking(shop: Any, day: datetime.date, keyword: str) -> Any:
    return SeoRankingFactory(shop=shop, keyword=keyword, tracked_at=_midnight(day), tracked_on=day)


@pytest.fixture
def edges(db: None) -> None:
    """In each of two shops: per purged table, one row on the last day kept and one the day
    before it; and very old rows of the tables kept forever."""
    for domain in SHOPS:
        shop = ShopFactory(domain=domain)
        _ranking(shop, _days_ago(365), "kept")
        _ranking(shop, _days_ago(366), "expired")
        post = SocialPostFactory(shop=shop)
        SocialAnalyticsFactory(social_post=post, measured_at=_midnight(_days_ago(365)))
        SocialAnalyticsFactory(social_post=post, measured_at=_midnight(_days_ago(365)) - datetime.timedelta(seconds=1))
        campaign = AdCampaignFactory(shop=shop)
        AdPerformanceFactory(campaign=campaign, date=_days_ago(730))
        AdPerformanceFactory(campaign=campaign, date=_days_ago(731))
        CeoBriefingFactory(shop=shop, period_end=_days_ago(365), period_start=_days_ago(371))
        CeoBriefingFactory(shop=shop, period_end=_days_ago(366), period_start=_days_ago(372))
        ExperimentResultFactory(experiment__shop=shop, snapshot_date=_days_ago(4000))
        KnowledgeDocumentFactory(shop=shop)


def test_the_retention_table_is_the_schemas() -> None:
    assert {rule.table: rule.days for rule in retention_rules()} == {
        "seo_rankings": 365,
        "social_analytics": 365,
        "ad_performance": 730,
        "ceo_briefings": 365,
        "experiment_results": None,
        "knowledge_base": None,
    }


@pytest.mark.usefixtures("edges")
def test_purge_deletes_rows_past_each_boundary_in_every_shop_and_keeps_the_last_day() -> None:
    before = _counts()
    assert expired_rows_purge(today=TODAY, dry_run=False) == PURGED
    after = _counts()
    assert after == {table: rows - PURGED.get(table, 0) for table, rows in before.items()}
    kept_day = _days_ago(365)
    assert _values(SeoRanking, "tracked_on") == [(shop, kept_day) for shop in SHOPS]
    assert _values(SocialAnalytics, "measured_at") == [(shop, _midnight(kept_day)) for shop in SHOPS]
    assert _values(AdPerformance, "date") == [(shop, _days_ago(730)) for shop in SHOPS]
    assert _values(CeoBriefing, "period_end") == [(shop, kept_day) for shop in SHOPS]
    # Kept forever, however old.
    assert _values(ExperimentResult, "snapshot_date") == [(shop, _days_ago(4000)) for shop in SHOPS]
    assert after["knowledge_base"] == before["knowledge_base"] == 2
    # A second run finds nothing left to delete.
    assert expired_rows_purge(today=TODAY, dry_run=False) == dict.fromkeys(PURGED, 0)


@pytest.mark.usefixtures("edges")
def test_one_day_later_the_boundary_rows_expire_too() -> None:
    removed = expired_rows_purge(today=TODAY + datetime.timedelta(days=1), dry_run=False)
    assert removed == {table: 2 * rows for table, rows in PURGED.items()}
    assert _counts() == {
        "seo_rankings": 0,
        "social_analytics": 0,
        "ad_performance": 0,
        "ceo_briefings": 0,
        "experiment_results": 2,
        "knowledge_base": 2,
    }


@pytest.mark.usefixtures("edges")
def test_dry_run_counts_what_would_go_and_deletes_nothing() -> None:
    before = _counts()
    assert expired_rows_purge(today=TODAY, dry_run=True) == PURGED
    assert _counts() == before


def test_batches_smaller_than_the_expired_rows_still_remove_them_all(db: None) -> None:
    for domain in SHOPS:
        shop = ShopFactory(domain=domain)
        for n in range(7):
            _ranking(shop, _days_ago(400 + n), f"old-{n}")
        _ranking(shop, _days_ago(10), "recent")
    reports: list[tuple[str, int, int]] = []
    removed = expired_rows_purge(
        today=TODAY, dry_run=False, batch_size=3, progress=lambda *report: reports.append(report)
    )
    assert removed["seo_rankings"] == 14
    ranking_reports = [(done, total) for table, done, total in reports if table == "seo_rankings"]
    # The count, then one report per batch: 3 + 3 + 3 + 3 + 2 (the short batch ends it).
    assert ranking_reports == [(0, 14), (3, 14), (6, 14), (9, 14), (12, 14), (14, 14)]
    assert _values(SeoRanking, "keyword") == [(shop, "recent") for shop in SHOPS]


def test_a_batch_size_of_exactly_the_expired_rows_ends_with_an_empty_batch(db: None) -> None:
    shop = ShopFactory(domain=SHOPS[0])
    for n in range(4):
        _ranking(shop, _days_ago(500 + n), f"old-{n}")
    reports: list[tuple[str, int, int]] = []
    expired_rows_purge(today=TODAY, dry_run=False, batch_size=2, progress=lambda *report: reports.append(report))
    assert [done for table, done, _ in reports if table == "seo_rankings"] == [0, 2, 4, 4]
    assert _counts()["seo_rankings"] == 0


@pytest.mark.django_db(transaction=True)
def test_each_batch_commits_on_its_own() -> None:
    shop = ShopFactory(domain=SHOPS[0])
    for n in range(5):
        _ranking(shop, _days_ago(400 + n), f"old-{n}")
    seen_elsewhere: list[int] = []

    def count_from_another_connection() -> None:
        try:
            with atomic_scope(service_scope()):
                seen_elsewhere.append(SeoRanking.objects.count())
        finally:
            connections.close_all()

    def after_batch(table: str, done: int, total: int) -> None:
        if table == "seo_rankings" and done == 2:
            # Another session sees the first batch gone while the purge is still running.
            reader = threading.Thread(target=count_from_another_connection)
            reader.start()
            reader.join()

    expired_rows_purge(today=TODAY, dry_run=False, batch_size=2, progress=after_batch)
    assert seen_elsewhere == [3]
    assert _counts()["seo_rankings"] == 0


def test_batch_size_out_of_range_is_refused(db: None) -> None:
    for size in (0, -1, 100_001):
        with pytest.raises(ValueError, match="batch_size"):
            expired_rows_purge(today=TODAY, dry_run=True, batch_size=size)


# --- the command -------------------------------------------------------------------------


def _purge(*args: str) -> str:
    out = StringIO()
    call_command("purge_expired", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.mark.usefixtures("edges")
def test_command_dry_run_prints_what_it_would_remove_and_deletes_nothing() -> None:
    before = _counts()
    output = _purge("--dry-run", "--today", "2026-06-30")
    assert _counts() == before
    assert "Dry run, nothing deleted" in output and "would remove" in output
    lines = {line.split()[0]: line.split()[1:] for line in output.splitlines()[2:] if line and line[0].islower()}
    assert lines["seo_rankings"] == ["365", "days", "2025-06-30", "2"]
    assert lines["ad_performance"] == ["730", "days", "2024-06-30", "2"]
    assert lines["experiment_results"] == ["forever", "-", "-"]
    assert lines["knowledge_base"] == ["forever", "-", "-"]
    assert "Total would remove: 8 rows." in output


@pytest.mark.usefixtures("edges")
def test_command_removes_the_expired_rows_and_leaves_the_connection_unscoped() -> None:
    output = _purge("--today", "2026-06-30", "--batch-size", "1")
    assert "Expired rows deleted" in output and "Total removed: 8 rows." in output
    assert _counts()["seo_rankings"] == 2
    # Every batch's service_role scope ended with it.
    assert current_scope() == ("app_owner", "")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--today", "30/06/2026"), "--today must be a date as YYYY-MM-DD"),
        (("--today", "2026-02-30"), "--today must be a date"),
        (("--batch-size", "0"), "--batch-size must be between 1 and 100000"),
        (("--batch-size", "1000000"), "--batch-size must be between 1 and 100000"),
    ],
)
def test_command_bad_options_are_errors_that_delete_nothing(edges: None, args: tuple[str, ...], words: str) -> None:
    before = _counts()
    with pytest.raises(CommandError, match=words):
        _purge(*args)
    assert _counts() == before
