"""Back office pages for campaigns, rankings and onboarding: charts, figures, scope, form errors.

Figures on the pages are compared with values computed by hand from the factory rows; the
charts are parsed as XML and their series and points counted. Query counts are measured with
2 and with 10 rows (each with related rows) and must be equal.
"""

from __future__ import annotations

import datetime
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format

from growth.factories import (
    AdCampaignFactory,
    AdPerformanceFactory,
    SeoRankingFactory,
    SocialAnalyticsFactory,
    SocialPostFactory,
)
from growth.models import AdCampaign, AdPerformance, SeoRanking, SocialAnalytics
from onboarding.factories import FeatureTourFactory, OnboardingProgressFactory
from onboarding.models import FeatureTour, OnboardingProgress
from onboarding.steps import ONBOARDING_STEPS
from tenancy.factories import ShopFactory, ShopMembershipFactory, UserFactory
from tenancy.models import Shop, ShopMembership, User
from tenancy.scope import atomic_scope, service_scope

pytestmark = pytest.mark.django_db

SVG = "{http://www.w3.org/2000/svg}"
DAY = datetime.date(2025, 3, 10)
NOW = timezone.now()


# --- helpers -------------------------------------------------------------------------------


def days_ago(n: int, *, start: datetime.date = DAY) -> datetime.date:
    return start - datetime.timedelta(days=n)


def svgs(body: str) -> list[ET.Element]:
    """Our charts in a page (the admin's own icons are SVG too)."""
    return [ET.fromstring(markup) for markup in re.findall(r'<svg [^>]*class="chart .*?</svg>', body, re.S)]


def series_of(svg: ET.Element) -> dict[str, list[str]]:
    """Series name -> the tooltip of each of its points, in x order."""
    return {
        str(group.get("data-series")): [c.findtext(f"{SVG}title", "") for c in group.iter(f"{SVG}circle")]
        for group in svg.iter(f"{SVG}g")
        if group.get("class") == "series"
    }


def cy_of(svg: ET.Element, series: str) -> list[float]:
    (group,) = [g for g in svg.iter(f"{SVG}g") if g.get("class") == "series" and g.get("data-series") == series]
    return [float(c.get("cy", "nan")) for c in group.iter(f"{SVG}circle")]


def cell(body: str, field: str) -> list[str]:
    return [
        re.sub(r"<[^>]+>", "", value).strip()
        for value in re.findall(rf'<td class="field-{field}">(.*?)</td>', body, re.S)
    ]


def errors_of(body: str) -> list[str]:
    return [
        re.sub(r"<[^>]+>", "", e).strip() for e in re.findall(r'<ul class="errorlist[^"]*"[^>]*>(.*?)</ul>', body, re.S)
    ]


