"""The back office's review workflows, through the admin as a staff user (Django test client).

Briefings: the review queue and its filters, the change page read as a report (metrics table,
insights list), rating and notes stamped with the reviewer, the bulk "mark reviewed" action and
the rating statistics per generation model. Experiments: the change page's variants, latest
results and interval chart, every lifecycle action (and the refusal of an illegal one).
Knowledge documents: an edit saves the next version, history is read-only and linked. And the
query count of each of these pages does not grow with its rows.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from advanced.briefings.factories import CeoBriefingFactory
from advanced.briefings.llm import TemplateWriter
from advanced.briefings.services import briefing_generate
from advanced.experiments.factories import ExperimentFactory, ExperimentResultFactory, two_variants
from advanced.knowledge.factories import KnowledgeDocumentFactory
from advanced.knowledge.services import knowledge_document_save
from advanced.models import CeoBriefing, Experiment, KnowledgeDocument
from tenancy.factories import ShopFactory, UserFactory
from tenancy.models import User
from tenancy.scope import atomic_scope, service_scope

pytestmark = pytest.mark.django_db

BRIEFINGS = reverse("admin:advanced_ceobriefing_changelist")
STATISTICS = reverse("admin:advanced_ceobriefing_statistics")
EXPERIMENTS = reverse("admin:advanced_experiment_changelist")
DOCUMENTS = reverse("admin:advanced_knowledgedocument_changelist")
# Joins the parts of a metric's name in the briefing report ("Ads > Spend", with a guillemet).
SEP = "\u203a"


@pytest.fixture
def staff(db: None) -> User:
    user: User = UserFactory.create(username="reviewer", is_staff=True, is_superuser=True)
    return user


@pytest.fixture
def staff_client(client: Client, staff: User) -> Client:
    client.force_login(staff)
    return client


def change_url(obj: Any) -> str:
    return reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])


def messages_of(response: Any) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def listed_pks(response: Any) -> list[int]:
    assert response.status_code == 200
    return [obj.pk for obj in response.context["cl"].result_list]


def query_count(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200
    return len(captured.captured_queries)


def fresh(obj: Any) -> Any:
    with atomic_scope(service_scope()):
        return type(obj).objects.get(pk=obj.pk)


# --- CEO briefings --------------------------------------------------------------------------

KEY_METRICS: dict[str, Any] = {
    "version": 1,
    "period": {"type": "weekly", "start": "2026-02-23", "end": "2026-03-01", "days": 7},
    "ads": {
        "currencies": ["USD"],
        "spend": {"current": "1234.50", "previous": "1000.00", "change": "234.50", "change_pct": 23.5},
        "revenue": {"current": "5000.00", "previous": "5500.00", "change": "-500.00", "change_pct": -9.1},
        "roas": {"current": 4.05, "previous": 5.5, "change": -1.45, "change_pct": -26.4},
    },
    "seo": {
        "scores": {"technical": {"current": 81, "previous": 75, "change": 6, "change_pct": 8.0, "trend": "up"}},
        "keywords_entered_top10": [
            {"keyword": "linen shirt", "search_engine": "google", "location": "US", "best_position": 7}
        ],
    },
    "social": {
        "top_posts": [
            {"platform": "instagram", "platform_post_id": "ig-1", "engagement_rate": 0.0812, "reach": 12000},
            {"platform": "tiktok", "platform_post_id": "tt-9", "engagement_rate": 0.05, "reach": 40100},
        ]
    },
    "experiments": {"concluded": []},
    "onboarding": {"steps_total": 12, "steps_completed": 9, "completion_pct": 75.0, "completed_in_period": 2},
}
INSIGHTS = [
    {"rank": 2, "kind": "ads_movement", "title": "Ad spend up 23.5%", "detail": "USD 1,234.50 against 1,000.00."},
    {"rank": 1, "kind": "experiment_winner", "title": "Free shipping won", "detail": "Completed at 97% confidence."},
    {"rank": 3, "kind": "onboarding_progress", "title": "2 onboarding steps completed", "detail": "75% complete."},
]


def reviewed_briefing(reviewer: User, **fields: Any) -> CeoBriefing:
    return CeoBriefingFactory.create(reviewed_by=reviewer, reviewed_at=timezone.now(), **fields)


def test_queue_lists_unreviewed_briefings_first_and_filters_by_review_state(staff_client: Client) -> None:
    someone = UserFactory.create(username="earlier-reviewer")
    reviewed = reviewed_briefing(someone, rating=4)
    unreviewed = [CeoBriefingFactory.create(), CeoBriefingFactory.create()]

    everything = staff_client.get(BRIEFINGS)
    order = listed_pks(everything)
    # Unreviewed first (newest period first), then the reviewed one, whatever its period.
    assert order[-1] == reviewed.pk
    assert set(order[:2]) == {b.pk for b in unreviewed}
    assert "Review queue (2 unreviewed)" in everything.content.decode()

    assert set(listed_pks(staff_client.get(BRIEFINGS, {"reviewed": "no"}))) == {b.pk for b in unreviewed}
    assert listed_pks(staff_client.get(BRIEFINGS, {"reviewed": "yes"})) == [reviewed.pk]


def test_queue_filters_by_shop_type_period_and_rating(staff_client: Client) -> None:
    someone = UserFactory.create(username="earlier-reviewer")
    alpha, bravo = ShopFactory.create(domain="alpha.myshopify.com"), ShopFactory.create(domain="bravo.myshopify.com")
    march = CeoBriefingFactory.create(
        shop=alpha, briefing_type="daily", period_start=datetime.date(2026, 3, 5), period_end=datetime.date(2026, 3, 5)
    )
    february = CeoBriefingFactory.create(
        shop=alpha, briefing_type="weekly", period_start=datetime.date(2026, 2, 1), period_end=datetime.date(2026, 2, 7)
    )
    rated = reviewed_briefing(
        someone,
        shop=bravo,
        briefing_type="weekly",
        period_start=datetime.date(2026, 3, 1),
        period_end=datetime.date(2026, 3, 7),
        rating=2,
    )

    assert set(listed_pks(staff_client.get(BRIEFINGS, {"shop__domain__exact": alpha.domain}))) == {
        march.pk,
        february.pk,
    }
    assert set(listed_pks(staff_client.get(BRIEFINGS, {"briefing_type__exact": "weekly"}))) == {
        february.pk,
        rated.pk,
    }
    in_march = staff_client.get(BRIEFINGS, {"period_end__year": 2026, "period_end__month": 3})
    assert set(listed_pks(in_march)) == {march.pk, rated.pk}
    assert listed_pks(staff_client.get(BRIEFINGS, {"rating__exact": 2})) == [rated.pk]
    both = staff_client.get(BRIEFINGS, {"shop__domain__exact": alpha.domain, "briefing_type__exact": "daily"})
    assert listed_pks(both) == [march.pk]


def test_briefing_page_reads_as_a_report_not_json(staff_client: Client) -> None:
    briefing = CeoBriefingFactory.create(
        executive_summary="Revenue held up.\n\nSpend rose faster than revenue.",
        key_metrics=KEY_METRICS,
        insights=INSIGHTS,
    )

    body = staff_client.get(change_url(briefing)).content.decode()

    assert "<p>Revenue held up.</p>" in body
    assert "<p>Spend rose faster than revenue.</p>" in body
    metrics = re.search(r'<table class="briefing-metrics">(.*?)</table>', body, re.S)
    assert metrics is not None
    rows = [
        [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)]
        for row in re.findall(r'<tr class="metric-row">(.*?)</tr>', metrics.group(1), re.S)
    ]
    assert rows == [
        [f"Ads {SEP} Spend", "1,234.50", "1,000.00", "+234.50", "+23.5%"],
        [f"Ads {SEP} Revenue", "5,000.00", "5,500.00", "-500.00", "-9.1%"],
        [f"Ads {SEP} ROAS", "4.05", "5.5", "-1.45", "-26.4%"],
        [f"SEO {SEP} Scores {SEP} Technical", "81", "75", "+6", "+8.0%"],
    ]
    assert '<td class="number up">+23.5%</td>' in body
    assert '<td class="number down">-9.1%</td>' in body
    # Single figures and lists are tables too.
    assert f'<th scope="row">Onboarding {SEP} Completion %</th><td>75</td>' in body
    assert f'<th scope="row">Ads {SEP} Currencies</th><td>USD</td>' in body
    assert f"<h3>Social {SEP} Top posts</h3>" in body
    assert "<td>ig-1</td><td>0.0812</td><td>12,000</td>" in body
    assert f'<th scope="row">Experiments {SEP} Concluded</th><td>none</td>' in body
    # Insights: an ordered list by rank, title then detail.
    insights = re.search(r'<ol class="briefing-insights">(.*?)</ol>', body, re.S)
    assert insights is not None
    titles = re.findall(r'<strong class="insight-title">(.*?)</strong>', insights.group(1))
    assert titles == ["Free shipping won", "Ad spend up 23.5%", "2 onboarding steps completed"]
    assert '<div class="insight-detail">Completed at 97% confidence.</div>' in insights.group(1)
    # Never the stored JSON.
    assert "change_pct" not in body
    assert '"current"' not in body and "&quot;current&quot;" not in body
    # Only the review is editable.
    assert re.findall(r'<(?:select|textarea|input)[^>]*name="([a-z_]+)"', body).count("rating") == 1
    assert 'name="executive_summary"' not in body and 'name="key_metrics"' not in body


def test_generated_briefing_page_renders(staff_client: Client) -> None:
    shop = ShopFactory.create()
    with atomic_scope(service_scope()):
        briefing = briefing_generate(
            shop_id=shop.domain,
            briefing_type="weekly",
            period_end=timezone.now().date() - datetime.timedelta(days=1),
            writer=TemplateWriter(),
        )

    body = staff_client.get(change_url(briefing)).content.decode()

    assert f"Ads {SEP} Spend" in body and f"SEO {SEP} Scores {SEP} Technical" in body
    assert f"Period {SEP} Previous start" in body
    assert "change_pct" not in body


def test_rating_a_briefing_stamps_the_reviewer(staff_client: Client, staff: User) -> None:
    briefing = CeoBriefingFactory.create()
    before = timezone.now()

    response = staff_client.post(
        change_url(briefing), {"rating": "5", "feedback_notes": "Clear and short."}, follow=True
    )

    assert response.status_code == 200
    assert any("was changed successfully" in message for message in messages_of(response))
    saved = fresh(briefing)
    assert (saved.rating, saved.feedback_notes, saved.reviewed_by_id) == (5, "Clear and short.", staff.pk)
    assert saved.reviewed_at is not None and saved.reviewed_at >= before
    # The generated columns were not touched.
    assert (saved.executive_summary, saved.key_metrics) == (briefing.executive_summary, briefing.key_metrics)


def test_saving_an_unchanged_review_stamps_nothing(staff_client: Client) -> None:
    briefing = CeoBriefingFactory.create()

    response = staff_client.post(change_url(briefing), {"rating": "", "feedback_notes": ""})

    assert response.status_code == 302
    assert fresh(briefing).reviewed_at is None


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"rating": "6", "feedback_notes": "Too generous"}, "rating", "Select a valid choice. 6 is not one of"),
        ({"rating": "0", "feedback_notes": ""}, "rating", "Select a valid choice. 0 is not one of"),
        ({"rating": "3", "feedback_notes": "x" * 10_001}, "feedback_notes", "Keep feedback notes under 10,000"),
    ],
    ids=["rating-6", "rating-0", "notes-too-long"],
)
def test_invalid_review_is_a_form_error_and_writes_nothing(
    staff_client: Client, data: dict[str, str], field: str, message: str
) -> None:
    briefing = CeoBriefingFactory.create()

    response = staff_client.post(change_url(briefing), data)

    assert response.status_code == 200
    assert message in str(response.context["adminform"].form.errors[field])
    assert 'class="errornote"' in response.content.decode()
    saved = fresh(briefing)
    assert (saved.rating, saved.feedback_notes, saved.reviewed_at, saved.reviewed_by_id) == (None, "", None, None)


def test_mark_reviewed_stamps_unreviewed_briefings_and_keeps_earlier_reviewers(
    staff_client: Client, staff: User
) -> None:
    earlier = UserFactory.create(username="earlier-reviewer")
    pending = [CeoBriefingFactory.create(rating=3), CeoBriefingFactory.create()]
    done = reviewed_briefing(earlier, rating=5)
    stamped_at = fresh(done).reviewed_at

    response = staff_client.post(
        BRIEFINGS,
        {"action": "mark_reviewed", "_selected_action": [b.pk for b in [*pending, done]], "index": 0},
        follow=True,
    )

    assert "Marked 2 briefing(s) reviewed; 1 had been reviewed already and keep their reviewer." in messages_of(
        response
    )
    for briefing in pending:
        saved = fresh(briefing)
        assert saved.reviewed_by_id == staff.pk and saved.reviewed_at is not None
        assert saved.rating == briefing.rating
    kept = fresh(done)
    assert (kept.reviewed_by_id, kept.reviewed_at, kept.rating) == (earlier.pk, stamped_at, 5)


def test_rating_statistics_per_generation_model(staff_client: Client) -> None:
    someone = UserFactory.create(username="earlier-reviewer")
    alpha = ShopFactory.create(domain="alpha.myshopify.com")
    for rating in (5, 4, 4):
        reviewed_briefing(someone, generation_model="gpt-4o-mini", rating=rating, shop=alpha)
    reviewed_briefing(someone, generation_model="gpt-4o-mini")  # reviewed, not rated
    CeoBriefingFactory.create(generation_model="gpt-4o-mini")  # not reviewed
    reviewed_briefing(someone, generation_model="template-v1", rating=2)
    CeoBriefingFactory.create(generation_model="template-v1")

    changelist = staff_client.get(BRIEFINGS).content.decode()
    assert f'href="{STATISTICS}"' in changelist
    response = staff_client.get(STATISTICS)

    assert response.status_code == 200
    figures = {
        row["stats"].generation_model: (
            row["stats"].briefings,
            row["stats"].reviewed,
            row["stats"].rated,
            row["stats"].average_rating,
            row["stats"].distribution,
        )
        for row in response.context["rows"]
    }
    assert figures == {
        "gpt-4o-mini": (5, 4, 3, pytest.approx(13 / 3), (0, 0, 0, 2, 1)),
        "template-v1": (2, 1, 1, 2.0, (0, 1, 0, 0, 0)),
    }
    body = response.content.decode()
    assert '<td class="number average">4.33</td>' in body
    assert '<td class="number average">2.00</td>' in body

    # The list's filters carry over: one shop's briefings only.
    only_alpha = staff_client.get(STATISTICS, {"shop__domain__exact": alpha.domain})
    assert [(row["stats"].generation_model, row["stats"].briefings) for row in only_alpha.context["rows"]] == [
        ("gpt-4o-mini", 3)
    ]


# --- experiments ----------------------------------------------------------------------------

THREE_VARIANTS = [
    {"key": "control", "name": "Current page", "weight": 1, "is_control": True},
    {"key": "banner", "name": "Free shipping banner", "weight": 1, "is_control": False},
    {"key": "popup", "name": "Exit popup", "weight": 1, "is_control": False},
]
TODAY = datetime.date(2026, 3, 10)


def experiment_with_results(figures: dict[str, tuple[int, int]], **fields: Any) -> Experiment:
    """An experiment of THREE_VARIANTS with a stale and a latest snapshot per variant."""
    experiment: Experiment = ExperimentFactory.create(variants=THREE_VARIANTS, **fields)
    for key, (participants, conversions) in figures.items():
        ExperimentResultFactory.create(
            experiment=experiment,
            variant_key=key,
            snapshot_date=TODAY - datetime.timedelta(days=1),
            participants=participants // 2,
            conversions=conversions // 2,
        )
        ExperimentResultFactory.create(
            experiment=experiment,
            variant_key=key,
            snapshot_date=TODAY,
            participants=participants,
            conversions=conversions,
        )
    return experiment


def test_experiment_page_shows_variants_latest_results_and_an_interval_per_variant(staff_client: Client) -> None:
    figures = {"control": (1000, 40), "banner": (1000, 55), "popup": (800, 30)}
    experiment = experiment_with_results(figures)

    body = staff_client.get(change_url(experiment)).content.decode()

    # The conversion-rate chart (the review's lift chart comes first on the page).
    svg = re.search(r"<svg [^>]*class=\"chart interval-chart\"[^>]*><title>Conversion rate.*?</svg>", body, re.S)
    assert svg is not None
    chart = svg.group(0)
    assert "<script" not in chart and "href=" not in chart
    assert len(re.findall(r'<line class="interval"', chart)) == 3
    assert len(re.findall(r'<circle class="estimate"', chart)) == 3
    # The latest snapshot's 95% Wald intervals, worked out by hand (p +- 1.96 sqrt(p(1-p)/n)); the
    # stale snapshot (half the counts, the same rates) would give wider ones.
    pinned = {
        "control": "4.00% [2.79% to 5.21%]",
        "banner": "5.50% [4.09% to 6.91%]",
        "popup": "3.75% [2.43% to 5.07%]",
    }
    for key, text in pinned.items():
        assert text in chart
        name = next(v["name"] for v in THREE_VARIANTS if v["key"] == key)
        assert f'data-label="{name} ({key})"' in chart
    # Variants as a table, with their latest figures.
    assert len(re.findall(r'<tr class="variant-row"', body)) == 3
    assert "Free shipping banner" in body and "33%" in body
    # The inline holds the latest snapshot of each variant only.
    inline_dates = re.findall(r'<td class="field-snapshot_date">\s*<p>([^<]*)</p>', body)
    assert inline_dates == ["March 10, 2026"] * 3  # TODAY, never the stale day before
    assert 'name="variants"' not in body  # running: the design is read-only
    assert 'name="status"' not in body and 'name="started_at"' not in body


def test_experiment_without_results_shows_an_empty_chart(staff_client: Client) -> None:
    experiment = ExperimentFactory.create(status="draft", started_at=None)

    body = staff_client.get(change_url(experiment)).content.decode()

    assert 'class="chart interval-chart no-data"' in body
    assert 'name="variants"' in body  # a draft's design is still editable


def run_action(client: Client, action: str, *experiments: Experiment, **extra: Any) -> Any:
    return client.post(
        EXPERIMENTS,
        {"action": action, "_selected_action": [e.pk for e in experiments], "index": 0, **extra},
        follow=True,
    )


def status_of(experiment: Experiment) -> str:
    return str(fresh(experiment).status)


def test_start_pause_resume_complete_and_archive_through_the_admin(staff_client: Client) -> None:
    experiment = ExperimentFactory.create(status="draft", started_at=None, variants=two_variants())

    assert "Started 1 experiment(s)." in messages_of(run_action(staff_client, "start_experiments", experiment))
    assert status_of(experiment) == "running" and fresh(experiment).started_at is not None
    run_action(staff_client, "pause_experiments", experiment)
    assert status_of(experiment) == "paused"
    run_action(staff_client, "resume_experiments", experiment)
    assert status_of(experiment) == "running"
    run_action(staff_client, "complete_experiments", experiment)
    completed = fresh(experiment)
    assert completed.status == "completed" and completed.ended_at is not None and completed.winning_variant is None
    run_action(staff_client, "archive_experiments", experiment)
    assert status_of(experiment) == "archived"


def test_analyze_now_records_the_winner(staff_client: Client) -> None:
    experiment = experiment_with_results({"control": (5000, 200), "banner": (5000, 320), "popup": (5000, 205)})

    response = run_action(staff_client, "analyze_experiments", experiment)

    assert any(message.startswith(f"{experiment}: winner banner at ") for message in messages_of(response))
    analysed = fresh(experiment)
    assert analysed.status == "running"
    assert analysed.winning_variant == "banner"
    assert analysed.confidence_level is not None and analysed.confidence_level > Decimal("0.95")


def test_complete_with_a_winner_through_the_intermediate_page(staff_client: Client) -> None:
    experiment = experiment_with_results({"control": (1000, 40), "banner": (1000, 55), "popup": (800, 30)})

    page = run_action(staff_client, "complete_with_winner", experiment)

    assert page.status_code == 200
    body = page.content.decode()
    assert 'class="chart interval-chart"' in body
    assert re.findall(r'name="winner" value="([a-z]+)"', body) == ["control", "banner", "popup"]
    assert status_of(experiment) == "running"

    done = staff_client.post(
        EXPERIMENTS,
        {"action": "complete_with_winner", "_selected_action": [experiment.pk], "apply": "1", "winner": "popup"},
        follow=True,
    )

    assert f"Completed {experiment} with winner popup." in messages_of(done)
    completed = fresh(experiment)
    assert (completed.status, completed.winning_variant, completed.confidence_level) == ("completed", "popup", None)
    assert completed.ended_at is not None


def test_an_unknown_winner_is_a_form_error_and_completes_nothing(staff_client: Client) -> None:
    experiment = ExperimentFactory.create()

    response = staff_client.post(
        EXPERIMENTS,
        {"action": "complete_with_winner", "_selected_action": [experiment.pk], "apply": "1", "winner": "nope"},
    )

    assert response.status_code == 200
    assert "Select a valid choice. nope is not one of the available choices." in response.content.decode()
    assert status_of(experiment) == "running"


@pytest.mark.parametrize(
    ("action", "status", "message"),
    [
        ("pause_experiments", "draft", "Not paused: {e}: Cannot pause an experiment that is draft."),
        ("start_experiments", "completed", "Not started: {e}: Cannot start an experiment that is completed."),
        ("archive_experiments", "running", "Not archived: {e}: Cannot archive an experiment that is running."),
        ("complete_experiments", "archived", "Not completed: {e}: Cannot complete an experiment that is archived."),
        ("complete_with_winner", "draft", "Not completed: {e} is draft; only running or paused experiments"),
    ],
)
def test_an_illegal_action_is_an_error_message_and_changes_nothing(
    staff_client: Client, action: str, status: str, message: str
) -> None:
    ended = timezone.now() if status in ("completed", "archived") else None
    experiment = ExperimentFactory.create(status=status, ended_at=ended)
    with atomic_scope(service_scope()):
        before = Experiment.objects.filter(pk=experiment.pk).values().get()

    response = run_action(staff_client, action, experiment)

    errors = [str(m) for m in response.context["messages"] if m.level_tag == "error"]
    assert len(errors) == 1 and errors[0].startswith(message.format(e=experiment)), errors
    with atomic_scope(service_scope()):
        assert Experiment.objects.filter(pk=experiment.pk).values().get() == before


def test_starting_an_experiment_with_invalid_variants_is_refused(staff_client: Client) -> None:
    experiment = ExperimentFactory.create(status="draft", started_at=None, variants=[{"key": "only"}])

    response = run_action(staff_client, "start_experiments", experiment)

    errors = [str(m) for m in response.context["messages"] if m.level_tag == "error"]
    assert errors == [f"Not started: {experiment}: An experiment needs at least two variants; got 1."]
    assert status_of(experiment) == "draft"


def test_complete_with_winner_needs_exactly_one_experiment(staff_client: Client) -> None:
    first, second = ExperimentFactory.create(), ExperimentFactory.create()

    response = run_action(staff_client, "complete_with_winner", first, second)

    assert any("Select exactly one experiment" in message for message in messages_of(response))
    assert status_of(first) == status_of(second) == "running"


def test_a_draft_with_invalid_variants_is_a_form_error(staff_client: Client) -> None:
    experiment = ExperimentFactory.create(status="draft", started_at=None)
    with atomic_scope(service_scope()):
        before = Experiment.objects.filter(pk=experiment.pk).values().get()

    response = staff_client.post(
        change_url(experiment),
        {
            "shop": experiment.shop_id,
            "experiment_key": experiment.experiment_key,
            "experiment_name": "Renamed",
            "description": "",
            "primary_metric": "conversion_rate",
            "confidence_threshold": "0.95",
            "min_sample_size": "100",
            "variants": '[{"key": "a", "weight": 0.5, "is_control": true}, {"key": "a", "weight": 0.5}]',
            "results-TOTAL_FORMS": "0",
            "results-INITIAL_FORMS": "0",
        },
    )

    assert response.status_code == 200
    assert "variants[1].key &#x27;a&#x27; is already the key of variants[0]" in response.content.decode()
    with atomic_scope(service_scope()):
        assert Experiment.objects.filter(pk=experiment.pk).values().get() == before


# --- knowledge documents --------------------------------------------------------------------


def saved_document(shop_domain: str, key: str = "returns", **fields: Any) -> KnowledgeDocument:
    values: dict[str, Any] = {
        "title": "Returns",
        "content": "Items can be returned within 30 days.",
        "document_type": "policy",
        "tags": ["returns"],
        **fields,
    }
    with atomic_scope(service_scope()):
        return knowledge_document_save(shop_id=shop_domain, document_key=key, actor=None, **values)


def versions(shop_domain: str, key: str) -> list[tuple[int, bool, str, int | None, str | None]]:
    with atomic_scope(service_scope()):
        return list(
            KnowledgeDocument.objects.filter(shop_id=shop_domain, document_key=key)
            .order_by("version")
            .values_list("version", "is_current", "content", "previous_version_id", "created_by")
        )


def edit(document: KnowledgeDocument, **changes: str) -> dict[str, str]:
    return {
        "title": document.title,
        "content": document.content,
        "document_type": document.document_type,
        "tags": ",".join(document.tags),
        "source_url": document.source_url,
        **changes,
    }


def test_editing_the_current_document_saves_the_next_version(staff_client: Client, staff: User) -> None:
    shop = ShopFactory.create()
    first = saved_document(shop.domain)

    response = staff_client.post(
        change_url(first), {**edit(first, content="Items can be returned within 60 days."), "_continue": "1"}
    )

    assert response.status_code == 302
    stored = versions(shop.domain, "returns")
    assert stored == [
        (1, False, "Items can be returned within 30 days.", None, None),
        (2, True, "Items can be returned within 60 days.", first.pk, str(staff.pk)),
    ]
    with atomic_scope(service_scope()):
        second = KnowledgeDocument.objects.get(shop_id=shop.domain, document_key="returns", version=2)
        assert second.embedding is not None and second.embedding_model
    # "Save and continue editing" lands on the new version's page.
    assert response["Location"] == change_url(second)

    body = staff_client.get(change_url(second)).content.decode()
    history = re.search(r'<table class="version-history">(.*?)</table>', body, re.S)
    assert history is not None
    assert re.findall(r'data-version="(\d+)"', history.group(1)) == ["2", "1"]
    assert f'<a href="{change_url(first)}">v1</a>' in history.group(1)
    assert '<strong class="current-version">current</strong>' in history.group(1)
    assert f'<a href="{change_url(first)}" class="previous-version" rel="prev">' in body
    assert '<span class="next-version">latest version</span>' in body

    old = staff_client.get(change_url(first)).content.decode()
    assert f'<a href="{change_url(second)}" class="next-version" rel="next">' in old
    assert '<span class="previous-version">first version</span>' in old
    # History is read-only: no inputs for the document's fields, and it cannot be deleted alone.
    assert 'name="content"' not in old and 'name="title"' not in old
    assert "deletelink" not in old


def test_saving_an_unchanged_document_adds_no_version(staff_client: Client) -> None:
    shop = ShopFactory.create()
    first = saved_document(shop.domain)

    response = staff_client.post(change_url(first), edit(first))

    assert response.status_code == 302
    assert [row[:2] for row in versions(shop.domain, "returns")] == [(1, True)]


def test_posting_to_a_version_that_is_no_longer_current_changes_nothing(staff_client: Client) -> None:
    shop = ShopFactory.create()
    first = saved_document(shop.domain)
    saved_document(shop.domain, content="Someone else's edit.")

    response = staff_client.post(change_url(first), edit(first, content="My stale edit."), follow=True)

    assert any("is no longer current (version 2 is)" in message for message in messages_of(response))
    assert [row[:3] for row in versions(shop.domain, "returns")] == [
        (1, False, "Items can be returned within 30 days."),
        (2, True, "Someone else's edit."),
    ]


def test_an_invalid_edit_is_a_form_error_and_adds_no_version(staff_client: Client) -> None:
    shop = ShopFactory.create()
    first = saved_document(shop.domain)

    response = staff_client.post(change_url(first), edit(first, source_url="not a url", title=""))

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert set(errors) == {"source_url", "title"}
    assert len(versions(shop.domain, "returns")) == 1


def test_adding_a_document_saves_version_one_and_refuses_an_existing_key(staff_client: Client, staff: User) -> None:
    shop = ShopFactory.create()
    add = reverse("admin:advanced_knowledgedocument_add")
    data = {
        "shop": shop.domain,
        "document_key": "sizing",
        "title": "Sizing",
        "content": "Our shirts run small.",
        "document_type": "guide",
        "tags": "sizing,shirts",
        "source_url": "",
    }

    assert staff_client.post(add, data).status_code == 302
    assert versions(shop.domain, "sizing") == [(1, True, "Our shirts run small.", None, str(staff.pk))]

    again = staff_client.post(add, {**data, "content": "Again"})
    assert again.status_code == 200
    assert "already has a document &#x27;sizing&#x27; (version 1)" in again.content.decode()
    assert len(versions(shop.domain, "sizing")) == 1


# --- query counts ---------------------------------------------------------------------------


def briefing_maker() -> Callable[[], object]:
    reviewer = UserFactory.create(username="earlier-reviewer")
    count = iter(range(100))

    def make() -> object:
        n = next(count)
        # A new shop and reviewer per row: a relation fetched per row would show.
        user = reviewer if n % 2 else UserFactory.create()
        return reviewed_briefing(user, rating=1 + n % 5, generation_model=f"model-{n % 3}")

    return make


@pytest.mark.parametrize(
    "page",
    [
        f"{BRIEFINGS}?reviewed=no",
        f"{BRIEFINGS}?reviewed=yes&briefing_type__exact=weekly",
        STATISTICS,
    ],
)
def test_briefing_pages_cost_the_same_queries_for_2_and_10_rows(staff_client: Client, page: str) -> None:
    make = briefing_maker()
    for _ in range(2):
        make()
        CeoBriefingFactory.create()
    with_two = query_count(staff_client, page)
    for _ in range(8):
        make()
        CeoBriefingFactory.create()
    assert query_count(staff_client, page) == with_two


def test_experiment_pages_cost_the_same_queries_for_2_and_10_rows(staff_client: Client) -> None:
    def make() -> Experiment:
        return experiment_with_results({"control": (1000, 40), "banner": (1000, 50), "popup": (1000, 45)})

    first = make()
    make()
    list_with_two, page_with_two = query_count(staff_client, EXPERIMENTS), query_count(staff_client, change_url(first))
    for _ in range(8):
        make()
    # More snapshots of the same experiment, too: the page shows the latest ones only.
    ExperimentResultFactory.create(experiment=first, variant_key="banner", snapshot_date=TODAY + datetime.timedelta(1))
    assert query_count(staff_client, EXPERIMENTS) == list_with_two
    assert query_count(staff_client, change_url(first)) == page_with_two


def test_knowledge_pages_cost_the_same_queries_for_2_and_10_versions(staff_client: Client) -> None:
    shop = ShopFactory.create()
    document = saved_document(shop.domain, content="v1")
    saved_document(shop.domain, content="v2")
    KnowledgeDocumentFactory.create()
    list_with_two, page_with_two = query_count(staff_client, DOCUMENTS), query_count(staff_client, change_url(document))
    for n in range(3, 11):
        saved_document(shop.domain, content=f"v{n}")
        KnowledgeDocumentFactory.create()
    assert query_count(staff_client, DOCUMENTS) == list_with_two
    assert query_count(staff_client, change_url(document)) == page_with_two


# --- the interval chart ---------------------------------------------------------------------


def test_interval_chart_is_valid_svg_with_escaped_text_and_one_interval_per_measured_row() -> None:
    from xml.etree import ElementTree

    from backoffice.charts import IntervalRow, interval_chart

    markup = interval_chart(
        rows=[
            IntervalRow(label="control", value=0.04, lower=0.032, upper=0.048, detail="40 / 1,000"),
            IntervalRow(label='<script>alert("x")</script>', value=0.055, lower=0.041, upper=0.069, highlight=True),
            IntervalRow(label="no snapshot yet", value=None),
        ],
        title="Rates & intervals",
        value_label="conversion rate",
        reference=0.04,
        reference_label="control",
        value_format=lambda value: f"{value:.1%}",
    )

    root = ElementTree.fromstring(str(markup))
    svg = "{http://www.w3.org/2000/svg}"
    assert root.tag == f"{svg}svg"
    assert len(root.findall(f".//{svg}line[@class='interval']")) == 2
    assert len(root.findall(f".//{svg}circle[@class='estimate']")) == 2
    assert len(root.findall(f".//{svg}line[@class='reference']")) == 1
    assert "<script>" not in markup and "&lt;script&gt;" in markup
    assert "Rates &amp; intervals" in markup
    values = [text.text for text in root.iter(f"{svg}text") if text.get("class") == "value"]
    assert values == ["4.0% [3.2% to 4.8%] · 40 / 1,000", "5.5% [4.1% to 6.9%]", "no data"]


def test_interval_chart_without_figures_says_so() -> None:
    from backoffice.charts import IntervalRow, interval_chart

    markup = interval_chart(rows=[IntervalRow(label="control", value=None)], title="Rates", value_label="rate")

    assert 'class="chart interval-chart no-data"' in markup and "No data" in markup


def test_delete_selected_removes_whole_documents_and_keeps_a_lone_history_version(staff_client: Client) -> None:
    shop = ShopFactory.create()
    first = saved_document(shop.domain, "returns")
    current = saved_document(shop.domain, "returns", content="Items can be returned within 60 days.")
    other_v1 = saved_document(shop.domain, "shipping", title="Shipping")
    saved_document(shop.domain, "shipping", title="Shipping", content="Free shipping above $50.")
    changelist = reverse("admin:advanced_knowledgedocument_changelist")
    selection = {"action": "delete_selected", "_selected_action": [current.pk, first.pk, other_v1.pk]}

    confirm = staff_client.post(changelist, selection)
    assert confirm.status_code == 200
    # The confirmation lists what goes: both versions of "returns"; not the lone history version.
    assert confirm.content.decode().count("Knowledge document: ") == 2

    response = staff_client.post(changelist, {**selection, "post": "yes"}, follow=True)

    assert response.status_code == 200
    assert versions(shop.domain, "returns") == []
    assert [v[:2] for v in versions(shop.domain, "shipping")] == [(1, False), (2, True)]
    assert any("Not deleted: 1 earlier version(s) selected" in m for m in messages_of(response))
