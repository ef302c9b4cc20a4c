"""Races the lifecycle must survive: two first session-token requests of a new shop, one
webhook delivered twice at once, and three shop/redact deliveries of one webhook id at once."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connections
from django.test import Client
from rest_framework.test import APIClient

from growth.factories import AdCampaignFactory
from growth.models import AdCampaign
from shopify import webhooks
from shopify.models import ShopErasure, WebhookDelivery
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


@pytest.mark.django_db(transaction=True)
def test_three_shop_redact_deliveries_of_one_webhook_at_once_run_one_erasure_and_all_name_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Long enough for the first erasure on a loaded test machine: the test is about running
    # one erasure, not about how long a duplicate waits (test_webhooks.py covers the 409).
    monkeypatch.setattr(webhooks, "WEBHOOK_BUSY_WAIT", 30.0)
    for round_ in range(3):
        domain = f"redact-race-{round_}.myshopify.com"
        shop = ShopFactory(domain=domain)
        AdCampaignFactory(shop=shop)
        webhook_id = f"redact-{round_}"

        def deliver(index: int, domain: str = domain, webhook_id: str = webhook_id) -> tuple[int, Any]:
            response = post_webhook(Client(), "shop/redact", domain, webhook_id=webhook_id)
            return int(response.status_code), response.json()

        answers, errors = _in_threads(deliver, threads=3)
        assert errors == []
        assert [status for status, _ in answers] == [200, 200, 200], answers
        with atomic_scope(service_scope()):
            erasures = list(ShopErasure.objects.filter(shop_domain=domain).values("id", "status", "delivery_id"))
            delivery = WebhookDelivery.objects.get(webhook_id=webhook_id)
        # One delivery id, one erasure: the first request ran it, the two duplicates waited for
        # it and answered its outcome without running anything.
        assert len(erasures) == 1, erasures
        [erasure] = erasures
        assert (erasure["status"], erasure["delivery_id"]) == ("completed", delivery.pk)
        assert (delivery.status, delivery.attempts) == ("processed", 1)
        assert f"(erasure {erasure['id']})" in delivery.result
        assert sorted(body["replay"] for _, body in answers) == [False, True, True]
        assert {(body["delivery"], body["result"]) for _, body in answers} == {(delivery.pk, delivery.result)}
        with atomic_scope(service_scope()):
            assert not AdCampaign.objects.filter(shop_id=domain).exists()