def queries(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, response.content.decode()[:2000]
    return len(captured.captured_queries)


def stored(model: Any, **filters: Any) -> list[Any]:
    with atomic_scope(service_scope()):
        return list(model.objects.filter(**filters))


@pytest.fixture
def staff() -> User:
    user: User = UserFactory.create(username="back-office", is_staff=True, is_superuser=True)
    return user


@pytest.fixture
def staff_client(staff: User) -> Client:
    client = Client(raise_request_exception=False)
    client.force_login(staff)
    return client


def limited_staff(shop: Shop, *codenames: str) -> Client:
    """A staff member of one shop only, with the given model permissions (not a superuser)."""
    user = UserFactory(username=f"staff-of-{shop.domain}", is_staff=True)
    ShopMembershipFactory(user=user, shop=shop, role="member")
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    client = Client(raise_request_exception=False)
    client.force_login(user)
    return client


def admin_url(model: Any, view: str, *args: object) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


# --- ad campaigns: the change page's trend -------------------------------------------------


@pytest.fixture
def campaign_with_history() -> AdCampaign:
    """Five days of data on six calendar days (a gap on day 3), one without spend, and one row
    more than 90 days before the newest that the chart leaves out."""
    campaign = AdCampaignFactory(campaign_name="Spring sale", currency="EUR")
    rows = {
        days_ago(5): ("10.00", "40.00"),
        days_ago(4): ("20.00", "30.00"),
        # days_ago(3): nothing reported
        days_ago(2): ("0.00", "5.00"),
        days_ago(1): ("12.50", "100.00"),
        days_ago(0): ("1234.56", "2469.12"),
        days_ago(120): ("999.00", "1.00"),
    }
    for day, (cost, revenue) in rows.items():
        AdPerformanceFactory(campaign=campaign, date=day, cost=Decimal(cost), revenue=Decimal(revenue))
    return campaign


def test_campaign_page_charts_daily_spend_revenue_and_roas(
    staff_client: Client, campaign_with_history: AdCampaign
) -> None:
    response = staff_client.get(admin_url(AdCampaign, "change", campaign_with_history.pk))

    assert response.status_code == 200
    body = response.content.decode()
    money_chart, roas_chart = svgs(body)
    money_series = series_of(money_chart)
    assert list(money_series) == ["Spend (EUR)", "Revenue (EUR)"]
    assert money_series["Spend (EUR)"] == [
        "Spend (EUR) · 2025-03-05: 10",
        "Spend (EUR) · 2025-03-06: 20",
        "Spend (EUR) · 2025-03-08: 0",
        "Spend (EUR) · 2025-03-09: 12.5",
        "Spend (EUR) · 2025-03-10: 1,234.56",
    ]
    assert money_series["Revenue (EUR)"][-1] == "Revenue (EUR) · 2025-03-10: 2,469.12"
    # The missing day breaks both lines: 05-06 and 08-10.
    assert [len(list(g.iter(f"{SVG}polyline"))) for g in money_chart.iter(f"{SVG}g") if g.get("class") == "series"] == [
        2,
        2,
    ]
    # ROAS = revenue / spend per day; the day without spend has none (not zero, not infinite).
    assert series_of(roas_chart) == {
        "ROAS (revenue / spend)": [
            "ROAS (revenue / spend) · 2025-03-05: 4",
            "ROAS (revenue / spend) · 2025-03-06: 1.5",
            "ROAS (revenue / spend) · 2025-03-09: 8",
            "ROAS (revenue / spend) · 2025-03-10: 2",
        ]
    }
    assert "2024-11" not in body.split('id="campaign-trend"')[1].split("</fieldset>")[0]
    # Totals over the charted days: 1277.06 spent, 2644.12 earned, ROAS 2644.12 / 1277.06.
    assert re.search(r'class="total-cost">1,277.06<', body)
    assert re.search(r'class="total-revenue">2,644.12<', body)
    assert re.search(rf'class="total-roas">{Decimal("2644.12") / Decimal("1277.06"):.2f}<', body)
    assert "5 days with data" in body


def test_campaign_page_lists_daily_performance_latest_first_read_only(
    staff_client: Client, campaign_with_history: AdCampaign
) -> None:
    body = staff_client.get(admin_url(AdCampaign, "change", campaign_with_history.pk)).content.decode()

    inline = body.split('id="performance-group"')[1]
    shown = [date_format(day) for day in (days_ago(0), days_ago(1), days_ago(2), days_ago(4), days_ago(5))]
    positions = [inline.index(label) for label in shown]
    assert positions == sorted(positions)
    assert 'name="performance-0-cost"' not in inline


def test_campaign_without_performance_shows_no_data_charts(staff_client: Client) -> None:
    campaign = AdCampaignFactory()

    body = staff_client.get(admin_url(AdCampaign, "change", campaign.pk)).content.decode()

    charts = svgs(body)
    assert len(charts) == 2
    assert all("no-data" in (svg.get("class") or "") for svg in charts)


def test_campaign_page_query_count_does_not_grow_with_its_rows(staff_client: Client) -> None:
    campaign = AdCampaignFactory()
    url = admin_url(AdCampaign, "change", campaign.pk)
    for n in range(2):
        AdPerformanceFactory(campaign=campaign, date=days_ago(n))
    with_two = queries(staff_client, url)
    for n in range(2, 40):
        AdPerformanceFactory(campaign=campaign, date=days_ago(n))
    assert queries(staff_client, url) == with_two


# --- ad campaigns: the changelist ---------------------------------------------------------


def test_campaign_list_shows_totals_of_the_last_30_days(staff_client: Client) -> None:
    today = timezone.localdate()
    busy = AdCampaignFactory(campaign_name="Busy", currency="USD")
    for n, cost, revenue in ((0, "10.00", "35.00"), (29, "15.50", "20.00"), (30, "1000.00", "1.00")):
        AdPerformanceFactory(campaign=busy, date=days_ago(n, start=today), cost=Decimal(cost), revenue=Decimal(revenue))
    AdCampaignFactory(campaign_name="Idle")

    body = staff_client.get(admin_url(AdCampaign, "changelist"), {"o": "1"}).content.decode()

    names = cell(body, "campaign_name") or re.findall(r'<th class="field-campaign_name"><a [^>]*>(.*?)</a>', body)
    assert names == ["Busy", "Idle"]
    assert cell(body, "spend_recent") == ["25.50", "0.00"]
    assert cell(body, "revenue_recent") == ["55.00", "0.00"]
    assert cell(body, "roas_recent") == [f"{Decimal('55') / Decimal('25.5'):.2f}", "—"]
    # Filters and the date hierarchy on start_date are offered.
    assert "campaign_status__exact=active" in body
    assert "start_date__year=" in body


def test_campaign_list_sorts_by_recent_spend(staff_client: Client) -> None:
    today = timezone.localdate()
    for name, cost in (("Small", "5.00"), ("Large", "500.00"), ("Medium", "50.00")):
        AdPerformanceFactory(campaign=AdCampaignFactory(campaign_name=name), date=today, cost=Decimal(cost))
    changelist = staff_client.get(admin_url(AdCampaign, "changelist")).content.decode()
    sort_link = re.search(
        r'<th scope="col" class="sortable column-spend_recent">.*?href="(\?o=[^"]+)"', changelist, re.S
    )
    assert sort_link is not None

    body = staff_client.get(admin_url(AdCampaign, "changelist") + sort_link.group(1).replace("&amp;", "&")).content
    assert cell(body.decode(), "spend_recent") == ["5.00", "50.00", "500.00"]


@pytest.mark.parametrize(
    ("url", "make"),
    [
        (
            "admin:growth_adcampaign_changelist",
            lambda: [
                AdPerformanceFactory(campaign=c, date=days_ago(n)) for c in [AdCampaignFactory()] for n in range(3)
            ],
        ),
        ("admin:growth_adperformance_changelist", lambda: AdPerformanceFactory()),
        ("admin:growth_seoranking_changelist", lambda: SeoRankingFactory()),
        ("admin:growth_socialpost_changelist", lambda: SocialAnalyticsFactory()),
        ("admin:growth_socialanalytics_changelist", lambda: SocialAnalyticsFactory()),
        (
            "admin:onboarding_onboardingprogress_changelist",
            lambda: [
                OnboardingProgressFactory(user=u, shop=s) for u, s in [(UserFactory(), ShopFactory())] for _ in "ab"
            ],
        ),
        ("admin:onboarding_featuretour_changelist", lambda: FeatureTourFactory()),
    ],
    ids=lambda value: value.split("_")[-2] if isinstance(value, str) else "",
)
def test_changelist_query_count_is_the_same_for_2_and_10_rows_with_related_rows(
    staff_client: Client, url: str, make: Callable[[], object]
) -> None:
    for _ in range(2):
        make()
    with_two = queries(staff_client, reverse(url))
    for _ in range(8):
        make()
    assert queries(staff_client, reverse(url)) == with_two


def test_deleting_campaigns_from_the_annotated_list_removes_their_performance(staff_client: Client) -> None:
    campaign = AdCampaignFactory()
    AdPerformanceFactory(campaign=campaign, date=DAY)

    response = staff_client.post(
        admin_url(AdCampaign, "changelist"),
        {"action": "delete_selected", "_selected_action": [campaign.pk], "post": "yes"},
    )

    assert response.status_code == 302
    assert stored(AdCampaign, pk=campaign.pk) == []
    assert stored(AdPerformance, campaign_id=campaign.pk) == []


# --- limited staff -------------------------------------------------------------------------


def test_limited_staff_sees_the_trend_of_their_shop_only(campaign_with_history: AdCampaign) -> None:
    theirs = AdCampaignFactory(campaign_name="Ours")
    AdPerformanceFactory(campaign=theirs, date=DAY, cost=Decimal("3.00"), revenue=Decimal("9.00"))
    client = limited_staff(theirs.shop, "view_adcampaign", "view_adperformance")

    own = client.get(admin_url(AdCampaign, "change", theirs.pk))
    other = client.get(admin_url(AdCampaign, "change", campaign_with_history.pk))
    listing = client.get(admin_url(AdCampaign, "changelist")).content.decode()

    assert own.status_code == 200
    assert series_of(svgs(own.content.decode())[1]) == {
        "ROAS (revenue / spend)": ["ROAS (revenue / spend) · 2025-03-10: 3"]
    }
    # Another shop's campaign is answered as one that does not exist: back to the index.
    assert (other.status_code, other["Location"]) == (302, reverse("admin:index"))
    assert [str(m) for m in get_messages(other.wsgi_request)] == [
        f"ad campaign with ID “{campaign_with_history.pk}” doesn\u2019t exist. Perhaps it was deleted?"
    ]
    assert "Ours" in listing and "Spring sale" not in listing


# --- SEO rankings: position over time ------------------------------------------------------


def ranking(shop: Shop, keyword: str, day: datetime.date, position: int, **extra: Any) -> SeoRanking:
    at = datetime.datetime.combine(day, datetime.time(6), tzinfo=datetime.UTC)
    return SeoRankingFactory(shop=shop, keyword=keyword, tracked_at=at, tracked_on=day, position=position, **extra)


@pytest.fixture
def rankings() -> Shop:
    shop = ShopFactory(domain="rank.myshopify.com")
    for n, position in ((2, 5), (1, 3), (0, 1)):
        ranking(shop, "linen sheets", days_ago(n), position, search_engine="google", location="US")
    for n, position in ((2, 10), (0, 8)):
        ranking(shop, "linen sheets", days_ago(n), position, search_engine="bing", location="")
    # Another keyword of the shop and the same keyword in another shop: not on the chart.
    ranking(shop, "wool blanket", days_ago(0), 2)
    ranking(ShopFactory(domain="other.myshopify.com"), "linen sheets", days_ago(0), 50)
    return shop


def chart_url(**params: object) -> str:
    return reverse("admin:growth_seoranking_chart") + "?" + urlencode(params)


def test_ranking_chart_has_a_line_per_engine_and_location_with_position_one_on_top(
    staff_client: Client, rankings: Shop
) -> None:
    response = staff_client.get(chart_url(shop=rankings.domain, keyword="linen sheets"))

    assert response.status_code == 200
    body = response.content.decode()
    (svg,) = svgs(body)
    assert series_of(svg) == {
        "Bing · any location": ["Bing · any location · 2025-03-08: 10", "Bing · any location · 2025-03-10: 8"],
        "Google · US": [
            "Google · US · 2025-03-08: 5",
            "Google · US · 2025-03-09: 3",
            "Google · US · 2025-03-10: 1",
        ],
    }
    google = cy_of(svg, "Google · US")
    assert google[2] < google[1] < google[0]  # position 1 is drawn highest
    assert min(google) < min(cy_of(svg, "Bing · any location"))
    # The summary table: latest, day, best, worst, places gained since the first day shown.
    rows = re.findall(
        r"<tr>\s*<td>(.*?)</td><td>(\d+)</td><td>(\d+)</td>\s*<td>(.*?)</td><td>(\d+)</td><td>(\d+)</td><td>(-?\d+)</td>",
        body,
    )
    assert rows == [
        ("Bing · any location", "2", "8", "2025-03-10", "8", "10", "2"),
        ("Google · US", "3", "1", "2025-03-10", "1", "5", "4"),
    ]


def test_ranking_rows_link_to_their_keyword_chart(staff_client: Client, rankings: Shop) -> None:
    body = staff_client.get(admin_url(SeoRanking, "changelist"), {"q": "wool"}).content.decode()

    assert chart_url(shop=rankings.domain, keyword="wool blanket").replace("&", "&amp;") in body


def test_ranking_chart_window_counts_back_from_the_newest_day(staff_client: Client, rankings: Shop) -> None:
    ranking(rankings, "linen sheets", days_ago(7), 20, search_engine="google", location="US")
    url = chart_url(shop=rankings.domain, keyword="linen sheets")

    default = series_of(svgs(staff_client.get(url).content.decode())[0])
    week = series_of(svgs(staff_client.get(url + "&days=7").content.decode())[0])

    assert default["Google · US"][0] == "Google · US · 2025-03-03: 20"
    assert [len(points) for points in week.values()] == [2, 3]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"shop": "rank.myshopify.com", "keyword": "x", "days": 3}, "greater than or equal to 7"),
        ({"shop": "rank.myshopify.com"}, "This field is required."),
        ({"shop": "rank.myshopify.com", "keyword": "x", "days": "many"}, "Enter a whole number."),
    ],
)
def test_ranking_chart_reports_bad_parameters_as_form_errors(
    staff_client: Client, rankings: Shop, params: dict[str, object], message: str
) -> None:
    response = staff_client.get(chart_url(**params))

    assert response.status_code == 200
    body = response.content.decode()
    assert any(message in error for error in errors_of(body))
    assert svgs(body) == []


