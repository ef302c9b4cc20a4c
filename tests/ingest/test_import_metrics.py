"""manage.py import_metrics: real files, real PostgreSQL, the shop's policies in force."""

from __future__ import annotations

import datetime
import io
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import models

from growth.factories import AdCampaignFactory, AdPerformanceFactory, SocialPostFactory
from growth.ingest import natural_key
from growth.models import AdCampaign, AdPerformance, SeoRanking, SocialAnalytics, SocialPost
from tenancy.factories import ShopFactory
from tenancy.scope import atomic_scope, service_scope

SHOP = "alpha.myshopify.com"
OTHER = "bravo.myshopify.com"


@pytest.fixture
def campaign(db: None) -> AdCampaign:
    ShopFactory(domain=OTHER)
    return AdCampaignFactory(shop=ShopFactory(domain=SHOP))


@pytest.fixture
def post(db: None) -> SocialPost:
    ShopFactory(domain=OTHER)
    return SocialPostFactory(shop=ShopFactory(domain=SHOP), platform="tiktok")


def rows_of(model: type[models.Model], *fields: str) -> list[tuple[Any, ...]]:
    """Every row of the table, read as service_role (outside any shop's policies)."""
    with atomic_scope(service_scope()):
        return list(model.objects.order_by(*fields).values_list(*fields))


def write_csv(path: Path, header: str, *lines: str) -> Path:
    path.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    return path


def write_ndjson(path: Path, *records: dict[str, Any]) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return path


def run(*args: str, **options: Any) -> str:
    out, err = io.StringIO(), io.StringIO()
    call_command("import_metrics", *args, stdout=out, stderr=err, **options)
    return out.getvalue()


def test_natural_keys_come_from_the_models() -> None:
    assert natural_key(AdPerformance) == ("campaign_id", "date")
    assert natural_key(SeoRanking) == ("shop_domain", "keyword", "search_engine", "location", "tracked_on")
    assert natural_key(SocialAnalytics) == ("social_post_id", "measured_at")


def test_ad_performance_csv(tmp_path: Path, campaign: AdCampaign) -> None:
    path = write_csv(
        tmp_path / "ads.csv",
        "campaign_id,date,impressions,clicks,conversions,cost,revenue",
        f"{campaign.pk},2025-01-01,1000,50,2.5,25.00,100.00",
        f"{campaign.pk},2025-01-02,2000,0,,0,",
    )
    out = run("ad_performance", str(path), shop=SHOP)
    assert "2 rows" in out and "2 were created, 0 were updated" in out
    assert rows_of(
        AdPerformance, "date", "shop_id", "impressions", "clicks", "conversions", "cost", "revenue", "roas"
    ) == [
        (datetime.date(2025, 1, 1), SHOP, 1000, 50, Decimal("2.50"), Decimal("25.00"), Decimal("100.00"), Decimal("4")),
        (datetime.date(2025, 1, 2), SHOP, 2000, 0, Decimal("0"), Decimal("0"), Decimal("0"), None),
    ]


def test_ad_performance_ndjson(tmp_path: Path, campaign: AdCampaign) -> None:
    path = write_ndjson(
        tmp_path / "ads.ndjson",
        {"campaign_id": campaign.pk, "date": "2025-01-01", "impressions": 10, "clicks": 1, "cost": 0.5},
        {"campaign_id": campaign.pk, "date": "2025-01-02", "shop_domain": SHOP, "revenue": "12.30"},
    )
    assert "2 were created" in run("ad_performance", str(path), shop=SHOP)
    assert rows_of(AdPerformance, "date", "impressions", "clicks", "cost", "revenue") == [
        (datetime.date(2025, 1, 1), 10, 1, Decimal("0.50"), Decimal("0")),
        (datetime.date(2025, 1, 2), 0, 0, Decimal("0"), Decimal("12.30")),
    ]


