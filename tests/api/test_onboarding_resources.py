"""onboarding-progress and feature-tours: per-user rows, validation, isolation, query counts."""

from __future__ import annotations

import datetime

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from onboarding.factories import FeatureTourFactory, OnboardingProgressFactory
from onboarding.models import FeatureTour, OnboardingProgress
from tenancy.factories import ShopMembershipFactory
from tenancy.scope import atomic_scope, service_scope
from tests.fixtures.api import assert_error, client_for
from tests.fixtures.tenants import SHOP_A, SHOP_B, Actor

pytestmark = pytest.mark.django_db

PROGRESS = "/api/v1/onboarding-progress/"
TOURS = "/api/v1/feature-tours/"
STEPS = [{"title": "Dashboard", "body": "At a glance."}, {"title": "Campaigns"}, {"title": "Experiments"}]


def _count(model: type, **filters: object) -> int:
    with atomic_scope(service_scope()):
        return model.objects.filter(**filters).count()


def _stored(model: type, pk: int) -> object:
    with atomic_scope(service_scope()):
        return model.objects.get(pk=pk)


# --- onboarding-progress -----------------------------------------------------------------


def test_create_progress_takes_shop_and_user_from_scope_not_body(owner_a: Actor, member_a: Actor) -> None:
    payload = {
        "step_key": "connect-store",
        "step_order": 1,
        "status": "in_progress",
        "started_at": "2026-01-01T10:00:00Z",
        "attempts": 1,
        "shop_domain": SHOP_B,
        "user": str(member_a.user.pk),
    }
    response = owner_a.client.post(PROGRESS, payload, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["shop_domain"], body["user"], body["created_by"]) == (
        SHOP_A,
        str(owner_a.user.pk),
        str(owner_a.user.pk),
    )
    assert body["status"] == "in_progress" and body["completed_at"] is None
    stored = _stored(OnboardingProgress, body["id"])
    assert (stored.shop_id, stored.user_id, stored.step_key, stored.attempts) == (
        SHOP_A,
        owner_a.user.pk,
        "connect-store",
        1,
    )


def test_completed_step_without_time_is_completed_now(owner_a: Actor) -> None:
    before = datetime.datetime.now(datetime.UTC)
    response = owner_a.client.post(PROGRESS, {"step_key": "invite-team", "status": "completed"}, format="json")
    assert response.status_code == 201, response.content
    assert datetime.datetime.fromisoformat(response.json()["completed_at"]) >= before - datetime.timedelta(seconds=1)

    row = OnboardingProgressFactory(user=owner_a.user, shop=owner_a.shop, step_key="connect-social")
    response = owner_a.client.patch(f"{PROGRESS}{row.pk}/", {"status": "completed"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["completed_at"] is not None
    assert _stored(OnboardingProgress, row.pk).completed_at is not None


def test_completed_step_with_explicit_null_time_is_400(owner_a: Actor) -> None:
    payload = {"step_key": "invite-team", "status": "completed", "completed_at": None}
    assert_error(owner_a.client.post(PROGRESS, payload, format="json"), 400, field="completed_at")
    row = OnboardingProgressFactory(user=owner_a.user, shop=owner_a.shop, completed=True)
    response = owner_a.client.patch(f"{PROGRESS}{row.pk}/", {"completed_at": None}, format="json")
    assert_error(response, 400, field="completed_at")
    assert _stored(OnboardingProgress, row.pk).completed_at is not None
    assert _count(OnboardingProgress) == 1


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"status": "flying"}, "status"),
        ({"step_order": -1}, "step_order"),
        ({"attempts": "abc"}, "attempts"),
        ({"time_spent_seconds": -5}, "time_spent_seconds"),
        ({"step_key": "not a slug!"}, "step_key"),
        ({"started_at": "yesterday"}, "started_at"),
        ({"started_at": "2026-01-02T00:00:00Z", "completed_at": "2026-01-01T00:00:00Z"}, "completed_at"),
        ({"unknown": 1}, "unknown"),
    ],
)
def test_invalid_progress_is_refused_and_nothing_written(owner_a: Actor, payload: dict, field: str) -> None:
    body = assert_error(owner_a.client.post(PROGRESS, {"step_key": "s", **payload}, format="json"), 400, field=field)
    assert all(e["message"] for e in body["errors"])
    assert _count(OnboardingProgress) == 0