def test_ranking_chart_of_an_unknown_keyword_says_no_data(staff_client: Client, rankings: Shop) -> None:
    body = staff_client.get(chart_url(shop=rankings.domain, keyword="nothing")).content.decode()

    (svg,) = svgs(body)
    assert "no-data" in (svg.get("class") or "")
    assert "No rankings of this keyword" in body


def test_ranking_chart_query_count_does_not_grow_with_days(staff_client: Client) -> None:
    shop = ShopFactory()
    url = chart_url(shop=shop.domain, keyword="k")
    for n in range(2):
        ranking(shop, "k", days_ago(n), n + 1)
    with_two = queries(staff_client, url)
    for n in range(2, 10):
        ranking(shop, "k", days_ago(n), n + 1)
        ranking(shop, "k", days_ago(n), n + 2, search_engine="bing")
    assert queries(staff_client, url) == with_two


def test_limited_staff_gets_no_ranking_data_of_another_shop(rankings: Shop) -> None:
    own = ShopFactory(domain="own.myshopify.com")
    ranking(own, "linen sheets", DAY, 7)
    client = limited_staff(own, "view_seoranking")

    theirs = client.get(chart_url(shop=rankings.domain, keyword="linen sheets")).content.decode()
    mine = client.get(chart_url(shop=own.domain, keyword="linen sheets")).content.decode()

    assert "no-data" in (svgs(theirs)[0].get("class") or "")
    assert series_of(svgs(mine)[0]) == {"Google · US": ["Google · US · 2025-03-10: 7"]}


