"""Experiment lifecycle and analysis over the API and the analyze_experiments command.

Every legal move (draft -> running -> paused -> running -> completed -> archived) and every
illegal one, status and stamps read-only on create and update, the analyze endpoint and the
command on factory-built data, and isolation between shops (another shop's experiment is 404).
"""

from __future__ import annotations

import datetime
from decimal import Decimal
from io import StringIO
from typing import Any

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from statsmodels.stats.proportion import proportions_ztest

from advanced.experiments.factories import ExperimentFactory, ExperimentResultFactory, two_variants
from advanced.experiments.services import TRANSITIONS
from advanced.models import Experiment, ExperimentResult
from tenancy.factories import UserFactory
from tenancy.scope import atomic_scope, service_scope
from tests.fixtures.api import assert_error
from tests.fixtures.tenants import Actor

pytestmark = pytest.mark.django_db

EXPERIMENTS = "/api/v1/experiments/"
MOVES = ("start", "pause", "resume", "complete", "archive")
DAY = datetime.date(2026, 3, 1)
NEW_EXPERIMENT: dict[str, Any] = {
    "experiment_key": "free-shipping",
    "experiment_name": "Free shipping",
    "variants": two_variants(),
}
ANALYSIS_KEYS = {
    "experiment_id",
    "experiment_key",
    "status",
    "primary_metric",
    "as_of",
    "snapshot_date",
    "confidence_threshold",
    "alpha",
    "min_sample_size",
    "control",
    "variants",
    "sample_ratio_mismatch",
    "significant",
    "winner",
    "confidence_level",
    "winning_variant",
    "recorded_confidence_level",
    "reasons",
    "warnings",
    "results_updated",
    "stats_engine",
    "multiple_testing_correction",
    "sequential_tuning",
    "risk_threshold",
    "prior_mean",
    "prior_variance",
    "guardrail_metrics",
    "state",
    "power",
    "cuped_theta",
    "lift_history",
}


def stored(pk: int) -> Experiment:
    with atomic_scope(service_scope()):
        return Experiment.objects.get(pk=pk)


def row_values(pk: int) -> dict[str, Any]:
    """Every column of the experiment, to prove a refused request wrote nothing."""
    with atomic_scope(service_scope()):
        return Experiment.objects.filter(pk=pk).values().get()


def results_of(experiment: Experiment) -> dict[tuple[str, datetime.date], ExperimentResult]:
    with atomic_scope(service_scope()):
        return {(r.variant_key, r.snapshot_date): r for r in ExperimentResult.objects.filter(experiment=experiment)}


def url(experiment: Experiment, move: str) -> str:
    return f"{EXPERIMENTS}{experiment.pk}/{move}/"


def in_status(actor: Actor, status: str) -> Experiment:
    """An experiment of the actor's shop in `status`, with consistent stamps."""
    started = datetime.datetime(2026, 2, 1, tzinfo=datetime.UTC) if status != "draft" else None
    ended = datetime.datetime(2026, 2, 20, tzinfo=datetime.UTC) if status in {"completed", "archived"} else None
    return ExperimentFactory(shop=actor.shop, status=status, started_at=started, ended_at=ended)


def with_snapshots(actor: Actor, figures: dict[str, tuple[int, int]], day: datetime.date = DAY, **fields: Any) -> Any:
    experiment = fields.pop("experiment", None) or ExperimentFactory(shop=actor.shop, **fields)
    for key, (participants, conversions) in figures.items():
        ExperimentResultFactory(
            experiment=experiment,
            variant_key=key,
            snapshot_date=day,
            participants=participants,
            conversions=conversions,
        )
    return experiment


# --- status and stamps are not writable ----------------------------------------------------


