"""Concurrent moves on one tour or step: the row lock serializes them, no increment is lost."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from django.db import connections

from onboarding.factories import FeatureTourFactory, OnboardingProgressFactory
from onboarding.models import FeatureTour, OnboardingProgress
from tenancy.factories import ShopFactory, ShopMembershipFactory, UserFactory
from tenancy.scope import atomic_scope, service_scope
from tests.fixtures.api import client_for
from tests.fixtures.tenants import SHOP_A

from .conftest import stored

ROUNDS = 20


def _in_threads(work: Callable[[], None], threads: int = 2) -> list[BaseException]:
    """Run `work` in `threads` threads at once (each with its own connection)."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads)

    def run() -> None:
        try:
            barrier.wait()
            work()
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return errors


@pytest.mark.django_db(transaction=True)
def test_two_threads_showing_a_tour_twenty_times_each_count_forty() -> None:
    user = UserFactory(username="racer")
    ShopMembershipFactory(user=user, shop=ShopFactory(domain=SHOP_A), role="member")
    tour = FeatureTourFactory(user=user)
    url = f"/api/v1/feature-tours/{tour.pk}/show/"

    def show_twenty_times() -> None:
        client = client_for(user, SHOP_A)
        for _ in range(ROUNDS):
            response = client.post(url)
            assert response.status_code == 200, response.content

    assert _in_threads(show_twenty_times) == []
    row = stored(FeatureTour, tour.pk)
    assert (row.times_shown, row.status) == (2 * ROUNDS, "active")


@pytest.mark.django_db(transaction=True)
def test_two_threads_starting_a_step_twenty_times_each_count_forty_attempts() -> None:
    user = UserFactory(username="racer")
    shop = ShopFactory(domain=SHOP_A)
    ShopMembershipFactory(user=user, shop=shop, role="member")
    # No row yet for one step: the first starts race to create it, and exactly one row results.
    OnboardingProgressFactory(user=user, shop=shop, step_key="import-products")

    def start_twenty_times() -> None:
        client = client_for(user, SHOP_A)
        for _ in range(ROUNDS):
            for step in ("connect-store", "import-products"):
                response = client.post("/api/v1/onboarding-progress/start/", {"step_key": step}, format="json")
                assert response.status_code == 200, response.content

    assert _in_threads(start_twenty_times) == []
    with atomic_scope(service_scope()):
        attempts = dict(OnboardingProgress.objects.values_list("step_key", "attempts"))
    assert attempts == {"connect-store": 2 * ROUNDS, "import-products": 2 * ROUNDS}
