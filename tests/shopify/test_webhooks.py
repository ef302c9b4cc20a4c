"""POST /webhooks/shopify/: HMAC before anything, idempotent deliveries, every delivery
recorded, and the lifecycle topics."""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from shopify import registry, webhooks
from shopify.models import DeliveryStatus, ErasureStatus, ShopErasure, WebhookDelivery
from tenancy.models import Shop
from tenancy.scope import atomic_scope, service_scope
from tests.fixtures.api import client_for
from tests.fixtures.tenants import SHOP_A, SHOP_B, Tenant

from .conftest import API_SECRET, post_webhook, shop_rows, sign

pytestmark = pytest.mark.django_db


def deliveries() -> list[tuple[str, str, str, int]]:
    with atomic_scope(service_scope()):
        return list(WebhookDelivery.objects.order_by("id").values_list("topic", "shop_domain", "status", "attempts"))


@pytest.mark.parametrize(
    "signature",
    ["", "bm90IHRoZSByaWdodCBzaWduYXR1cmU=", "not base64 at all!", sign(b"another body")],
    ids=["missing", "wrong", "garbage", "signature-of-another-body"],
)
def test_a_bad_or_missing_hmac_is_refused_and_changes_nothing(
    filled: tuple[Tenant, Tenant], signature: str, caplog: pytest.LogCaptureFixture
) -> None:
    before = shop_rows(SHOP_A)
    response = post_webhook(Client(), "shop/redact", SHOP_A, signature=signature)
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_hmac"
    assert deliveries() == []
    assert shop_rows(SHOP_A) == before
    assert Shop.objects.get(domain=SHOP_A).is_active
    assert API_SECRET not in response.content.decode() + caplog.text


def test_a_body_signed_with_another_secret_is_refused(tenant_a: Tenant) -> None:
    body = json.dumps({"shop_domain": SHOP_A}).encode()
    response = post_webhook(Client(), "app/uninstalled", SHOP_A, body=body, signature=sign(body, "other-secret"))
    assert response.status_code == 401
    assert Shop.objects.get(domain=SHOP_A).is_active


def test_without_a_configured_secret_every_webhook_is_refused(tenant_a: Tenant, settings: Any) -> None:
    settings.SHOPIFY_API_SECRET = ""
    body = b"{}"
    response = post_webhook(Client(), "app/uninstalled", SHOP_A, body=body, signature=sign(body, ""))
    assert response.status_code == 401
    assert deliveries() == []


def test_app_uninstalled_marks_the_shop_inactive_keeps_its_data_and_stops_its_api(
    filled: tuple[Tenant, Tenant],
) -> None:
    tenant_a, _ = filled
    api = client_for(tenant_a.owner, SHOP_A)
    assert api.get("/api/v1/seo-audits/").status_code == 200
    before = shop_rows(SHOP_A)

    response = post_webhook(Client(), "app/uninstalled", SHOP_A, {"id": 1, "domain": SHOP_A})

    assert response.status_code == 200
    assert response.json()["status"] == "processed"
    assert not Shop.objects.get(domain=SHOP_A).is_active
    assert Shop.objects.get(domain=SHOP_B).is_active
    assert shop_rows(SHOP_A) == before
    assert api.get("/api/v1/seo-audits/").status_code == 403
    assert deliveries() == [("app/uninstalled", SHOP_A, DeliveryStatus.PROCESSED, 1)]


def test_a_replayed_webhook_id_answers_200_and_does_nothing(tenant_a: Tenant) -> None:
    client = Client()
    first = post_webhook(client, "app/uninstalled", SHOP_A, webhook_id="wh-1")
    # Reactivated by staff in between: a replay must not uninstall it again.
    Shop.objects.filter(domain=SHOP_A).update(is_active=True)
    again = post_webhook(client, "app/uninstalled", SHOP_A, webhook_id="wh-1")
    assert (first.status_code, again.status_code) == (200, 200)
    assert again.json()["replay"] is True
    assert Shop.objects.get(domain=SHOP_A).is_active
    assert deliveries() == [("app/uninstalled", SHOP_A, DeliveryStatus.PROCESSED, 1)]


def test_unknown_topics_are_recorded_and_answered_200(tenant_a: Tenant) -> None:
    response = post_webhook(Client(), "orders/create", SHOP_A, {"id": 7})
    assert response.status_code == 200
    assert response.json()["status"] == "ignored"
    assert deliveries() == [("orders/create", SHOP_A, DeliveryStatus.IGNORED, 1)]


def test_malformed_json_with_a_valid_hmac_is_400_recorded_and_retried(tenant_a: Tenant) -> None:
    client = Client()
    response = post_webhook(client, "app/uninstalled", SHOP_A, body=b"{not json", webhook_id="wh-bad")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "body"
    assert Shop.objects.get(domain=SHOP_A).is_active
    assert deliveries() == [("app/uninstalled", SHOP_A, DeliveryStatus.REJECTED, 1)]
    # Shopify retries the same id; this time the body is right.
    retried = post_webhook(client, "app/uninstalled", SHOP_A, webhook_id="wh-bad")
    assert retried.status_code == 200
    assert deliveries() == [("app/uninstalled", SHOP_A, DeliveryStatus.PROCESSED, 2)]