def test_new_experiment_is_a_draft_without_stamps(owner_a: Actor) -> None:
    response = owner_a.client.post(EXPERIMENTS, NEW_EXPERIMENT, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["status"], body["started_at"], body["ended_at"], body["winning_variant"]) == (
        "draft",
        None,
        None,
        None,
    )
    assert stored(body["id"]).status == "draft"
    # Saying "draft" explicitly is allowed: it is what a new experiment is.
    again = owner_a.client.post(
        EXPERIMENTS, {**NEW_EXPERIMENT, "experiment_key": "b", "status": "draft"}, format="json"
    )
    assert again.status_code == 201, again.content


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("status", "running"),
        ("status", "completed"),
        ("status", "flying"),
        ("started_at", "2026-01-01T00:00:00Z"),
        ("ended_at", "2026-01-01T00:00:00Z"),
        ("winning_variant", "treatment"),
        ("confidence_level", "0.99"),
    ],
)
def test_lifecycle_fields_cannot_be_set_on_create(owner_a: Actor, field: str, value: str) -> None:
    body = assert_error(
        owner_a.client.post(EXPERIMENTS, {**NEW_EXPERIMENT, field: value}, format="json"),
        400,
        field=field,
        code="read_only",
    )
    assert any("cannot set" in e["message"] for e in body["errors"]), body
    with atomic_scope(service_scope()):
        assert Experiment.objects.count() == 0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("status", "completed"),
        ("status", "draft"),
        ("started_at", "2026-01-01T00:00:00Z"),
        ("ended_at", "2026-03-01T00:00:00Z"),
        ("winning_variant", "treatment"),
        ("winning_variant", "nope"),
        ("confidence_level", "0.5"),
    ],
)
def test_lifecycle_fields_cannot_be_changed_on_update(owner_a: Actor, field: str, value: str) -> None:
    experiment = in_status(owner_a, "running")
    before = row_values(experiment.pk)
    for method in ("patch", "put"):
        payload = {field: value} if method == "patch" else {**NEW_EXPERIMENT, field: value}
        response = getattr(owner_a.client, method)(f"{EXPERIMENTS}{experiment.pk}/", payload, format="json")
        body = assert_error(response, 400, field=field, code="read_only")
        assert any(
            "/start/" in e["message"] or "action" in e["message"] or "analysis" in e["message"] for e in body["errors"]
        )
    assert row_values(experiment.pk) == before


def test_put_of_the_fetched_representation_is_accepted(owner_a: Actor) -> None:
    experiment = in_status(owner_a, "completed")
    detail = owner_a.client.get(f"{EXPERIMENTS}{experiment.pk}/").json()
    writable = {
        k: v for k, v in detail.items() if k not in {"id", "shop_domain", "created_by", "created_at", "updated_at"}
    }
    response = owner_a.client.put(
        f"{EXPERIMENTS}{experiment.pk}/", {**writable, "experiment_name": "Renamed"}, format="json"
    )
    assert response.status_code == 200, response.content
    after = stored(experiment.pk)
    assert (after.experiment_name, after.status, after.started_at, after.ended_at) == (
        "Renamed",
        "completed",
        experiment.started_at,
        experiment.ended_at,
    )


# --- legal moves ---------------------------------------------------------------------------


def test_full_lifecycle_through_the_api(owner_a: Actor) -> None:
    experiment_id = owner_a.client.post(EXPERIMENTS, NEW_EXPERIMENT, format="json").json()["id"]
    experiment = stored(experiment_id)

    started = owner_a.client.post(url(experiment, "start"))
    assert started.status_code == 200, started.content
    body = started.json()
    assert body["status"] == "running" and body["started_at"] is not None and body["ended_at"] is None
    first_start = stored(experiment_id).started_at
    assert first_start is not None

    assert owner_a.client.post(url(experiment, "pause")).json()["status"] == "paused"
    assert stored(experiment_id).status == "paused"
    resumed = owner_a.client.post(url(experiment, "resume")).json()
    # Resuming is not a first start: started_at keeps the first start's time.
    assert resumed["status"] == "running" and stored(experiment_id).started_at == first_start

    assert owner_a.client.post(url(experiment, "pause")).json()["status"] == "paused"
    completed = owner_a.client.post(url(experiment, "complete"), {}, format="json")
    assert completed.status_code == 200, completed.content
    done = stored(experiment_id)
    assert done.status == "completed" and done.ended_at is not None and done.ended_at >= first_start
    assert completed.json()["ended_at"] is not None and done.winning_variant is None

    archived = owner_a.client.post(url(experiment, "archive"))
    assert archived.status_code == 200 and archived.json()["status"] == "archived"
    final = stored(experiment_id)
    assert (final.status, final.started_at, final.ended_at) == ("archived", first_start, done.ended_at)