def test_duplicate_step_for_the_same_user_is_400(owner_a: Actor, member_a: Actor) -> None:
    assert owner_a.client.post(PROGRESS, {"step_key": "s1"}, format="json").status_code == 201
    assert_error(owner_a.client.post(PROGRESS, {"step_key": "s1"}, format="json"), 400, code="unique")
    # Another user of the same shop has their own row for the same step.
    assert member_a.client.post(PROGRESS, {"step_key": "s1"}, format="json").status_code == 201
    assert _count(OnboardingProgress) == 2


def test_user_never_sees_another_users_progress_of_the_same_shop(owner_a: Actor, member_a: Actor) -> None:
    mine = OnboardingProgressFactory(user=owner_a.user, shop=owner_a.shop, step_key="connect-store")
    theirs = OnboardingProgressFactory(user=member_a.user, shop=owner_a.shop, step_key="import-products")
    assert [r["id"] for r in owner_a.client.get(PROGRESS).json()["results"]] == [mine.pk]
    assert [r["id"] for r in member_a.client.get(PROGRESS).json()["results"]] == [theirs.pk]
    for method in ("get", "patch", "put", "delete"):
        response = getattr(owner_a.client, method)(f"{PROGRESS}{theirs.pk}/", {"attempts": 9}, format="json")
        assert_error(response, 404, code="not_found")
    assert _stored(OnboardingProgress, theirs.pk).attempts == 0


def test_progress_of_another_shop_is_404_even_for_the_same_user(owner_a: Actor, owner_b: Actor) -> None:
    theirs = OnboardingProgressFactory(user=owner_b.user, shop=owner_b.shop)
    # owner_a is also a member of B; their own progress in B is not A's progress.
    ShopMembershipFactory(user=owner_a.user, shop=owner_b.shop, role="member")
    own_in_b = OnboardingProgressFactory(user=owner_a.user, shop=owner_b.shop)
    for row in (theirs, own_in_b):
        assert_error(owner_a.client.get(f"{PROGRESS}{row.pk}/"), 404)
        assert_error(owner_a.client.delete(f"{PROGRESS}{row.pk}/"), 404)
    assert owner_a.client.get(PROGRESS).json()["count"] == 0
    assert client_for(owner_a.user, SHOP_B).get(PROGRESS).json()["count"] == 1
    assert _count(OnboardingProgress) == 2


def test_progress_non_member_403_missing_header_400_no_token_401(
    owner_a: Actor, outsider: APIClient, client: Client
) -> None:
    assert_error(outsider.get(PROGRESS), 403, code="not_a_member")
    assert_error(outsider.post(PROGRESS, {"step_key": "x"}, format="json"), 403)
    assert_error(client_for(owner_a.user, None).get(PROGRESS), 400, code="shop_header_missing")
    assert_error(client.get(PROGRESS, HTTP_X_SHOP_DOMAIN=SHOP_A), 401)
    assert _count(OnboardingProgress) == 0


def test_viewer_records_their_own_progress(viewer_a: Actor) -> None:
    # The viewer role makes shop data read-only; a user's own onboarding is theirs to write.
    response = viewer_a.client.post(PROGRESS, {"step_key": "tour", "status": "in_progress"}, format="json")
    assert response.status_code == 201, response.content
    assert _count(OnboardingProgress, user_id=viewer_a.user.pk) == 1


def test_progress_update_and_delete(owner_a: Actor) -> None:
    row = OnboardingProgressFactory(user=owner_a.user, shop=owner_a.shop, step_key="connect-store")
    payload = {"step_key": "connect-store", "step_order": 3, "status": "skipped", "attempts": 2}
    response = owner_a.client.put(f"{PROGRESS}{row.pk}/", payload, format="json")
    assert response.status_code == 200, response.content
    stored = _stored(OnboardingProgress, row.pk)
    assert (stored.status, stored.step_order, stored.attempts) == ("skipped", 3, 2)
    assert owner_a.client.delete(f"{PROGRESS}{row.pk}/").status_code == 204
    assert _count(OnboardingProgress) == 0


