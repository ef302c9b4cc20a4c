"""onboarding-progress workflow: start, complete, skip, retry and summary through the API."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from onboarding.factories import OnboardingProgressFactory
from onboarding.models import OnboardingProgress
from onboarding.services import MAX_COUNTER, onboarding_step_start
from onboarding.steps import ONBOARDING_STEPS
from tenancy.errors import Forbidden
from tenancy.factories import ShopMembershipFactory
from tenancy.scope import atomic_scope, shop_scope
from tests.fixtures.api import assert_error, client_for
from tests.fixtures.tenants import SHOP_A, SHOP_B, Actor

from .conftest import count, snapshot, stored

pytestmark = pytest.mark.django_db

PROGRESS = "/api/v1/onboarding-progress/"
SUMMARY = f"{PROGRESS}summary/"


def _act(actor: Actor, action: str, step_key: str, **extra: Any) -> Any:
    return actor.client.post(f"{PROGRESS}{action}/", {"step_key": step_key, **extra}, format="json")


def _own(actor: Actor, step_key: str) -> OnboardingProgress:
    with atomic_scope(shop_scope(shop=SHOP_A, subject=str(actor.user.pk), member_role="owner")):
        return OnboardingProgress.objects.get(user=actor.user, step_key=step_key)


def _when(value: str) -> datetime.datetime:
    """A timestamp of a response body."""
    return datetime.datetime.fromisoformat(value)


# --- start -------------------------------------------------------------------------------


def test_start_creates_the_row_in_progress_with_canonical_order(owner_a: Actor) -> None:
    before = datetime.datetime.now(datetime.UTC)
    response = _act(owner_a, "start", "connect-social")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["step_key"] == "connect-social"
    assert (body["status"], body["attempts"], body["time_spent_seconds"]) == ("in_progress", 1, 0)
    assert body["step_order"] == ONBOARDING_STEPS.index("connect-social")
    assert (body["shop_domain"], body["user"], body["created_by"]) == (
        SHOP_A,
        str(owner_a.user.pk),
        str(owner_a.user.pk),
    )
    assert _when(body["started_at"]) >= before - datetime.timedelta(seconds=1)
    assert body["completed_at"] is None
    row = stored(OnboardingProgress, body["id"])
    assert (row.user_id, row.shop_id, row.status, row.attempts) == (owner_a.user.pk, SHOP_A, "in_progress", 1)
    assert count(OnboardingProgress) == 1


def test_starting_again_counts_another_attempt_and_keeps_the_first_start_time(owner_a: Actor) -> None:
    first = _act(owner_a, "start", "connect-store").json()
    second = _act(owner_a, "start", "connect-store")
    assert second.status_code == 200, second.content
    body = second.json()
    assert (body["id"], body["attempts"], body["started_at"]) == (first["id"], 2, first["started_at"])
    assert count(OnboardingProgress) == 1
    assert stored(OnboardingProgress, first["id"]).attempts == 2


def test_start_of_a_row_made_through_crud_keeps_its_step_order(owner_a: Actor) -> None:
    row = OnboardingProgressFactory(user=owner_a.user, shop=owner_a.shop, step_key="invite-team", step_order=0)
    body = _act(owner_a, "start", "invite-team").json()
    assert (body["id"], body["step_order"], body["status"], body["attempts"]) == (row.pk, 0, "in_progress", 1)


# --- complete, retry and time ------------------------------------------------------------


def test_complete_stamps_the_time_and_retry_accumulates_attempts_and_time(owner_a: Actor) -> None:
    started = _act(owner_a, "start", "import-products").json()
    before = datetime.datetime.now(datetime.UTC)
    done = _act(owner_a, "complete", "import-products", time_spent_seconds=30)
    assert done.status_code == 200, done.content
    body = done.json()
    assert (body["status"], body["time_spent_seconds"], body["attempts"]) == ("completed", 30, 1)
    assert _when(body["completed_at"]) >= before - datetime.timedelta(seconds=1)

    retried = _act(owner_a, "retry", "import-products")
    assert retried.status_code == 200, retried.content
    body = retried.json()
    assert (body["status"], body["attempts"], body["completed_at"]) == ("in_progress", 2, None)
    assert (body["started_at"], body["time_spent_seconds"]) == (started["started_at"], 30)

    body = _act(owner_a, "complete", "import-products", time_spent_seconds=45).json()
    assert (body["status"], body["time_spent_seconds"], body["attempts"]) == ("completed", 75, 2)
    row = stored(OnboardingProgress, started["id"])
    assert (row.status, row.time_spent_seconds, row.attempts) == ("completed", 75, 2)
    assert row.completed_at is not None and row.started_at == _when(started["started_at"])


def test_complete_with_zero_seconds_is_allowed(owner_a: Actor) -> None:
    _act(owner_a, "start", "connect-store")
    body = _act(owner_a, "complete", "connect-store", time_spent_seconds=0).json()
    assert (body["status"], body["time_spent_seconds"]) == ("completed", 0)


def test_time_that_would_overflow_the_column_is_400_and_changes_nothing(owner_a: Actor) -> None:
    row = OnboardingProgressFactory(
        user=owner_a.user,
        shop=owner_a.shop,
        step_key="connect-store",
        status="in_progress",
        time_spent_seconds=MAX_COUNTER - 5,
    )
    before = snapshot(OnboardingProgress, row.pk)
    response = _act(owner_a, "complete", "connect-store", time_spent_seconds=10)
    assert_error(response, 400, field="time_spent_seconds", code="max_value")
    assert snapshot(OnboardingProgress, row.pk) == before


# --- skip --------------------------------------------------------------------------------


def test_skip_of_a_step_never_started_creates_it_skipped(owner_a: Actor) -> None:
    response = _act(owner_a, "skip", "connect-google-ads")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["status"], body["attempts"], body["started_at"], body["completed_at"]) == ("skipped", 0, None, None)
    assert body["step_order"] == ONBOARDING_STEPS.index("connect-google-ads")
    assert stored(OnboardingProgress, body["id"]).status == "skipped"


def test_skip_of_a_step_in_progress_then_retry_reopens_it(owner_a: Actor) -> None:
    started = _act(owner_a, "start", "connect-social").json()
    assert _act(owner_a, "skip", "connect-social").json()["status"] == "skipped"
    body = _act(owner_a, "retry", "connect-social").json()
    assert (body["status"], body["attempts"], body["started_at"]) == ("in_progress", 2, started["started_at"])


def test_retry_of_a_step_skipped_before_any_start_stamps_its_first_start(owner_a: Actor) -> None:
    _act(owner_a, "skip", "invite-team")
    body = _act(owner_a, "retry", "invite-team").json()
    assert (body["status"], body["attempts"]) == ("in_progress", 1)
    assert body["started_at"] is not None


# --- illegal moves -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "action", "words"),
    [
        ("not_started", "complete", "start it first"),
        ("skipped", "complete", "retry it first"),
        ("completed", "complete", "already completed"),
        ("completed", "start", "use retry"),
        ("skipped", "start", "use retry"),
        ("completed", "skip", "already completed"),
        ("skipped", "skip", "already skipped"),
        ("in_progress", "retry", "only a completed or skipped step"),
        ("not_started", "retry", "only a completed or skipped step"),
    ],
)
def test_illegal_move_is_400_and_changes_nothing(owner_a: Actor, status: str, action: str, words: str) -> None:
    completed = datetime.datetime(2026, 1, 2, tzinfo=datetime.UTC) if status == "completed" else None
    row = OnboardingProgressFactory(
        user=owner_a.user,
        shop=owner_a.shop,
        step_key="run-first-seo-audit",
        status=status,
        attempts=3,
        time_spent_seconds=50,
        completed_at=completed,
    )
    before = snapshot(OnboardingProgress, row.pk)
    extra = {"time_spent_seconds": 10} if action == "complete" else {}
    body = assert_error(
        _act(owner_a, action, "run-first-seo-audit", **extra),
        400,
        field="status",
        code="invalid_transition",
    )
    assert any(words in e["message"] for e in body["errors"]), body
    assert snapshot(OnboardingProgress, row.pk) == before
    assert count(OnboardingProgress) == 1


@pytest.mark.parametrize("action", ["complete", "retry"])
def test_complete_or_retry_of_a_step_without_progress_is_404_and_creates_nothing(owner_a: Actor, action: str) -> None:
    extra = {"time_spent_seconds": 1} if action == "complete" else {}
    assert_error(_act(owner_a, action, "connect-store", **extra), 404, code="not_found")
    assert count(OnboardingProgress) == 0


@pytest.mark.parametrize(
    ("action", "payload", "field"),
    [
        ("start", {"step_key": "not-a-step"}, "step_key"),
        ("start", {}, "step_key"),
        ("start", {"step_key": "connect-store", "step_order": 2}, "step_order"),
        ("skip", {"step_key": None}, "step_key"),
        ("complete", {"step_key": "connect-store"}, "time_spent_seconds"),
        ("complete", {"step_key": "connect-store", "time_spent_seconds": -1}, "time_spent_seconds"),
        ("complete", {"step_key": "connect-store", "time_spent_seconds": "soon"}, "time_spent_seconds"),
        ("complete", {"step_key": "connect-store", "time_spent_seconds": MAX_COUNTER + 1}, "time_spent_seconds"),
        ("retry", {"step_key": "connect-store", "status": "completed"}, "status"),
    ],
)
def test_invalid_action_body_is_400_and_writes_nothing(
    owner_a: Actor, action: str, payload: dict[str, Any], field: str
) -> None:
    OnboardingProgressFactory(user=owner_a.user, shop=owner_a.shop, step_key="connect-store", status="in_progress")
    before = snapshot(OnboardingProgress, _own(owner_a, "connect-store").pk)
    assert_error(owner_a.client.post(f"{PROGRESS}{action}/", payload, format="json"), 400, field=field)
    assert snapshot(OnboardingProgress, before["id"]) == before
    assert count(OnboardingProgress) == 1


def test_a_body_that_is_not_an_object_is_400(owner_a: Actor) -> None:
    assert_error(owner_a.client.post(f"{PROGRESS}start/", ["connect-store"], format="json"), 400)
    assert count(OnboardingProgress) == 0


def test_get_on_an_action_is_405(owner_a: Actor) -> None:
    assert_error(owner_a.client.get(f"{PROGRESS}start/"), 405)


# --- whose rows --------------------------------------------------------------------------


def test_actions_never_touch_another_users_progress(owner_a: Actor, member_a: Actor) -> None:
    theirs = OnboardingProgressFactory(
        user=member_a.user, shop=owner_a.shop, step_key="connect-store", status="in_progress", attempts=1
    )
    before = snapshot(OnboardingProgress, theirs.pk)
    # Their row is not the caller's: complete and retry find nothing of the caller's.
    assert_error(_act(owner_a, "complete", "connect-store", time_spent_seconds=5), 404)
    assert_error(_act(owner_a, "retry", "connect-store"), 404)
    # start and skip work on the caller's own row, a new one.
    mine = _act(owner_a, "start", "connect-store").json()
    assert mine["id"] != theirs.pk and mine["user"] == str(owner_a.user.pk)
    assert snapshot(OnboardingProgress, theirs.pk) == before
    # Their row by id, through CRUD, stays 404 as well.
    assert_error(owner_a.client.get(f"{PROGRESS}{theirs.pk}/"), 404)
    assert count(OnboardingProgress) == 2


def test_actions_act_on_the_shop_of_the_request_only(owner_a: Actor, owner_b: Actor) -> None:
    ShopMembershipFactory(user=owner_a.user, shop=owner_b.shop, role="member")
    in_b = OnboardingProgressFactory(
        user=owner_a.user, shop=owner_b.shop, step_key="connect-store", status="in_progress"
    )
    before = snapshot(OnboardingProgress, in_b.pk)
    assert_error(_act(owner_a, "complete", "connect-store", time_spent_seconds=5), 404)
    assert _act(owner_a, "start", "connect-store").json()["shop_domain"] == SHOP_A
    assert snapshot(OnboardingProgress, in_b.pk) == before
    in_b_client = client_for(owner_a.user, SHOP_B)
    body = in_b_client.post(
        f"{PROGRESS}complete/", {"step_key": "connect-store", "time_spent_seconds": 5}, format="json"
    )
    assert body.status_code == 200, body.content
    assert (body.json()["id"], body.json()["shop_domain"]) == (in_b.pk, SHOP_B)


def test_the_service_refuses_to_write_for_another_user_in_a_tenant_scope(owner_a: Actor, member_a: Actor) -> None:
    with (
        pytest.raises(Forbidden),
        atomic_scope(shop_scope(shop=SHOP_A, subject=str(owner_a.user.pk), member_role="owner")),
    ):
        onboarding_step_start(user=member_a.user, shop_domain=SHOP_A, step_key="connect-store")
    with (
        pytest.raises(Forbidden),
        atomic_scope(shop_scope(shop=SHOP_A, subject=str(owner_a.user.pk), member_role="owner")),
    ):
        onboarding_step_start(user=owner_a.user, shop_domain=SHOP_B, step_key="connect-store")
    assert count(OnboardingProgress) == 0


def test_a_viewer_moves_their_own_steps(viewer_a: Actor) -> None:
    assert _act(viewer_a, "start", "connect-store").status_code == 200
    assert _act(viewer_a, "complete", "connect-store", time_spent_seconds=12).json()["status"] == "completed"
    assert viewer_a.client.get(SUMMARY).json()["completed"] == 1


def test_actions_need_a_member_of_the_shop(owner_a: Actor, outsider: Any, client: Any) -> None:
    assert_error(outsider.post(f"{PROGRESS}start/", {"step_key": "connect-store"}, format="json"), 403)
    assert_error(outsider.get(SUMMARY), 403, code="not_a_member")
    assert_error(client_for(owner_a.user, None).get(SUMMARY), 400, code="shop_header_missing")
    assert_error(client.post(f"{PROGRESS}start/", {"step_key": "connect-store"}, HTTP_X_SHOP_DOMAIN=SHOP_A), 401)
    assert count(OnboardingProgress) == 0


# --- summary -----------------------------------------------------------------------------


def test_summary_of_a_user_with_no_progress(owner_a: Actor) -> None:
    response = owner_a.client.get(SUMMARY)
    assert response.status_code == 200, response.content
    assert response.json() == {
        "total_steps": 6,
        "completed": 0,
        "skipped": 0,
        "in_progress": 0,
        "not_started": 6,
        "percent_complete": 0.0,
        "next_step": "connect-store",
    }


def test_summary_counts_the_callers_canonical_steps_in_this_shop(
    owner_a: Actor, member_a: Actor, owner_b: Actor
) -> None:
    mine = {"user": owner_a.user, "shop": owner_a.shop}
    OnboardingProgressFactory(**mine, step_key="connect-store", completed=True)
    OnboardingProgressFactory(**mine, step_key="import-products", status="skipped")
    OnboardingProgressFactory(**mine, step_key="connect-google-ads", status="in_progress")
    OnboardingProgressFactory(**mine, step_key="connect-social", status="not_started")
    OnboardingProgressFactory(**mine, step_key="run-first-seo-audit", completed=True)
    # invite-team has no row: not started. None of the rows below may count.
    OnboardingProgressFactory(**mine, step_key="legacy-step", step_order=0, completed=True)
    for step in ONBOARDING_STEPS:
        OnboardingProgressFactory(user=member_a.user, shop=owner_a.shop, step_key=step, completed=True)
    ShopMembershipFactory(user=owner_a.user, shop=owner_b.shop, role="member")
    for step in ONBOARDING_STEPS:
        OnboardingProgressFactory(user=owner_a.user, shop=owner_b.shop, step_key=step, completed=True)

    assert owner_a.client.get(SUMMARY).json() == {
        "total_steps": 6,
        "completed": 2,
        "skipped": 1,
        "in_progress": 1,
        "not_started": 2,
        "percent_complete": 33.3,
        "next_step": "connect-google-ads",
    }
    assert client_for(owner_a.user, SHOP_B).get(SUMMARY).json()["percent_complete"] == 100.0
    assert member_a.client.get(SUMMARY).json()["next_step"] is None


def test_summary_next_step_follows_the_rows_step_order(owner_a: Actor) -> None:
    mine = {"user": owner_a.user, "shop": owner_a.shop}
    OnboardingProgressFactory(**mine, step_key="connect-store", completed=True)
    # Moved ahead of the canonical order by its own step_order.
    OnboardingProgressFactory(**mine, step_key="invite-team", step_order=0, status="not_started")
    body = owner_a.client.get(SUMMARY).json()
    assert (body["next_step"], body["completed"], body["percent_complete"]) == ("invite-team", 1, 16.7)


def test_summary_follows_the_actions(owner_a: Actor) -> None:
    for step in ONBOARDING_STEPS[:3]:
        _act(owner_a, "start", step)
        _act(owner_a, "complete", step, time_spent_seconds=5)
    _act(owner_a, "skip", ONBOARDING_STEPS[3])
    _act(owner_a, "start", ONBOARDING_STEPS[4])
    body = owner_a.client.get(SUMMARY).json()
    assert body == {
        "total_steps": 6,
        "completed": 3,
        "skipped": 1,
        "in_progress": 1,
        "not_started": 1,
        "percent_complete": 50.0,
        "next_step": ONBOARDING_STEPS[4],
    }