def test_complete_records_the_winner_given(owner_a: Actor) -> None:
    experiment = in_status(owner_a, "running")
    response = owner_a.client.post(url(experiment, "complete"), {"winner": "treatment"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["winning_variant"] == "treatment"
    after = stored(experiment.pk)
    assert (after.status, after.winning_variant, after.confidence_level) == ("completed", "treatment", None)


def test_complete_without_winner_keeps_the_analysis_winner_and_its_confidence(owner_a: Actor) -> None:
    experiment = ExperimentFactory(shop=owner_a.shop, winning_variant="treatment", confidence_level=Decimal("0.9990"))
    response = owner_a.client.post(url(experiment, "complete"), {"winner": None}, format="json")
    assert response.status_code == 200, response.content
    after = stored(experiment.pk)
    assert (after.winning_variant, after.confidence_level) == ("treatment", Decimal("0.9990"))


def test_complete_choosing_another_winner_drops_the_analysis_confidence(owner_a: Actor) -> None:
    experiment = ExperimentFactory(shop=owner_a.shop, winning_variant="treatment", confidence_level=Decimal("0.9990"))
    assert owner_a.client.post(url(experiment, "complete"), {"winner": "control"}, format="json").status_code == 200
    after = stored(experiment.pk)
    assert (after.winning_variant, after.confidence_level) == ("control", None)


@pytest.mark.parametrize(
    ("payload", "field"),
    [({"winner": "nope"}, "winner"), ({"winner": ""}, "winner"), ({"winner": 5}, "winner"), ({"loser": "a"}, "loser")],
)
def test_complete_with_a_bad_body_is_400_and_writes_nothing(owner_a: Actor, payload: dict, field: str) -> None:
    experiment = in_status(owner_a, "running")
    before = row_values(experiment.pk)
    assert_error(owner_a.client.post(url(experiment, "complete"), payload, format="json"), 400, field=field)
    assert row_values(experiment.pk) == before


# --- illegal moves -------------------------------------------------------------------------

ILLEGAL = [
    (status, move)
    for status in ("draft", "running", "paused", "completed", "archived")
    for move in MOVES
    if move not in TRANSITIONS[status]
]


def test_the_transition_table_is_the_documented_one() -> None:
    assert {status: set(moves.items()) for status, moves in TRANSITIONS.items()} == {
        "draft": {("start", "running")},
        "running": {("pause", "paused"), ("complete", "completed")},
        "paused": {("resume", "running"), ("complete", "completed")},
        "completed": {("archive", "archived")},
        "archived": set(),
    }
    assert len(ILLEGAL) == 25 - 6


@pytest.mark.parametrize(("status", "move"), ILLEGAL, ids=[f"{s}-{m}" for s, m in ILLEGAL])
def test_illegal_move_is_400_naming_status_and_allowed_moves(owner_a: Actor, status: str, move: str) -> None:
    experiment = in_status(owner_a, status)
    before = row_values(experiment.pk)
    body = assert_error(
        owner_a.client.post(url(experiment, move), {}, format="json"), 400, field="status", code="invalid_transition"
    )
    message = next(e["message"] for e in body["errors"] if e["field"] == "status")
    assert f"Cannot {move} an experiment that is {status}" in message
    for allowed in TRANSITIONS[status]:
        assert allowed in message
    if status == "archived":
        assert "archived is final" in message
    assert row_values(experiment.pk) == before


def test_paused_experiment_must_be_completed_before_archiving(owner_a: Actor) -> None:
    experiment = in_status(owner_a, "paused")
    body = assert_error(owner_a.client.post(url(experiment, "archive")), 400, code="invalid_transition")
    assert "resume (to running), complete (to completed)" in body["errors"][0]["message"]
    assert owner_a.client.post(url(experiment, "complete")).status_code == 200
    assert owner_a.client.post(url(experiment, "archive")).status_code == 200


def test_start_refuses_invalid_variants_written_before_validation(owner_a: Actor) -> None:
    legacy = [{"key": "control", "weight": 0.5, "is_control": True}, {"key": "treatment", "weight": 0.3}]
    experiment = ExperimentFactory(shop=owner_a.shop, status="draft", started_at=None, variants=legacy)
    body = assert_error(owner_a.client.post(url(experiment, "start")), 400, field="variants")
    assert any("sum to 1 or to 100" in e["message"] for e in body["errors"])
    assert stored(experiment.pk).status == "draft"


def test_viewer_cannot_move_or_analyze(viewer_a: Actor) -> None:
    experiment = in_status(viewer_a, "running")
    before = row_values(experiment.pk)
    for move in (*MOVES, "analyze"):
        assert_error(viewer_a.client.post(url(experiment, move), {}, format="json"), 403)
    assert row_values(experiment.pk) == before


def test_another_shops_experiment_is_404_for_every_action(owner_a: Actor, owner_b: Actor) -> None:
    theirs = {status: in_status(owner_b, status) for status in ("draft", "running", "paused", "completed")}
    with_snapshots(owner_b, {"control": (5000, 100), "treatment": (5000, 200)}, experiment=theirs["running"])
    before = {status: row_values(e.pk) for status, e in theirs.items()}
    for move, status in [
        ("start", "draft"),
        ("pause", "running"),
        ("resume", "paused"),
        ("complete", "running"),
        ("archive", "completed"),
        ("analyze", "running"),
    ]:
        assert_error(owner_a.client.post(url(theirs[status], move), {}, format="json"), 404, code="not_found")
    assert {status: row_values(e.pk) for status, e in theirs.items()} == before
    assert all(r.p_value is None for r in results_of(theirs["running"]).values())


# --- analysis over the API -----------------------------------------------------------------


def test_analyze_declares_a_clearly_significant_winner(owner_a: Actor) -> None:
    # Fixed horizon at its planned sample: the z-test of statsmodels, stored as it was.
    experiment = with_snapshots(
        owner_a,
        {"control": (10_000, 300), "treatment": (10_000, 450)},
        stats_engine="fixed_horizon",
        planned_sample_size=10_000,
    )
    response = owner_a.client.post(url(experiment, "analyze"), {}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == ANALYSIS_KEYS
    assert (body["winner"], body["significant"], body["winning_variant"], body["reasons"]) == (
        "treatment",
        True,
        "treatment",
        [],
    )
    control, treatment = body["variants"]
    z, p = proportions_ztest(np.array([450, 300]), np.array([10_000, 10_000]))
    assert treatment["p_value"] == pytest.approx(float(p), rel=1e-9)
    assert treatment["z_statistic"] == pytest.approx(float(z), rel=1e-9)
    assert treatment["adjusted_p_value"] == treatment["p_value"]
    assert treatment["absolute_lift"] == pytest.approx(0.015)
    assert treatment["relative_lift"] == pytest.approx(0.5)
    assert control["p_value"] is None and control["absolute_lift_interval"] is None
    assert body["sample_ratio_mismatch"] == {"statistic": 0.0, "p_value": 1.0, "flagged": False}

    after = stored(experiment.pk)
    assert after.winning_variant == "treatment"
    assert after.confidence_level == Decimal("0.9999") and body["confidence_level"] > 0.9999
    rows = results_of(experiment)
    stored_treatment, stored_control = rows[("treatment", DAY)], rows[("control", DAY)]
    assert stored_treatment.p_value == Decimal(p).quantize(Decimal("1e-10"))
    interval = treatment["absolute_lift_interval"]
    assert stored_treatment.confidence_interval_lower == Decimal(interval["lower"]).quantize(Decimal("1e-8"))
    assert stored_treatment.confidence_interval_upper == Decimal(interval["upper"]).quantize(Decimal("1e-8"))
    assert 0 < stored_treatment.confidence_interval_lower < stored_treatment.confidence_interval_upper
    assert (stored_control.p_value, stored_control.confidence_interval_lower) == (None, None)
    assert body["state"] == "decided" and body["power"]["plan_reached"] is True


def test_analyze_declares_no_winner_when_insignificant_and_clears_a_stale_one(owner_a: Actor) -> None:
    experiment = with_snapshots(
        owner_a,
        {"control": (10_000, 300), "treatment": (10_000, 310)},
        winning_variant="treatment",
        confidence_level=Decimal("0.96"),
    )
    body = owner_a.client.post(url(experiment, "analyze")).json()
    assert (body["winner"], body["significant"], body["winning_variant"]) == (None, False, None)
    assert any("No treatment beats control" in reason for reason in body["reasons"])
    after = stored(experiment.pk)
    assert (after.winning_variant, after.confidence_level) == (None, None)
    assert results_of(experiment)[("treatment", DAY)].p_value is not None


def test_analyze_declares_no_winner_below_min_sample_size(owner_a: Actor) -> None:
    experiment = with_snapshots(
        owner_a,
        {"control": (400, 10), "treatment": (400, 60)},
        min_sample_size=500,
        stats_engine="fixed_horizon",
        planned_sample_size=400,
    )
    body = owner_a.client.post(url(experiment, "analyze")).json()
    assert body["variants"][1]["p_value"] < 1e-6
    assert body["winner"] is None and stored(experiment.pk).winning_variant is None
    assert any("min_sample_size (500)" in reason for reason in body["reasons"])
    assert [v["meets_min_sample_size"] for v in body["variants"]] == [False, False]


def test_analyze_uses_each_variants_latest_snapshot_or_the_one_as_of(owner_a: Actor) -> None:
    experiment = with_snapshots(owner_a, {"control": (1000, 30), "treatment": (1000, 31)}, day=DAY)
    with_snapshots(
        owner_a,
        {"control": (20_000, 600), "treatment": (20_000, 900)},
        day=DAY + datetime.timedelta(7),
        experiment=experiment,
    )
    latest = owner_a.client.post(url(experiment, "analyze")).json()
    assert latest["snapshot_date"] == "2026-03-08" and latest["winner"] == "treatment"
    assert [v["participants"] for v in latest["variants"]] == [20_000, 20_000]
    rows = results_of(experiment)
    assert rows[("treatment", DAY + datetime.timedelta(7))].p_value is not None
    assert rows[("treatment", DAY)].p_value is None

    earlier = owner_a.client.post(url(experiment, "analyze"), {"as_of": "2026-03-05"}, format="json").json()
    assert (earlier["as_of"], earlier["snapshot_date"], earlier["winner"]) == ("2026-03-05", "2026-03-01", None)
    assert results_of(experiment)[("treatment", DAY)].p_value is not None


def test_analyze_keeps_the_winner_a_completed_experiment_was_closed_with(owner_a: Actor) -> None:
    experiment = with_snapshots(
        owner_a, {"control": (10_000, 300), "treatment": (10_000, 450)}, status="completed", winning_variant="control"
    )
    body = owner_a.client.post(url(experiment, "analyze")).json()
    assert (body["winner"], body["winning_variant"]) == ("treatment", "control")
    assert stored(experiment.pk).winning_variant == "control"


def test_analyze_without_snapshots_or_conversions_answers_with_nulls(owner_a: Actor) -> None:
    empty = ExperimentFactory(shop=owner_a.shop)
    body = owner_a.client.post(url(empty, "analyze")).json()
    assert body["results_updated"] == 0 and body["winner"] is None and body["snapshot_date"] is None
    assert all(v["conversion_rate"] is None and v["snapshot_date"] is None for v in body["variants"])
    assert body["sample_ratio_mismatch"] == {"statistic": None, "p_value": None, "flagged": False}

    # Fixed horizon: its Wald interval collapses to a point; a confidence sequence is undefined.
    none_converted = with_snapshots(
        owner_a, {"control": (800, 0), "treatment": (800, 0)}, stats_engine="fixed_horizon", planned_sample_size=800
    )
    body = owner_a.client.post(url(none_converted, "analyze")).json()
    assert body["results_updated"] == 2 and body["variants"][1]["p_value"] is None
    assert body["variants"][1]["absolute_lift_interval"] == {"lower": 0.0, "upper": 0.0}
    stored_row = results_of(none_converted)[("treatment", DAY)]
    assert (stored_row.p_value, stored_row.confidence_interval_lower) == (None, Decimal("0E-8"))


def test_analyze_flags_sample_ratio_mismatch_and_withholds_the_winner(owner_a: Actor) -> None:
    experiment = with_snapshots(owner_a, {"control": (10_000, 300), "treatment": (12_000, 600)})
    body = owner_a.client.post(url(experiment, "analyze")).json()
    assert body["sample_ratio_mismatch"]["flagged"] and body["winner"] is None
    assert stored(experiment.pk).winning_variant is None


@pytest.mark.parametrize(("payload", "field"), [({"as_of": "soon"}, "as_of"), ({"at": "2026-01-01"}, "at")])
def test_analyze_with_a_bad_body_is_400_and_writes_nothing(owner_a: Actor, payload: dict, field: str) -> None:
    experiment = with_snapshots(owner_a, {"control": (10_000, 300), "treatment": (10_000, 450)})
    assert_error(owner_a.client.post(url(experiment, "analyze"), payload, format="json"), 400, field=field)
    assert stored(experiment.pk).winning_variant is None
    assert all(r.p_value is None for r in results_of(experiment).values())


# --- the command ---------------------------------------------------------------------------


def run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("analyze_experiments", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_command_analyses_running_experiments_of_every_shop(owner_a: Actor, owner_b: Actor) -> None:
    winner = with_snapshots(owner_a, {"control": (10_000, 300), "treatment": (10_000, 450)}, experiment_key="clear")
    flat = with_snapshots(owner_b, {"control": (10_000, 300), "treatment": (10_000, 305)}, experiment_key="flat")
    small = with_snapshots(
        owner_b, {"control": (50, 1), "treatment": (50, 20)}, experiment_key="small", status="paused"
    )
    draft = with_snapshots(
        owner_a, {"control": (10_000, 300), "treatment": (10_000, 450)}, experiment_key="draft", status="draft"
    )
    out, err = run()
    assert err == ""
    lines = out.splitlines()
    # Sequential (the default): 1 - the always-valid p, 0.9997 where the z-test said 0.99999998.
    assert lines[0].startswith("[1/3] alpha.myshopify.com clear: sequential: winner treatment (confidence 0.9997")
    assert "treatment p=" in lines[0] and "(Holm " in lines[0] and "SRM ok" in lines[0]
    assert lines[1].startswith("[2/3] bravo.myshopify.com flat: sequential: no winner: No treatment beats control")
    assert lines[2].startswith("[3/3] bravo.myshopify.com small: sequential: no winner: Fewer than min_sample_size")
    assert "Analysed 3 of 3 experiments" in lines[-1] and "1 with a winner, 2 without, 0 failed" in lines[-1]
    assert [stored(e.pk).winning_variant for e in (winner, flat, small, draft)] == ["treatment", None, None, None]
    assert all(r.p_value is None for r in results_of(draft).values())


def test_command_filters_by_shop_and_key(owner_a: Actor, owner_b: Actor) -> None:
    mine = with_snapshots(owner_a, {"control": (10_000, 300), "treatment": (10_000, 450)}, experiment_key="same")
    theirs = with_snapshots(owner_b, {"control": (10_000, 300), "treatment": (10_000, 450)}, experiment_key="same")
    done = with_snapshots(
        owner_a, {"control": (10_000, 300), "treatment": (10_000, 450)}, experiment_key="done", status="completed"
    )
    out, _ = run("--shop", "ALPHA.myshopify.com")
    assert "[1/1] alpha.myshopify.com same" in out
    assert (stored(mine.pk).winning_variant, stored(theirs.pk).winning_variant) == ("treatment", None)
    # A key selects the experiment whatever its status.
    out, _ = run("--experiment-key", "done")
    assert (
        "[1/1] alpha.myshopify.com done: sequential: winner treatment" in out
        and stored(done.pk).winning_variant == "treatment"
    )


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--shop", "nowhere.myshopify.com"), "No shop 'nowhere.myshopify.com'"),
        (("--experiment-key", "missing"), "No experiment with key 'missing'"),
        (("--as-of", "yesterday"), "--as-of must be a date"),
    ],
)
def test_command_refuses_bad_arguments(owner_a: Actor, args: tuple[str, ...], words: str) -> None:
    with pytest.raises(CommandError, match=words):
        run(*args)


def test_command_reports_an_experiment_it_cannot_analyse_and_goes_on(owner_a: Actor) -> None:
    broken = ExperimentFactory(
        shop=owner_a.shop,
        experiment_key="broken",
        variants=[{"key": "a", "weight": 0.5}, {"key": "b", "weight": 0.5}],
    )
    good = with_snapshots(owner_a, {"control": (10_000, 300), "treatment": (10_000, 450)}, experiment_key="good")
    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError, match="1 of 2 experiments could not be analysed"):
        call_command("analyze_experiments", stdout=out, stderr=err)
    assert "broken: failed: variants: Exactly one variant must have is_control" in err.getvalue()
    assert "good: sequential: winner treatment" in out.getvalue()
    assert stored(good.pk).winning_variant == "treatment" and stored(broken.pk).winning_variant is None


# --- the back office -----------------------------------------------------------------------


def test_admin_actions_call_the_same_services(owner_a: Actor, client: Any) -> None:
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    draft = in_status(owner_a, "draft")
    running = with_snapshots(owner_a, {"control": (10_000, 300), "treatment": (10_000, 450)})
    changelist = "/admin/advanced/experiment/"

    response = client.post(
        changelist, {"action": "start_experiments", "_selected_action": [draft.pk, running.pk]}, follow=True
    )
    text = response.content.decode()
    assert response.status_code == 200 and "Started 1 experiment(s)." in text
    assert "Cannot start an experiment that is running" in text
    assert stored(draft.pk).status == "running" and stored(draft.pk).started_at is not None

    response = client.post(changelist, {"action": "analyze_experiments", "_selected_action": [running.pk]}, follow=True)
    assert "winner treatment" in response.content.decode()
    assert stored(running.pk).winning_variant == "treatment"