def test_seo_rankings_csv_derives_tracked_on(tmp_path: Path, campaign: AdCampaign) -> None:
    path = write_csv(
        tmp_path / "ranks.csv",
        "keyword,position,url,search_volume,search_engine,location,featured_snippet,tracked_at",
        '"linen sheets, white",3,https://alpha.example/p/1,900,bing,US,true,2025-03-01T23:30:00-02:00',
        "linen sheets,12,,,,,,2025-03-01T10:00:00Z",
    )
    assert "2 were created" in run("seo_rankings", str(path), shop=SHOP)
    assert "0 were created, 2 were updated" in run("seo_rankings", str(path), shop=SHOP)
    assert rows_of(
        SeoRanking,
        "keyword",
        "position",
        "url",
        "search_volume",
        "search_engine",
        "location",
        "featured_snippet",
        "tracked_on",
    ) == [
        ("linen sheets", 12, "", None, "google", "", False, datetime.date(2025, 3, 1)),
        ("linen sheets, white", 3, "https://alpha.example/p/1", 900, "bing", "US", True, datetime.date(2025, 3, 2)),
    ]


def test_seo_rankings_ndjson(tmp_path: Path, campaign: AdCampaign) -> None:
    path = write_ndjson(
        tmp_path / "ranks.jsonl",
        {
            "keyword": "mug",
            "position": 1,
            "featured_snippet": True,
            "tracked_at": "2025-03-01T10:00:00Z",
            "tracked_on": "2025-03-01",
            "search_volume": None,
        },
    )
    assert "1 were created" in run("seo_rankings", str(path), shop=SHOP)
    assert rows_of(SeoRanking, "keyword", "position", "featured_snippet", "search_volume", "shop_id") == [
        ("mug", 1, True, None, SHOP)
    ]


def test_social_analytics_csv_copies_the_post_platform(tmp_path: Path, post: SocialPost) -> None:
    path = write_csv(
        tmp_path / "social.csv",
        "social_post_id,measured_at,views,likes,comments,shares,reach,impressions",
        f"{post.pk},2025-02-01T12:00:00Z,100,10,5,5,200,300",
    )
    assert "1 were created" in run("social_analytics", str(path), shop=SHOP)
    assert "0 were created, 1 were updated" in run("social_analytics", str(path), shop=SHOP)
    assert rows_of(SocialAnalytics, "social_post_id", "platform", "likes", "engagement_rate") == [
        (post.pk, "tiktok", 10, Decimal("0.1"))
    ]


def test_social_analytics_ndjson(tmp_path: Path, post: SocialPost) -> None:
    path = write_ndjson(
        tmp_path / "social.ndjson",
        {"social_post_id": post.pk, "measured_at": "2025-02-01T12:00:00Z", "views": 7},
        {"social_post_id": post.pk, "measured_at": "2025-02-01T13:00:00Z", "reach": 0},
    )
    assert "2 were created" in run("social_analytics", str(path), shop=SHOP)
    assert rows_of(SocialAnalytics, "measured_at", "views", "reach", "engagement_rate")[0][1:] == (7, 0, None)


def test_rerun_updates_and_never_duplicates(tmp_path: Path, campaign: AdCampaign) -> None:
    header = "campaign_id,date,impressions"
    path = write_csv(tmp_path / "ads.csv", header, f"{campaign.pk},2025-01-01,10", f"{campaign.pk},2025-01-02,20")
    assert "2 were created, 0 were updated" in run("ad_performance", str(path), shop=SHOP)
    assert "0 were created, 2 were updated" in run("ad_performance", str(path), shop=SHOP)
    write_csv(path, header, f"{campaign.pk},2025-01-02,25", f"{campaign.pk},2025-01-03,30")
    assert "1 were created, 1 were updated" in run("ad_performance", str(path), shop=SHOP, batch_size=1)
    assert rows_of(AdPerformance, "date", "impressions") == [
        (datetime.date(2025, 1, 1), 10),
        (datetime.date(2025, 1, 2), 25),
        (datetime.date(2025, 1, 3), 30),
    ]


def test_rows_written_by_others_are_updated_in_place(tmp_path: Path, existing: AdPerformance) -> None:
    path = write_csv(
        tmp_path / "ads.csv", "campaign_id,date,impressions,clicks", f"{existing.campaign_id},2025-01-01,9,4"
    )
    assert "0 were created, 1 were updated" in run("ad_performance", str(path), shop=SHOP)
    assert rows_of(AdPerformance, "id", "created_at", "created_by", "impressions", "clicks") == [
        (existing.pk, existing.created_at, existing.created_by, 9, 4)
    ]


def test_stdin(tmp_path: Path, campaign: AdCampaign, monkeypatch: pytest.MonkeyPatch) -> None:
    body = json.dumps({"campaign_id": campaign.pk, "date": "2025-01-01", "impressions": 40, "clicks": 3}) + "\n"
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(body.encode())))
    assert "1 were created" in run("ad_performance", "-", shop=SHOP, format="ndjson")
    assert rows_of(AdPerformance, "clicks") == [(3,)]