@pytest.mark.parametrize(
    ("headers", "field"),
    [
        ({"HTTP_X_SHOPIFY_TOPIC": ""}, "X-Shopify-Topic"),
        ({"HTTP_X_SHOPIFY_SHOP_DOMAIN": "Not A Domain"}, "X-Shopify-Shop-Domain"),
        ({"HTTP_X_SHOPIFY_WEBHOOK_ID": ""}, "X-Shopify-Webhook-Id"),
    ],
)
def test_signed_deliveries_without_their_headers_are_400_naming_the_header(headers: dict, field: str) -> None:
    body = b"{}"
    base = {
        "HTTP_X_SHOPIFY_TOPIC": "app/uninstalled",
        "HTTP_X_SHOPIFY_SHOP_DOMAIN": SHOP_A,
        "HTTP_X_SHOPIFY_WEBHOOK_ID": "wh-x",
        "HTTP_X_SHOPIFY_HMAC_SHA256": sign(body),
    }
    response = Client().post("/webhooks/shopify/", data=body, content_type="application/json", **(base | headers))
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == field
    assert deliveries() == []


def test_a_payload_naming_another_shop_is_rejected(filled: tuple[Tenant, Tenant]) -> None:
    response = post_webhook(Client(), "shop/redact", SHOP_A, {"shop_id": 1, "shop_domain": SHOP_B})
    assert response.status_code == 400
    assert all(shop_rows(SHOP_B).values())
    assert all(shop_rows(SHOP_A).values())


def test_shop_redact_erases_the_shop_and_records_delivery_and_erasure(filled: tuple[Tenant, Tenant]) -> None:
    before_b = shop_rows(SHOP_B)
    response = post_webhook(Client(), "shop/redact", SHOP_A, {"shop_id": 954889, "shop_domain": SHOP_A})
    assert response.status_code == 200, response.content
    assert all(rows == [] for rows in shop_rows(SHOP_A).values())
    assert shop_rows(SHOP_B) == before_b
    with atomic_scope(service_scope()):
        erasure = ShopErasure.objects.select_related("delivery").get(shop_domain=SHOP_A)
    assert erasure.status == ErasureStatus.COMPLETED
    assert erasure.reason == "shop/redact"
    assert erasure.delivery is not None and erasure.delivery.topic == "shop/redact"
    assert deliveries() == [("shop/redact", SHOP_A, DeliveryStatus.PROCESSED, 1)]


@pytest.mark.parametrize("topic", ["customers/data_request", "customers/redact"])
def test_customer_requests_are_recorded_and_answered_200_without_storing_the_customer(
    tenant_a: Tenant, topic: str
) -> None:
    payload = {
        "shop_id": 954889,
        "shop_domain": SHOP_A,
        "customer": {"id": 191167, "email": "john@example.com", "phone": "555-625-1199"},
        "orders_to_redact": [299938],
    }
    response = post_webhook(Client(), topic, SHOP_A, payload)
    assert response.status_code == 200
    assert "no customer personal data" in response.json()["result"]
    assert deliveries() == [(topic, SHOP_A, DeliveryStatus.PROCESSED, 1)]
    with atomic_scope(service_scope()):
        stored = json.dumps(list(WebhookDelivery.objects.values()), default=str)
    assert "john@example.com" not in stored and "555-625-1199" not in stored


def test_a_customer_request_fails_while_a_table_holds_customer_data(
    tenant_a: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(registry, "CUSTOMER_DATA_REVIEW", registry.CUSTOMER_DATA_REVIEW | {"experiments": True})
    response = post_webhook(Client(), "customers/redact", SHOP_A, {"shop_domain": SHOP_A, "customer": {"id": 1}})
    assert response.status_code == 503
    assert deliveries() == [("customers/redact", SHOP_A, DeliveryStatus.FAILED, 1)]


def test_a_failing_handler_is_recorded_failed_answered_503_and_finished_by_the_retry(
    filled: tuple[Tenant, Tenant], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from shopify import erasure as erasure_module

    real = erasure_module._delete
    monkeypatch.setattr(erasure_module, "_delete", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("disk full")))
    client = Client()
    with caplog.at_level(logging.INFO):
        failed = post_webhook(client, "shop/redact", SHOP_A, webhook_id="wh-redact")
    assert failed.status_code == 503
    assert all(shop_rows(SHOP_A).values())
    assert deliveries() == [("shop/redact", SHOP_A, DeliveryStatus.FAILED, 1)]
    monkeypatch.setattr(erasure_module, "_delete", real)
    retried = post_webhook(client, "shop/redact", SHOP_A, webhook_id="wh-redact")
    assert retried.status_code == 200
    assert all(rows == [] for rows in shop_rows(SHOP_A).values())
    assert deliveries() == [("shop/redact", SHOP_A, DeliveryStatus.PROCESSED, 2)]
    assert API_SECRET not in caplog.text + failed.content.decode()


def test_only_post_is_accepted() -> None:
    assert Client().get("/webhooks/shopify/").status_code == 405


# --- Bodies the parser cannot take --------------------------------------------------------


def delivery_rows() -> list[dict[str, Any]]:
    with atomic_scope(service_scope()):
        return list(WebhookDelivery.objects.order_by("id").values())


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"shop_domain": "' + SHOP_A.encode() + b'", "a":' + b'{"a":' * 100_000 + b"1" + b"}" * 100_001, "deeply"),
        (b'{"id": ' + b"9" * 5_000 + b"}", "not acceptable JSON"),
    ],
    ids=["array-100000-deep", "object-100000-deep", "integer-of-5000-digits"],
)
def test_a_signed_body_the_parser_cannot_take_is_400_and_recorded_rejected(
    tenant_a: Tenant, body: bytes, message: str
) -> None:
    response = post_webhook(Client(), "shop/redact", SHOP_A, body=body, webhook_id="wh-deep")
    assert response.status_code == 400, response.content
    assert response.json()["errors"][0]["field"] == "body"
    assert message in response.json()["detail"]
    [row] = delivery_rows()
    assert (row["webhook_id"], row["status"], row["payload_bytes"]) == ("wh-deep", DeliveryStatus.REJECTED, len(body))
    assert message in row["result"]
    assert Shop.objects.get(domain=SHOP_A).is_active
    with atomic_scope(service_scope()):
        assert not ShopErasure.objects.exists()


