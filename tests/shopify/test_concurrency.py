"""Races the lifecycle must survive: two first session-token requests of a new shop, and one
webhook delivered twice at once."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connections
from django.test import Client
from rest_framework.test import APIClient

from shopify.models import WebhookDelivery
from tenancy.factories import ShopFactory
from tenancy.models import Shop, ShopMembership
from tenancy.scope import atomic_scope, service_scope

from .conftest import post_webhook, session_token

ROUNDS = 5


def _in_threads(work: Callable[[int], Any], threads: int = 2) -> tuple[list[Any], list[BaseException]]:
    results: list[Any] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads)

    def run(index: int) -> None:
        try:
            barrier.wait()
            results.append(work(index))
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return results, errors


@pytest.mark.django_db(transaction=True)
def test_two_first_users_of_a_new_shop_at_once_make_exactly_one_owner() -> None:
    for round_ in range(ROUNDS):
        shop = f"race-{round_}.myshopify.com"

        def first_request(index: int, shop: str = shop, round_: int = round_) -> int:
            client = APIClient()
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {session_token(shop, f'{round_}-{index}')}")
            return int(client.get("/api/v1/seo-audits/").status_code)

        statuses, errors = _in_threads(first_request)
        assert errors == []
        assert statuses == [200, 200]
        roles = sorted(ShopMembership.objects.filter(shop_id=shop).values_list("role", flat=True))
        assert roles == ["member", "owner"]
        assert Shop.objects.filter(domain=shop).count() == 1


@pytest.mark.django_db(transaction=True)
def test_one_webhook_delivered_twice_at_once_is_recorded_once() -> None:
    ShopFactory(domain="race.myshopify.com")

    def deliver(index: int) -> int:
        return int(post_webhook(Client(), "app/uninstalled", "race.myshopify.com", webhook_id="same-id").status_code)

    statuses, errors = _in_threads(deliver)
    assert errors == []
    assert statuses == [200, 200]
    with atomic_scope(service_scope()):
        rows = list(WebhookDelivery.objects.values_list("webhook_id", "status", "attempts"))
    assert rows == [("same-id", "processed", 1)]
    assert not Shop.objects.get(domain="race.myshopify.com").is_active