def test_dry_run_writes_nothing(tmp_path: Path, campaign: AdCampaign) -> None:
    path = write_csv(tmp_path / "ads.csv", "campaign_id,date", f"{campaign.pk},2025-01-01")
    assert "1 would be created, 0 would be updated (dry run, nothing written)" in run(
        "ad_performance", str(path), shop=SHOP, dry_run=True
    )
    assert rows_of(AdPerformance, "id") == []


def test_progress_goes_to_stderr(tmp_path: Path, campaign: AdCampaign, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("growth.management.commands.import_metrics.PROGRESS_EVERY", 0)
    lines = [f"{campaign.pk},{datetime.date(2025, 1, 1) + datetime.timedelta(days=i)}" for i in range(5)]
    path = write_csv(tmp_path / "ads.csv", "campaign_id,date", *lines)
    err = io.StringIO()
    call_command(
        "import_metrics", "ad_performance", str(path), shop=SHOP, batch_size=2, stdout=io.StringIO(), stderr=err
    )
    assert "ad_performance: 4 rows loaded" in err.getvalue() and "rows/s" in err.getvalue()


# Refusals: each names the line (or record) and column, and nothing of the file is written.


@pytest.fixture
def existing(campaign: AdCampaign) -> AdPerformance:
    """A row the refused imports must leave as it is."""
    return AdPerformanceFactory(campaign=campaign, date=datetime.date(2025, 1, 1), impressions=7)


def refused(path: Path, table: str = "ad_performance", **options: Any) -> str:
    before = {model: rows_of(model, "id", "updated_at") for model in (AdPerformance, SeoRanking, SocialAnalytics)}
    with pytest.raises(CommandError) as caught:
        run(table, str(path), shop=options.pop("shop", SHOP), **options)
    after = {model: rows_of(model, "id", "updated_at") for model in (AdPerformance, SeoRanking, SocialAnalytics)}
    assert after == before
    assert str(caught.value).endswith("; nothing was written")
    return str(caught.value)


ADS = "campaign_id,date,impressions,clicks"


@pytest.mark.parametrize(
    ("lines", "batch_size", "expected"),
    [
        (["{c},2025-01-01,5,1", "{c},2025-01-02,many,1"], 1, "line 3, column 'impressions': invalid value 'many'"),
        (["{c},2025-01-02,5,1", "{c},2025-02-30,5,1"], 10, "line 3, column 'date': invalid value '2025-02-30'"),
        (["{c},,5,1"], 10, "line 2, column 'date': a value is required"),
        (["{c},2025-01-02,5,-1"], 10, "line 2, column 'clicks': must satisfy CHECK ((clicks >= 0))"),
        (["{c},2025-01-02,99999999999,1"], 10, "line 2, column 'impressions': invalid value '99999999999'"),
        (["{c},2025-01-02,5"], 10, "line 2: 3 values for the header's 4 columns"),
        (
            ["{c},2025-01-02,5,1", "{c},2025-01-02,6,1"],
            10,
            "line 3, column 'date': same natural key (campaign_id, date) as line 2",
        ),
        (
            ["{c},2025-01-02,5,1", "{c},2025-01-02,6,1"],
            1,
            "line 3, column 'date': same natural key (campaign_id, date) as an earlier line",
        ),
        (
            ["{c},2025-01-02,5,1", "999999,2025-01-02,6,1"],
            1,
            "line 3, column 'campaign_id': ad campaign 999999 does not exist in this shop",
        ),
    ],
)
def test_invalid_rows_name_line_and_column(
    tmp_path: Path, existing: AdPerformance, lines: list[str], batch_size: int, expected: str
) -> None:
    path = write_csv(tmp_path / "ads.csv", ADS, *[line.format(c=existing.campaign_id) for line in lines])
    message = refused(path, batch_size=batch_size)
    assert expected in message and str(path) in message


def test_unknown_and_missing_columns(tmp_path: Path, existing: AdPerformance) -> None:
    assert "line 1, column 'ctr': unknown column" in refused(write_csv(tmp_path / "a.csv", "campaign_id,date,ctr"))
    assert "line 1, column 'date': required column is missing" in refused(write_csv(tmp_path / "b.csv", "campaign_id"))
    message = refused(write_ndjson(tmp_path / "c.ndjson", {"campaign_id": 1}), table="ad_performance")
    assert "line 1, column 'date': required column is missing" in message


def test_unreadable_files(tmp_path: Path, existing: AdPerformance) -> None:
    path = tmp_path / "ads.csv"
    path.write_bytes(b"campaign_id,date\n1,2025-01-01\n\xff\xfe,2025-01-02\n")
    assert "not UTF-8 text" in refused(path)
    assert "column 'date': the column appears twice" in refused(write_csv(path, "campaign_id,date,date"))


def test_ndjson_refusals(tmp_path: Path, existing: AdPerformance) -> None:
    good = {"campaign_id": existing.campaign_id, "date": "2025-01-05"}
    path = tmp_path / "ads.ndjson"
    path.write_text(json.dumps(good) + "\n\n{not json}\n", encoding="utf-8")
    assert "line 3: not JSON" in refused(path)
    write_ndjson(path, good, {**good, "date": "2025-01-06", "clicks": [1]})
    assert "line 2, column 'clicks': expected a scalar, got list" in refused(path)
    write_ndjson(path, good, {**good, "date": "2025-01-06", "cost": -1})
    assert "line 2, column 'cost': must satisfy CHECK ((cost >= (0)::numeric))" in refused(path)


def test_rows_of_another_shop_are_refused(tmp_path: Path, existing: AdPerformance) -> None:
    foreign = AdCampaignFactory(shop=ShopFactory(domain=OTHER))
    path = write_csv(
        tmp_path / "ads.csv",
        "shop_domain,campaign_id,date",
        f"{SHOP},{existing.campaign_id},2025-01-09",
        f"{OTHER},{existing.campaign_id},2025-01-10",
    )
    assert f"line 3, column 'shop_domain': the row belongs to shop '{OTHER}'" in refused(path)
    # A parent of another shop is invisible under the shop's policies: refused as missing.
    path = write_csv(tmp_path / "ads.csv", "campaign_id,date", f"{foreign.pk},2025-01-09")
    assert f"line 2, column 'campaign_id': ad campaign {foreign.pk} does not exist in this shop" in refused(path)


def test_social_analytics_of_another_shops_post(tmp_path: Path, post: SocialPost) -> None:
    foreign = SocialPostFactory(shop=ShopFactory(domain=OTHER))
    path = write_csv(
        tmp_path / "s.csv",
        "social_post_id,measured_at",
        f"{post.pk},2025-02-01T00:00:00Z",
        f"{foreign.pk},2025-02-01T00:00:00Z",
    )
    assert f"line 3, column 'social_post_id': social post {foreign.pk} does not exist" in refused(
        path, "social_analytics"
    )


def test_seo_rankings_refusals(tmp_path: Path, campaign: AdCampaign) -> None:
    header = "keyword,position,search_engine,tracked_at,tracked_on"
    path = write_csv(tmp_path / "r.csv", header, "mug,0,google,2025-03-01T10:00:00Z,")
    assert "line 2, column 'position': must satisfy CHECK" in refused(path, "seo_rankings")
    write_csv(path, header, "mug,1,altavista,2025-03-01T10:00:00Z,")
    assert "line 2, column 'search_engine': must satisfy CHECK" in refused(path, "seo_rankings")
    write_csv(path, header, "mug,1,google,2025-03-01T10:00:00Z,2025-03-02")
    assert "line 2, column 'tracked_on': must be the UTC date of tracked_at" in refused(path, "seo_rankings")
    write_csv(path, header, f"{'k' * 501},1,google,2025-03-01T10:00:00Z,")
    assert "line 2, column 'keyword': invalid value" in refused(path, "seo_rankings")


def test_usage_errors(tmp_path: Path, campaign: AdCampaign) -> None:
    path = write_csv(tmp_path / "ads.txt", "campaign_id,date")
    with pytest.raises(CommandError, match="pass --format"):
        run("ad_performance", str(path), shop=SHOP)
    with pytest.raises(CommandError, match=r"shop 'nope\.myshopify\.com' does not exist"):
        run("ad_performance", str(path), shop="nope.myshopify.com", format="csv")
    with pytest.raises(CommandError, match="cannot read"):
        run("ad_performance", str(tmp_path / "missing.csv"), shop=SHOP)