def test_progress_list_filters_orders_and_query_count_is_flat(owner_a: Actor, member_a: Actor) -> None:
    def make(n: int, prefix: str) -> None:
        for i in range(n):
            OnboardingProgressFactory(
                user=owner_a.user, shop=owner_a.shop, step_key=f"{prefix}-{i}", step_order=(7 * i) % 5, completed=True
            )
            OnboardingProgressFactory(user=member_a.user, shop=owner_a.shop, step_key=f"{prefix}-{i}", completed=True)

    make(2, "a")
    OnboardingProgressFactory(user=owner_a.user, shop=owner_a.shop, step_key="open", status="in_progress")
    with CaptureQueriesContext(connection) as small:
        body = owner_a.client.get(PROGRESS, {"status": "completed"}).json()
    assert body["count"] == 2
    make(8, "b")
    with CaptureQueriesContext(connection) as large:
        body = owner_a.client.get(PROGRESS, {"status": "completed"}).json()
    assert body["count"] == 10
    orders = [r["step_order"] for r in body["results"]]
    assert orders == sorted(orders)
    assert len(large) == len(small) <= 12
    by_key = owner_a.client.get(PROGRESS, {"step_key": "open"}).json()
    assert [r["status"] for r in by_key["results"]] == ["in_progress"]
    desc = owner_a.client.get(PROGRESS, {"ordering": "-step_order"}).json()["results"]
    assert [r["step_order"] for r in desc] == sorted((r["step_order"] for r in desc), reverse=True)


# --- feature-tours -----------------------------------------------------------------------