def test_ranking_chart_needs_the_view_permission(rankings: Shop) -> None:
    client = limited_staff(rankings, "view_adcampaign")

    assert client.get(chart_url(shop=rankings.domain, keyword="linen sheets")).status_code == 403


# --- onboarding funnel ---------------------------------------------------------------------


def progress(user: User, shop: Shop, step_key: str, status: str) -> OnboardingProgress:
    extra: dict[str, Any] = {"completed_at": NOW, "started_at": NOW} if status == "completed" else {}
    return OnboardingProgressFactory(user=user, shop=shop, step_key=step_key, status=status, **extra)


@pytest.fixture
def onboarding() -> tuple[Shop, Shop]:
    """Shop A: ann completed connect-store and is on import-products; bob skipped connect-store
    and has a not-started row for import-products. Shop B: cid completed connect-store and has
    a row of a retired step."""
    shop_a, shop_b = ShopFactory(domain="funnel-a.myshopify.com"), ShopFactory(domain="funnel-b.myshopify.com")
    ann, bob, cid = UserFactory(username="ann"), UserFactory(username="bob"), UserFactory(username="cid")
    progress(ann, shop_a, "connect-store", "completed")
    progress(ann, shop_a, "import-products", "in_progress")
    progress(bob, shop_a, "connect-store", "skipped")
    progress(bob, shop_a, "import-products", "not_started")
    progress(cid, shop_b, "connect-store", "completed")
    progress(cid, shop_b, "legacy-welcome", "completed")
    return shop_a, shop_b


