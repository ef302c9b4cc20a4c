"""The experiment review screen in the admin: the decision chart, the lift over time with its
band, chance to win, SRM, guardrails and progress, all read without writing anything."""

from __future__ import annotations

import datetime
import re
import xml.etree.ElementTree as ET
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from advanced.experiments.factories import ExperimentFactory, ExperimentResultFactory
from advanced.models import Experiment, ExperimentResult
from tenancy.factories import UserFactory
from tenancy.scope import atomic_scope, service_scope

pytestmark = pytest.mark.django_db

DAY = datetime.date(2026, 3, 1)


@pytest.fixture
def staff_client(client: Client) -> Client:
    client.force_login(UserFactory.create(username="reviewer", is_staff=True, is_superuser=True))
    return client


def page(client: Client, experiment: Experiment) -> str:
    response = client.get(reverse("admin:advanced_experiment_change", args=[experiment.pk]))
    assert response.status_code == 200
    return response.content.decode()


def daily(experiment: Experiment, days: int, control_rate: float, treatment_rate: float, **extra: Any) -> None:
    for day in range(days):
        n = 2000 * (day + 1)
        for key, rate in (("control", control_rate), ("treatment", treatment_rate)):
            ExperimentResultFactory(
                experiment=experiment,
                variant_key=key,
                snapshot_date=DAY + datetime.timedelta(day),
                participants=n,
                conversions=round(n * rate),
                **extra.get(key, {}),
            )


def svgs(body: str, css_class: str) -> list[ET.Element]:
    found = re.findall(rf'<svg[^>]*class="chart {css_class}"[^>]*>.*?</svg>', body, flags=re.S)
    return [ET.fromstring(svg) for svg in found]


def test_the_review_shows_the_lift_chart_and_the_band_over_time_without_writing(staff_client: Client) -> None:
    experiment = ExperimentFactory.create(planned_sample_size=40_000)
    daily(experiment, 7, 0.05, 0.06)
    body = page(staff_client, experiment)
    assert 'class="experiment-review" data-engine="sequential"' in body
    assert "confidence sequence (valid at every look)" in body
    (lift,) = [svg for svg in svgs(body, "interval-chart") if "Relative lift" in ET.tostring(svg, encoding="unicode")]
    assert len([g for g in lift.iter() if g.get("class") == "interval-row"]) == 1
    (history,) = svgs(body, "line-chart")
    names = {g.get("data-series") for g in history.iter() if g.get("class") == "series"}
    assert names == {"treatment lift", "treatment lower bound", "treatment upper bound"}
    # One point per day on each line.
    lift_line = next(g for g in history.iter() if g.get("data-series") == "treatment lift")
    assert len([c for c in lift_line.iter() if c.tag.endswith("circle")]) == 7
    assert "Sample ratio:</strong> ok" in body
    assert "Progress to plan" in body and "35%" in body  # 14,000 of 40,000 per variant
    with atomic_scope(service_scope()):
        assert not ExperimentResult.objects.filter(experiment=experiment, p_value__isnull=False).exists()
        assert Experiment.objects.get(pk=experiment.pk).winning_variant is None


def test_the_bayesian_review_shows_chance_to_win_and_expected_loss(staff_client: Client) -> None:
    experiment = ExperimentFactory.create(
        stats_engine="bayesian", prior_mean=Decimal(0), prior_variance=Decimal("0.09")
    )
    daily(experiment, 3, 0.05, 0.06)
    body = page(staff_client, experiment)
    chance = re.search(r'<td class="chance-to-win">([\d.]+)%</td>', body)
    assert chance is not None and 90 < float(chance.group(1)) <= 100
    assert "credible interval" in body


def test_the_review_shows_a_guardrail_that_blocks_the_winner(staff_client: Client) -> None:
    experiment = ExperimentFactory.create()
    revenue = {
        "control": {"revenue_per_user": Decimal("5"), "revenue_per_user_stddev": Decimal("10")},
        "treatment": {"revenue_per_user": Decimal("3"), "revenue_per_user_stddev": Decimal("10")},
    }
    daily(experiment, 10, 0.05, 0.07, **revenue)
    body = page(staff_client, experiment)
    assert "revenue_per_user -40.0% — significantly worse" in body
    assert "guardrail revenue_per_user is significantly worse" in body


def test_the_review_of_a_fixed_horizon_experiment_before_its_plan_says_interim(staff_client: Client) -> None:
    experiment = ExperimentFactory.create(stats_engine="fixed_horizon", planned_sample_size=100_000)
    daily(experiment, 3, 0.05, 0.07)
    body = page(staff_client, experiment)
    assert 'data-state="interim"' in body and "interim look — nothing is declared before the plan" in body


def test_the_design_is_read_only_once_the_experiment_runs(staff_client: Client) -> None:
    running = ExperimentFactory.create()
    body = page(staff_client, running)
    assert 'name="stats_engine"' not in body and "Analysis design" in body
    draft = ExperimentFactory.create(status="draft", started_at=None)
    assert 'name="stats_engine"' in page(staff_client, draft)


def test_the_admin_refuses_a_fixed_horizon_draft_without_a_plan(staff_client: Client) -> None:
    draft = ExperimentFactory.create(status="draft", started_at=None)
    url = reverse("admin:advanced_experiment_change", args=[draft.pk])
    form = staff_client.get(url).context["adminform"].form
    data = {name: form[name].value() for name in form.fields if form[name].value() is not None}
    data.update(
        {
            "stats_engine": "fixed_horizon",
            "variants": form["variants"].value(),
            "guardrail_metrics": '["revenue_per_user"]',
            "results-TOTAL_FORMS": 0,
            "results-INITIAL_FORMS": 0,
        }
    )
    response = staff_client.post(url, data)
    assert response.status_code == 200
    assert "fixed_horizon needs planned_sample_size or planned_end_date" in response.content.decode()
    with atomic_scope(service_scope()):
        assert Experiment.objects.get(pk=draft.pk).stats_engine == "sequential"
