"""feature-tours workflow: show, advance, back, interact, complete and dismiss through the API."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from django.test import Client

from onboarding.factories import FeatureTourFactory
from onboarding.models import FeatureTour
from onboarding.services import MAX_COUNTER, tour_show
from tenancy.errors import NotFound
from tenancy.scope import atomic_scope, shop_scope
from tests.fixtures.api import assert_error, client_for
from tests.fixtures.tenants import SHOP_A, Actor

from .conftest import snapshot, stored

pytestmark = pytest.mark.django_db

TOURS = "/api/v1/feature-tours/"
ACTIONS = ("show", "advance", "back", "interact", "complete", "dismiss")


def _act(actor: Actor, tour: Any, action: str) -> Any:
    return actor.client.post(f"{TOURS}{tour.pk}/{action}/")


def _moves(actor: Actor, tour: Any, *actions: str) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for action in actions:
        response = _act(actor, tour, action)
        assert response.status_code == 200, (action, response.content)
        body = response.json()
    return body


def test_show_activates_a_pending_tour_and_counts_each_showing(owner_a: Actor) -> None:
    tour = FeatureTourFactory(user=owner_a.user)
    before = datetime.datetime.now(datetime.UTC)
    response = _act(owner_a, tour, "show")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["id"], body["status"], body["times_shown"], body["current_step"]) == (tour.pk, "active", 1, 0)
    first_shown = datetime.datetime.fromisoformat(body["last_shown_at"])
    assert first_shown >= before - datetime.timedelta(seconds=1)
    body = _moves(owner_a, tour, "show", "show")
    assert (body["status"], body["times_shown"]) == ("active", 3)
    row = stored(FeatureTour, tour.pk)
    assert (row.status, row.times_shown) == ("active", 3)
    assert row.last_shown_at >= first_shown


def test_advance_and_back_move_within_the_steps(owner_a: Actor) -> None:
    tour = FeatureTourFactory(user=owner_a.user)  # three steps: 0, 1, 2
    _moves(owner_a, tour, "show")
    assert _moves(owner_a, tour, "advance")["current_step"] == 1
    assert _moves(owner_a, tour, "advance")["current_step"] == 2

    before = snapshot(FeatureTour, tour.pk)
    body = assert_error(_act(owner_a, tour, "advance"), 400, field="current_step", code="invalid_transition")
    assert any("last step (2)" in e["message"] for e in body["errors"]), body
    assert snapshot(FeatureTour, tour.pk) == before

    assert _moves(owner_a, tour, "back")["current_step"] == 1
    assert _moves(owner_a, tour, "back")["current_step"] == 0
    before = snapshot(FeatureTour, tour.pk)
    body = assert_error(_act(owner_a, tour, "back"), 400, field="current_step", code="invalid_transition")
    assert any("first step" in e["message"] for e in body["errors"]), body
    assert snapshot(FeatureTour, tour.pk) == before
    assert stored(FeatureTour, tour.pk).status == "active"


def test_a_tour_without_steps_cannot_advance(owner_a: Actor) -> None:
    tour = FeatureTourFactory(user=owner_a.user, steps=[])
    _moves(owner_a, tour, "show")
    body = assert_error(_act(owner_a, tour, "advance"), 400, field="current_step")
    assert any("no steps" in e["message"] for e in body["errors"]), body
    assert stored(FeatureTour, tour.pk).current_step == 0


def test_interact_counts_each_interaction(owner_a: Actor) -> None:
    tour = FeatureTourFactory(user=owner_a.user)
    body = _moves(owner_a, tour, "show", "interact", "interact", "advance", "interact")
    assert (body["interactions"], body["current_step"], body["times_shown"]) == (3, 1, 1)
    assert stored(FeatureTour, tour.pk).interactions == 3


def test_interactions_at_the_column_limit_are_400(owner_a: Actor) -> None:
    tour = FeatureTourFactory(user=owner_a.user, status="active", interactions=MAX_COUNTER)
    assert_error(_act(owner_a, tour, "interact"), 400, field="interactions")
    assert stored(FeatureTour, tour.pk).interactions == MAX_COUNTER


def test_complete_finishes_an_active_tour_from_any_step(owner_a: Actor) -> None:
    tour = FeatureTourFactory(user=owner_a.user)
    before = datetime.datetime.now(datetime.UTC)
    body = _moves(owner_a, tour, "show", "advance", "complete")
    assert (body["status"], body["current_step"], body["dismissed_at"]) == ("completed", 1, None)
    assert datetime.datetime.fromisoformat(body["completed_at"]) >= before - datetime.timedelta(seconds=1)
    row = stored(FeatureTour, tour.pk)
    assert (row.status, row.completed_at is not None) == ("completed", True)


@pytest.mark.parametrize("status", ["pending", "active"])
def test_dismiss_closes_a_pending_or_active_tour(owner_a: Actor, status: str) -> None:
    tour = FeatureTourFactory(user=owner_a.user, status=status)
    body = _moves(owner_a, tour, "dismiss")
    assert (body["status"], body["completed_at"]) == ("dismissed", None)
    assert body["dismissed_at"] is not None
    assert stored(FeatureTour, tour.pk).status == "dismissed"


@pytest.mark.parametrize("status", ["completed", "dismissed"])
@pytest.mark.parametrize("action", ACTIONS)
def test_a_finished_tour_refuses_every_move(owner_a: Actor, status: str, action: str) -> None:
    stamp = datetime.datetime(2026, 1, 2, tzinfo=datetime.UTC)
    tour = FeatureTourFactory(
        user=owner_a.user,
        status=status,
        current_step=1,
        times_shown=2,
        interactions=4,
        completed_at=stamp if status == "completed" else None,
        dismissed_at=stamp if status == "dismissed" else None,
    )
    before = snapshot(FeatureTour, tour.pk)
    body = assert_error(_act(owner_a, tour, action), 400, field="status", code="invalid_transition")
    assert any(f"is {status}" in e["message"] for e in body["errors"]), body
    assert snapshot(FeatureTour, tour.pk) == before


@pytest.mark.parametrize("action", ["advance", "back", "interact", "complete"])
def test_a_pending_tour_must_be_shown_first(owner_a: Actor, action: str) -> None:
    tour = FeatureTourFactory(user=owner_a.user)
    before = snapshot(FeatureTour, tour.pk)
    body = assert_error(_act(owner_a, tour, action), 400, field="status", code="invalid_transition")
    assert any("show it" in e["message"] for e in body["errors"]), body
    assert snapshot(FeatureTour, tour.pk) == before


@pytest.mark.parametrize("action", ACTIONS)
def test_another_users_tour_is_404_and_unchanged(owner_a: Actor, member_a: Actor, action: str) -> None:
    theirs = FeatureTourFactory(user=member_a.user, status="active", current_step=1)
    before = snapshot(FeatureTour, theirs.pk)
    assert_error(_act(owner_a, theirs, action), 404, code="not_found")
    assert_error(client_for(owner_a.user, None).post(f"{TOURS}{theirs.pk}/{action}/"), 404)
    assert snapshot(FeatureTour, theirs.pk) == before


def test_actions_work_without_the_shop_header_and_need_a_token(owner_a: Actor, client: Client) -> None:
    tour = FeatureTourFactory(user=owner_a.user)
    no_shop = client_for(owner_a.user, None)
    response = no_shop.post(f"{TOURS}{tour.pk}/show/")
    assert response.status_code == 200, response.content
    assert_error(client.post(f"{TOURS}{tour.pk}/show/"), 401)
    assert stored(FeatureTour, tour.pk).times_shown == 1


def test_a_viewer_moves_their_own_tour(viewer_a: Actor) -> None:
    tour = FeatureTourFactory(user=viewer_a.user)
    assert _moves(viewer_a, tour, "show", "advance", "complete")["status"] == "completed"


def test_get_on_an_action_is_405(owner_a: Actor) -> None:
    tour = FeatureTourFactory(user=owner_a.user)
    assert_error(owner_a.client.get(f"{TOURS}{tour.pk}/show/"), 405)


def test_the_service_cannot_move_another_users_tour_in_a_tenant_scope(owner_a: Actor, member_a: Actor) -> None:
    theirs = FeatureTourFactory(user=member_a.user)
    with (
        pytest.raises(NotFound),
        atomic_scope(shop_scope(shop=SHOP_A, subject=str(owner_a.user.pk), member_role="owner")),
    ):
        # Handed the row itself (not looked up by the caller's scope), the service re-reads it
        # under the caller's scope, where row level security hides it.
        tour_show(tour=theirs)
    assert stored(FeatureTour, theirs.pk).times_shown == 0