def funnel_rows(body: str) -> dict[str, list[int]]:
    """Step -> [completed, in progress, skipped, not started, total] as the table shows them."""
    rows = re.findall(r'<tr data-step="([^"]+)">(.*?)</tr>', body, re.S)
    return {
        step: [int(n) for n in re.findall(r'<td class="(?:count|total)">(\d+)</td>', cells)] for step, cells in rows
    }


UNTOUCHED = [0, 0, 0]


def test_funnel_counts_every_participant_once_per_canonical_step(
    staff_client: Client, onboarding: tuple[Shop, Shop]
) -> None:
    response = staff_client.get(reverse("admin:onboarding_onboardingprogress_funnel"))

    assert response.status_code == 200
    body = response.content.decode()
    rows = funnel_rows(body)
    assert list(rows) == list(ONBOARDING_STEPS)
    assert rows["connect-store"] == [2, 0, 1, 0, 3]
    assert rows["import-products"] == [0, 1, 0, 2, 3]
    for step in ONBOARDING_STEPS[2:]:
        assert rows[step] == [0, 0, 0, 3, 3]
    assert "3 participants" in body
    assert re.findall(r'<td class="percent">(.*?)</td>', body)[:3] == ["66.7", "0.0", "0.0"]
    assert "1 row for steps outside the canonical list is not counted" in body
    (svg,) = svgs(body)
    bars = [g for g in svg.iter(f"{SVG}g") if g.get("class") == "bar"]
    assert [g.get("data-category") for g in bars] == list(ONBOARDING_STEPS)
    segments = [[r.get("data-stack") for r in g.iter(f"{SVG}rect")] for g in bars]
    assert segments[0] == ["Completed", "Skipped"]
    assert segments[1] == ["In progress", "Not started"]
    assert segments[5] == ["Not started"]


def test_funnel_of_one_shop(staff_client: Client, onboarding: tuple[Shop, Shop]) -> None:
    shop_a, _ = onboarding

    body = staff_client.get(reverse("admin:onboarding_onboardingprogress_funnel"), {"shop": shop_a.domain}).content
    rows = funnel_rows(body.decode())

    assert rows["connect-store"] == [1, 0, 1, 0, 2]
    assert rows["import-products"] == [0, 1, 0, 1, 2]
    assert rows["invite-team"] == [0, 0, 0, 2, 2]
    assert "2 participants" in body.decode()