def test_create_tour_without_shop_header_belongs_to_the_token_user(owner_a: Actor, member_a: Actor) -> None:
    client = client_for(owner_a.user, None)
    payload = {"tour_key": "dashboard", "tour_name": "Dashboard", "steps": STEPS, "user": str(member_a.user.pk)}
    response = client.post(TOURS, payload, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["user"] == str(owner_a.user.pk) and "shop_domain" not in body
    assert body["steps"] == STEPS and body["current_step"] == 0 and body["status"] == "pending"
    stored = _stored(FeatureTour, body["id"])
    assert (stored.user_id, stored.steps, stored.created_by) == (owner_a.user.pk, STEPS, str(owner_a.user.pk))
    # With the header of a shop they belong to, the same tour is listed.
    assert [r["id"] for r in owner_a.client.get(TOURS).json()["results"]] == [body["id"]]


def test_tour_header_is_still_checked_when_sent(owner_a: Actor, outsider: APIClient, client: Client) -> None:
    FeatureTourFactory(user=owner_a.user)
    assert_error(outsider.get(TOURS), 403, code="not_a_member")
    assert_error(outsider.post(TOURS, {"tour_key": "x", "tour_name": "X"}, format="json"), 403)
    assert_error(client.get(TOURS), 401)
    assert_error(client_for(owner_a.user, "NOT A DOMAIN").get(TOURS), 400, field="X-Shop-Domain")
    assert _count(FeatureTour) == 1


@pytest.mark.parametrize(
    ("payload", "field", "words"),
    [
        ({"steps": {"title": "x"}}, "steps", "array"),
        ({"steps": ["just text"]}, "steps", "steps[0]"),
        ({"steps": [{"title": "ok"}, {"body": "no title"}]}, "steps", "steps[1].title"),
        ({"steps": [{"title": "  "}]}, "steps", "steps[0].title"),
        ({"steps": [{"title": 7}]}, "steps", "steps[0].title"),
        # jsonb cannot store U+0000: a 400, not a database error.
        ({"steps": [{"title": "a\u0000b"}]}, "steps", "Null characters"),
        ({"steps": STEPS, "current_step": 3}, "current_step", "0 to 2"),
        ({"steps": [], "current_step": 1}, "current_step", "no steps"),
        ({"current_step": -1}, "current_step", None),
        ({"status": "done"}, "status", None),
        ({"times_shown": "many"}, "times_shown", None),
        ({"tour_key": "Not A Slug"}, "tour_key", None),
        ({"extra": True}, "extra", None),
    ],
)
def test_invalid_tour_is_refused_and_nothing_written(
    owner_a: Actor, payload: dict, field: str, words: str | None
) -> None:
    body = assert_error(
        owner_a.client.post(TOURS, {"tour_key": "t", "tour_name": "T", **payload}, format="json"), 400, field=field
    )
    if words:
        assert any(words in e["message"] for e in body["errors"] if e["field"] == field), body
    assert _count(FeatureTour) == 0


def test_tour_current_step_is_checked_against_stored_steps_on_patch(owner_a: Actor) -> None:
    tour = FeatureTourFactory(user=owner_a.user, current_step=2)
    assert owner_a.client.patch(f"{TOURS}{tour.pk}/", {"current_step": 1}, format="json").status_code == 200
    assert_error(
        owner_a.client.patch(f"{TOURS}{tour.pk}/", {"current_step": 3}, format="json"), 400, field="current_step"
    )
    # Shrinking the steps below the current one is refused too.
    response = owner_a.client.patch(f"{TOURS}{tour.pk}/", {"steps": [{"title": "only"}]}, format="json")
    assert_error(response, 400, field="current_step")
    stored = _stored(FeatureTour, tour.pk)
    assert (stored.current_step, len(stored.steps)) == (1, 3)
    payload = {"steps": [{"title": "only"}], "current_step": 0, "status": "completed"}
    assert owner_a.client.patch(f"{TOURS}{tour.pk}/", payload, format="json").status_code == 200
    assert _stored(FeatureTour, tour.pk).status == "completed"


def test_duplicate_tour_key_is_400(owner_a: Actor) -> None:
    FeatureTourFactory(user=owner_a.user, tour_key="dup")
    assert_error(owner_a.client.post(TOURS, {"tour_key": "dup", "tour_name": "D"}, format="json"), 400, code="unique")
    assert _count(FeatureTour) == 1


def test_user_never_sees_another_users_tours(owner_a: Actor, member_a: Actor) -> None:
    mine = FeatureTourFactory(user=owner_a.user)
    theirs = FeatureTourFactory(user=member_a.user)
    assert [r["id"] for r in owner_a.client.get(TOURS).json()["results"]] == [mine.pk]
    assert [r["id"] for r in client_for(member_a.user, None).get(TOURS).json()["results"]] == [theirs.pk]
    for client in (owner_a.client, client_for(owner_a.user, None)):
        for method in ("get", "patch", "delete"):
            response = getattr(client, method)(f"{TOURS}{theirs.pk}/", {"interactions": 5}, format="json")
            assert_error(response, 404, code="not_found")
    assert _stored(FeatureTour, theirs.pk).interactions == 0


def test_viewer_advances_their_own_tour(viewer_a: Actor) -> None:
    tour = FeatureTourFactory(user=viewer_a.user)
    response = viewer_a.client.patch(f"{TOURS}{tour.pk}/", {"current_step": 1, "status": "active"}, format="json")
    assert response.status_code == 200, response.content
    assert _stored(FeatureTour, tour.pk).current_step == 1


def test_tour_delete(owner_a: Actor) -> None:
    tour = FeatureTourFactory(user=owner_a.user)
    assert owner_a.client.delete(f"{TOURS}{tour.pk}/").status_code == 204
    assert _count(FeatureTour) == 0


def test_tour_list_filters_and_query_count_is_flat(owner_a: Actor, member_a: Actor) -> None:
    def make(n: int) -> None:
        for _ in range(n):
            FeatureTourFactory(user=owner_a.user, status="active")
            FeatureTourFactory(user=member_a.user, status="active")

    make(2)
    FeatureTourFactory(user=owner_a.user, tour_key="done-tour", status="completed")
    with CaptureQueriesContext(connection) as small:
        body = owner_a.client.get(TOURS, {"status": "active"}).json()
    assert body["count"] == 2
    make(8)
    with CaptureQueriesContext(connection) as large:
        body = owner_a.client.get(TOURS, {"status": "active"}).json()
    assert body["count"] == 10
    assert len(large) == len(small) <= 12
    assert [r["tour_key"] for r in owner_a.client.get(TOURS, {"tour_key": "done-tour"}).json()["results"]] == [
        "done-tour"
    ]
    keys = [r["tour_key"] for r in body["results"]]
    assert keys == sorted(keys)