def test_a_signed_body_over_the_limit_is_400_and_recorded_rejected_with_its_hash_and_size(
    tenant_a: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(webhooks, "WEBHOOK_BODY_LIMIT", 2_000)
    body = json.dumps({"shop_domain": SHOP_A, "padding": "x" * 5_000}).encode()
    response = post_webhook(Client(), "shop/redact", SHOP_A, body=body, webhook_id="wh-huge")
    assert response.status_code == 400, response.content
    assert response.json()["errors"][0] == {
        "field": "body",
        "code": "invalid",
        "message": "The body is larger than 2000 bytes.",
    }
    [row] = delivery_rows()
    assert row["status"] == DeliveryStatus.REJECTED
    assert (row["payload_bytes"], row["payload_sha256"]) == (len(body), hashlib.sha256(body).hexdigest())
    assert Shop.objects.get(domain=SHOP_A).is_active


def test_an_unsigned_body_over_the_limit_is_401_and_not_recorded(
    tenant_a: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(webhooks, "WEBHOOK_BODY_LIMIT", 2_000)
    response = post_webhook(Client(), "shop/redact", SHOP_A, body=b"{" * 5_000, signature=sign(b"{}"))
    assert response.status_code == 401
    assert delivery_rows() == []


def test_a_body_over_the_upload_ceiling_is_400_unread_and_not_recorded(tenant_a: Tenant, settings: Any) -> None:
    # Its signature cannot be checked without reading all of it, and anyone can send one.
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1_000
    body = json.dumps({"shop_domain": SHOP_A, "padding": "x" * 5_000}).encode()
    response = post_webhook(Client(), "shop/redact", SHOP_A, body=body)
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "too_large"
    assert delivery_rows() == []
    assert Shop.objects.get(domain=SHOP_A).is_active


# --- One webhook id, one run --------------------------------------------------------------


def test_a_duplicate_of_a_delivery_being_processed_is_409_and_runs_nothing(
    filled: tuple[Tenant, Tenant], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first request claimed the delivery a moment ago and is still erasing.
    monkeypatch.setattr(webhooks, "WEBHOOK_BUSY_WAIT", 0.3)
    with atomic_scope(service_scope()):
        WebhookDelivery.objects.create(
            webhook_id="wh-busy",
            topic="shop/redact",
            shop_domain=SHOP_A,
            payload_sha256="0" * 64,
            payload_bytes=2,
            claimed_at=timezone.now(),
        )
    response = post_webhook(Client(), "shop/redact", SHOP_A, webhook_id="wh-busy")
    assert response.status_code == 409
    assert response.json()["code"] == "in_progress"
    assert response["Retry-After"] == "5"
    assert deliveries() == [("shop/redact", SHOP_A, DeliveryStatus.RECEIVED, 1)]
    assert all(shop_rows(SHOP_A).values())
    with atomic_scope(service_scope()):
        assert not ShopErasure.objects.exists()


def test_a_delivery_claimed_by_a_request_that_died_is_taken_over_by_the_retry(filled: tuple[Tenant, Tenant]) -> None:
    with atomic_scope(service_scope()):
        WebhookDelivery.objects.create(
            webhook_id="wh-dead",
            topic="shop/redact",
            shop_domain=SHOP_A,
            payload_sha256="0" * 64,
            payload_bytes=2,
            claimed_at=timezone.now() - webhooks.WEBHOOK_CLAIM_LEASE - datetime.timedelta(seconds=1),
        )
    response = post_webhook(Client(), "shop/redact", SHOP_A, webhook_id="wh-dead")
    assert response.status_code == 200, response.content
    assert response.json()["replay"] is False
    assert deliveries() == [("shop/redact", SHOP_A, DeliveryStatus.PROCESSED, 2)]
    assert all(rows == [] for rows in shop_rows(SHOP_A).values())