def test_funnel_queryset_counts_in_one_query(onboarding: tuple[Shop, Shop]) -> None:
    with atomic_scope(service_scope()), CaptureQueriesContext(connection) as captured:
        funnel = OnboardingProgress.objects.funnel()

    assert len(captured.captured_queries) == 1
    assert funnel.participants == 3
    assert funnel.other_rows == 1
    first = funnel.steps[0]
    assert (first.step_key, first.completed, first.skipped, first.in_progress, first.not_started) == (
        "connect-store",
        2,
        1,
        0,
        0,
    )
    assert first.completed_percent == round(100 * 2 / 3, 1)


def test_funnel_with_a_bad_shop_filter_shows_the_form_error_and_no_figures(
    staff_client: Client, onboarding: tuple[Shop, Shop]
) -> None:
    response = staff_client.get(reverse("admin:onboarding_onboardingprogress_funnel"), {"shop": "x" * 300})

    assert response.status_code == 200
    body = response.content.decode()
    assert errors_of(body) == ["Ensure this value has at most 255 characters (it has 300)."]
    assert svgs(body) == []
    assert funnel_rows(body) == {}


def test_funnel_is_linked_from_the_progress_list(staff_client: Client, onboarding: tuple[Shop, Shop]) -> None:
    body = staff_client.get(admin_url(OnboardingProgress, "changelist")).content.decode()

    assert reverse("admin:onboarding_onboardingprogress_funnel") in body


def test_funnel_query_count_does_not_grow_with_participants(staff_client: Client) -> None:
    url = reverse("admin:onboarding_onboardingprogress_funnel")
    shop = ShopFactory()

    def participant() -> None:
        user = UserFactory()
        progress(user, shop, "connect-store", "completed")
        progress(user, shop, "import-products", "in_progress")

    for _ in range(2):
        participant()
    with_two = queries(staff_client, url)
    for _ in range(8):
        participant()
    assert queries(staff_client, url) == with_two


def test_limited_staff_funnel_counts_only_their_shop(onboarding: tuple[Shop, Shop]) -> None:
    shop_a, shop_b = onboarding
    client = limited_staff(shop_b, "view_onboardingprogress")

    everything = funnel_rows(client.get(reverse("admin:onboarding_onboardingprogress_funnel")).content.decode())
    other = client.get(reverse("admin:onboarding_onboardingprogress_funnel"), {"shop": shop_a.domain}).content.decode()

    assert everything["connect-store"] == [1, 0, 0, 0, 1]
    assert "0 participants" in other
    assert "no-data" in (svgs(other)[0].get("class") or "")


# --- form errors instead of 500s, nothing half-saved ---------------------------------------


def campaign_form(shop: Shop, **overrides: object) -> dict[str, object]:
    data: dict[str, object] = {
        "shop": shop.domain,
        "platform": "google_ads",
        "platform_campaign_id": "123",
        "campaign_name": "Launch",
        "currency": "USD",
        "bid_strategy": "manual_cpc",
        "campaign_status": "draft",
        "performance-TOTAL_FORMS": 0,
        "performance-INITIAL_FORMS": 0,
    }
    return {**data, **overrides}


def test_campaign_ending_before_it_starts_is_a_form_error(staff_client: Client) -> None:
    shop = ShopFactory()

    response = staff_client.post(
        admin_url(AdCampaign, "add"), campaign_form(shop, start_date="2025-03-02", end_date="2025-03-01")
    )

    assert response.status_code == 200
    assert errors_of(response.content.decode()) == ["Must not be before the start date (2025-03-02)."]
    assert stored(AdCampaign, shop=shop) == []


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"currency": "E1"}, "Use a three-letter ISO 4217 code, e.g. USD or EUR."),
        ({"daily_budget": "-5"}, "Ensure this value is greater than or equal to 0."),
    ],
)
def test_campaign_input_errors_are_form_errors(
    staff_client: Client, overrides: dict[str, object], message: str
) -> None:
    shop = ShopFactory()

    response = staff_client.post(admin_url(AdCampaign, "add"), campaign_form(shop, **overrides))

    assert response.status_code == 200
    assert message in errors_of(response.content.decode())
    assert stored(AdCampaign, shop=shop) == []


def test_campaign_currency_is_stored_upper_case(staff_client: Client) -> None:
    shop = ShopFactory()

    response = staff_client.post(admin_url(AdCampaign, "add"), campaign_form(shop, currency="eur"))

    assert response.status_code == 302
    assert [c.currency for c in stored(AdCampaign, shop=shop)] == ["EUR"]


def performance_form(campaign: AdCampaign, day: datetime.date, **overrides: object) -> dict[str, object]:
    data: dict[str, object] = {
        "campaign": campaign.pk,
        "date": day.isoformat(),
        "impressions": 100,
        "clicks": 5,
        "conversions": "1",
        "cost": "2.00",
        "revenue": "10.00",
    }
    return {**data, **overrides}


def test_moving_performance_to_another_shops_campaign_is_a_form_error(staff_client: Client) -> None:
    row = AdPerformanceFactory(date=DAY)
    elsewhere = AdCampaignFactory(campaign_name="Elsewhere")

    response = staff_client.post(admin_url(AdPerformance, "change", row.pk), performance_form(elsewhere, DAY))

    assert response.status_code == 200
    (error,) = errors_of(response.content.decode())
    assert f"Elsewhere belongs to {elsewhere.shop_id}" in error
    (unchanged,) = stored(AdPerformance, pk=row.pk)
    assert (unchanged.campaign_id, unchanged.shop_id) == (row.campaign_id, row.shop_id)


def test_moving_performance_to_a_campaign_of_the_same_shop_is_allowed(staff_client: Client) -> None:
    row = AdPerformanceFactory(date=DAY)
    sibling = AdCampaignFactory(shop=row.shop)

    response = staff_client.post(admin_url(AdPerformance, "change", row.pk), performance_form(sibling, DAY))

    assert response.status_code == 302
    assert stored(AdPerformance, pk=row.pk)[0].campaign_id == sibling.pk


def test_a_second_performance_row_for_the_same_day_is_a_form_error(staff_client: Client) -> None:
    row = AdPerformanceFactory(date=DAY)

    response = staff_client.post(admin_url(AdPerformance, "add"), performance_form(row.campaign, DAY))

    assert response.status_code == 200
    assert errors_of(response.content.decode()) == [f"“{row.campaign}” already has a performance row for 2025-03-10."]
    assert len(stored(AdPerformance, campaign=row.campaign)) == 1


def test_negative_cost_is_a_form_error(staff_client: Client) -> None:
    campaign = AdCampaignFactory()

    response = staff_client.post(admin_url(AdPerformance, "add"), performance_form(campaign, DAY, cost="-1"))

    assert response.status_code == 200
    assert errors_of(response.content.decode()) == ["Ensure this value is greater than or equal to 0."]
    assert stored(AdPerformance, campaign=campaign) == []


def test_limited_staff_cannot_add_performance_to_another_shops_campaign() -> None:
    own, elsewhere = AdCampaignFactory(), AdCampaignFactory()
    client = limited_staff(own.shop, "add_adperformance", "view_adperformance", "view_adcampaign")

    response = client.post(admin_url(AdPerformance, "add"), performance_form(elsewhere, DAY))

    assert response.status_code == 200
    assert any("Select a valid choice" in error for error in errors_of(response.content.decode()))
    assert stored(AdPerformance, campaign=elsewhere) == []
    assert client.post(admin_url(AdPerformance, "add"), performance_form(own, DAY)).status_code == 302


def test_moving_a_social_snapshot_to_another_shops_post_is_a_form_error(staff_client: Client) -> None:
    snapshot = SocialAnalyticsFactory()
    elsewhere = SocialPostFactory(platform=snapshot.platform)
    measured = snapshot.measured_at.astimezone(datetime.UTC)

    response = staff_client.post(
        admin_url(SocialAnalytics, "change", snapshot.pk),
        {
            "social_post": elsewhere.pk,
            "measured_at_0": measured.date().isoformat(),
            "measured_at_1": measured.time().isoformat(),
            **dict.fromkeys(("views", "likes", "comments", "shares", "reach", "impressions"), 0),
        },
    )

    assert response.status_code == 200
    assert "cannot move to another shop" in errors_of(response.content.decode())[0]
    assert stored(SocialAnalytics, pk=snapshot.pk)[0].social_post_id == snapshot.social_post_id


def ranking_form(shop: Shop, **overrides: object) -> dict[str, object]:
    data: dict[str, object] = {
        "shop": shop.domain,
        "keyword": "linen sheets",
        "position": 4,
        "search_engine": "google",
        "location": "US",
        "tracked_at_0": "2025-03-10",
        "tracked_at_1": "23:30:00",
        "tracked_on": "",
    }
    return {**data, **overrides}


def test_ranking_day_is_filled_in_from_the_tracking_time(staff_client: Client) -> None:
    shop = ShopFactory()

    response = staff_client.post(admin_url(SeoRanking, "add"), ranking_form(shop))

    assert response.status_code == 302
    assert [r.tracked_on for r in stored(SeoRanking, shop=shop)] == [DAY]


def test_ranking_day_that_contradicts_the_tracking_time_is_a_form_error(staff_client: Client) -> None:
    shop = ShopFactory()

    response = staff_client.post(admin_url(SeoRanking, "add"), ranking_form(shop, tracked_on="2025-03-09"))

    assert response.status_code == 200
    assert errors_of(response.content.decode()) == ["Must be the UTC date of tracked at (2025-03-10), or left empty."]
    assert stored(SeoRanking, shop=shop) == []


def test_a_second_ranking_for_the_same_day_is_a_form_error(staff_client: Client) -> None:
    shop = ShopFactory()
    ranking(shop, "linen sheets", DAY, 9, search_engine="google", location="US")

    response = staff_client.post(admin_url(SeoRanking, "add"), ranking_form(shop))

    assert response.status_code == 200
    assert "already exists" in errors_of(response.content.decode())[0]
    assert len(stored(SeoRanking, shop=shop)) == 1


def progress_form(user: User, shop: Shop, **overrides: object) -> dict[str, object]:
    data: dict[str, object] = {
        "user": user.pk,
        "shop": shop.domain,
        "step_key": "connect-store",
        "step_order": 0,
        "status": "not_started",
        "attempts": 0,
        "time_spent_seconds": 0,
    }
    return {**data, **overrides}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"step_key": "made-up"}, "Unknown onboarding step; expected one of: " + ", ".join(ONBOARDING_STEPS) + "."),
        ({"status": "completed"}, "A completed step needs the time it was completed."),
        (
            {
                "status": "completed",
                "started_at_0": "2025-03-10",
                "started_at_1": "10:00:00",
                "completed_at_0": "2025-03-10",
                "completed_at_1": "09:00:00",
            },
            "Must not be before started at.",
        ),
    ],
    ids=["unknown step", "completed without time", "completed before started"],
)
def test_onboarding_progress_input_errors_are_form_errors(
    staff_client: Client, overrides: dict[str, object], message: str
) -> None:
    user, shop = UserFactory(), ShopFactory()

    response = staff_client.post(admin_url(OnboardingProgress, "add"), progress_form(user, shop, **overrides))

    assert response.status_code == 200
    assert errors_of(response.content.decode()) == [message]
    assert stored(OnboardingProgress, shop=shop) == []


def test_tour_step_index_past_its_steps_is_a_form_error(staff_client: Client) -> None:
    user = UserFactory()

    response = staff_client.post(
        admin_url(FeatureTour, "add"),
        {
            "user": user.pk,
            "tour_key": "campaigns",
            "tour_name": "Campaigns",
            "steps": '[{"title": "One"}, {"title": "Two"}]',
            "status": "pending",
            "current_step": 2,
            "times_shown": 0,
            "interactions": 0,
        },
    )

    assert response.status_code == 200
    assert errors_of(response.content.decode()) == ["Must index a step: 0 to 1 for this tour."]
    assert stored(FeatureTour, user=user) == []


def test_limited_staff_see_only_their_shops_in_filters_lists_and_autocomplete() -> None:
    ours, also_ours = ShopFactory(domain="ours.myshopify.com"), ShopFactory(domain="ours-too.myshopify.com")
    theirs = ShopFactory(domain="theirs.myshopify.com")
    for shop in (ours, also_ours, theirs):
        AdCampaignFactory(shop=shop)
    ShopMembershipFactory(shop=theirs, user=UserFactory(username="their-owner"), role="owner")
    client = limited_staff(ours, "view_adcampaign", "view_shop", "view_shopmembership")
    ShopMembershipFactory(shop=also_ours, user=User.objects.get(username=f"staff-of-{ours.domain}"), role="member")

    campaigns = client.get(admin_url(AdCampaign, "changelist"))
    shops = client.get(admin_url(Shop, "changelist"))
    memberships = client.get(admin_url(ShopMembership, "changelist"))
    autocomplete = client.get(
        reverse("admin:autocomplete"),
        {"app_label": "growth", "model_name": "adcampaign", "field_name": "shop", "term": "myshopify"},
    )

    assert campaigns.status_code == shops.status_code == memberships.status_code == autocomplete.status_code == 200
    shop_filter = next(
        spec for spec in campaigns.context["cl"].filter_specs if getattr(spec, "field_path", "") == "shop"
    )
    mine = [also_ours.pk, ours.pk]
    assert [pk for pk, _ in shop_filter.lookup_choices] == mine
    assert sorted(shop.pk for shop in shops.context["cl"].result_list) == mine
    assert {m.shop_id for m in memberships.context["cl"].result_list} == set(mine)
    assert sorted(item["id"] for item in autocomplete.json()["results"]) == mine
    assert "theirs.myshopify.com" not in campaigns.content.decode() + shops.content.decode()
