"""Shopify webhooks: signature check, idempotent delivery record, and the topic handlers.

A delivery goes through four short steps instead of one transaction, so that every step
that can fail leaves a record behind:
1. claim: the delivery row is inserted (or, for a retry of a rejected or failed one, reset)
   under a row lock; a delivery already processed or ignored is a replay: nothing happens;
2. the body is parsed (a malformed body is recorded as rejected, answered 400);
3. the topic's handler runs in its own transactions (an erasure commits its record first);
4. the outcome is recorded (a failure is answered 503 and Shopify retries).
Handlers are idempotent, so two concurrent deliveries of one webhook id (Shopify does not
send them, a retry storm might) can both run step 3 without harm.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import hmac
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from tenancy.models import Shop, shop_domain_validator
from tenancy.scope import atomic_scope, service_scope

from .erasure import shop_erasure_run
from .models import FINAL_STATUSES, DeliveryStatus, WebhookDelivery
from .registry import customer_data_tables

logger = logging.getLogger(__name__)

APP_UNINSTALLED = "app/uninstalled"
SHOP_REDACT = "shop/redact"
CUSTOMERS_DATA_REQUEST = "customers/data_request"
CUSTOMERS_REDACT = "customers/redact"


def webhook_signature_valid(*, body: bytes, signature: str, secret: str) -> bool:
    """True when `signature` is the base64 HMAC-SHA256 of the raw `body` under `secret`.

    Compared in constant time on the decoded digests; a signature that is not base64 of 32
    bytes, or an unset secret, is simply invalid."""
    if not secret or not signature:
        return False
    try:
        given = base64.b64decode(signature.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    expected = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return hmac.compare_digest(expected, given)


@dataclass(frozen=True)
class WebhookHeaders:
    webhook_id: str
    topic: str
    shop_domain: str
    api_version: str
    triggered_at: datetime.datetime | None


class WebhookInvalid(ValueError):
    """A signed delivery that cannot be processed as sent (answered 400)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def webhook_headers(headers: Any) -> WebhookHeaders:
    """The delivery's headers, validated (WebhookInvalid names the header at fault)."""
    webhook_id = headers.get("X-Shopify-Webhook-Id", "").strip()
    topic = headers.get("X-Shopify-Topic", "").strip()
    shop = headers.get("X-Shopify-Shop-Domain", "").strip().lower()
    if not webhook_id or len(webhook_id) > 255:
        raise WebhookInvalid("X-Shopify-Webhook-Id", "X-Shopify-Webhook-Id is required (at most 255 characters).")
    if not topic or len(topic) > 100:
        raise WebhookInvalid("X-Shopify-Topic", "X-Shopify-Topic is required (at most 100 characters).")
    try:
        shop_domain_validator(shop)
    except ValidationError as exc:
        raise WebhookInvalid("X-Shopify-Shop-Domain", "X-Shopify-Shop-Domain must be a shop domain.") from exc
    triggered = parse_datetime(headers.get("X-Shopify-Triggered-At", "").strip() or "x")
    return WebhookHeaders(
        webhook_id=webhook_id,
        topic=topic,
        shop_domain=shop,
        api_version=headers.get("X-Shopify-API-Version", "").strip()[:20],
        triggered_at=triggered if triggered and triggered.tzinfo else None,
    )


@dataclass(frozen=True)
class Outcome:
    status: str  # DeliveryStatus
    result: str
    delivery_id: int
    replay: bool = False


@transaction.atomic
def _delivery_claim(*, headers: WebhookHeaders, body: bytes) -> tuple[WebhookDelivery, bool]:
    """(delivery, replay): the row of this webhook id, locked; replay when already done."""
    with atomic_scope(service_scope()):
        fields = {
            "topic": headers.topic,
            "shop_domain": headers.shop_domain,
            "api_version": headers.api_version,
            "triggered_at": headers.triggered_at,
            "payload_sha256": hashlib.sha256(body).hexdigest(),
            "payload_bytes": len(body),
        }
        # ON CONFLICT DO NOTHING, then lock: a concurrent first delivery of the same id waits
        # here until the other's claim commits, instead of failing on the unique key.
        WebhookDelivery.objects.bulk_create(
            [WebhookDelivery(webhook_id=headers.webhook_id, **fields)], ignore_conflicts=True
        )
        delivery = WebhookDelivery.objects.select_for_update().get(webhook_id=headers.webhook_id)
        if delivery.status in FINAL_STATUSES:
            return delivery, True
        if delivery.status != DeliveryStatus.RECEIVED or delivery.processed_at is not None:
            # A retry of a rejected or failed delivery: processed again.
            for name, value in fields.items():
                setattr(delivery, name, value)
            delivery.attempts += 1
            delivery.status = DeliveryStatus.RECEIVED
            delivery.result = ""
            delivery.processed_at = None
            delivery.save()
        return delivery, False


@transaction.atomic
def _delivery_finish(*, delivery: WebhookDelivery, status: str, result: str) -> WebhookDelivery:
    with atomic_scope(service_scope()):
        delivery.status = status
        delivery.result = result[:2000]
        delivery.processed_at = timezone.now()
        delivery.save(update_fields=["status", "result", "processed_at"])
        return delivery


# --- Topic handlers: (delivery, payload) -> result text; idempotent ------------------------


@transaction.atomic
def _app_uninstalled(delivery: WebhookDelivery, payload: dict[str, Any]) -> str:
    with atomic_scope(service_scope()):
        updated = Shop.objects.filter(domain=delivery.shop_domain, is_active=True).update(
            is_active=False, updated_at=timezone.now()
        )
    # Data stays until shop/redact (Shopify sends it 48 hours after the uninstall).
    return "shop marked inactive; data kept until shop/redact" if updated else "shop already inactive or unknown"


def _shop_redact(delivery: WebhookDelivery, payload: dict[str, Any]) -> str:
    erasure = shop_erasure_run(shop_domain=delivery.shop_domain, reason=SHOP_REDACT, delivery=delivery)
    return f"shop erased (erasure {erasure.pk}): {sum(erasure.rows_deleted.values())} rows"


class CustomerDataNotHandled(RuntimeError):
    """A table holds customer data that no compliance handler erases or reports yet."""


def _customer_request(delivery: WebhookDelivery, payload: dict[str, Any]) -> str:
    tables = customer_data_tables()
    if tables:
        # Answering 200 would tell Shopify the request was honoured while these tables were
        # never looked at: fail, so that the delivery is retried and seen.
        raise CustomerDataNotHandled(
            f"{delivery.topic}: tables {', '.join(tables)} hold (or may hold) customer data and no handler covers them"
        )
    return "no customer personal data is stored (docs/security.md, Shopify compliance webhooks)"


HANDLERS: dict[str, Callable[[WebhookDelivery, dict[str, Any]], str]] = {
    APP_UNINSTALLED: _app_uninstalled,
    SHOP_REDACT: _shop_redact,
    CUSTOMERS_DATA_REQUEST: _customer_request,
    CUSTOMERS_REDACT: _customer_request,
}


def _payload(body: bytes, headers: WebhookHeaders) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WebhookInvalid("body", f"The body is not JSON: {type(exc).__name__}.") from exc
    if not isinstance(payload, dict):
        raise WebhookInvalid("body", "The body must be a JSON object.")
    named = payload.get("shop_domain")
    if named is not None and str(named).strip().lower() != headers.shop_domain:
        raise WebhookInvalid("body.shop_domain", "shop_domain does not match X-Shopify-Shop-Domain.")
    return payload


def webhook_deliver(*, headers: WebhookHeaders, body: bytes) -> Outcome:
    """Record and process one signed delivery (see the module docstring for the steps).

    Raises WebhookInvalid (recorded as rejected) for a body that cannot be processed, and
    re-raises a handler's failure (recorded as failed)."""
    delivery, replay = _delivery_claim(headers=headers, body=body)
    if replay:
        logger.info(
            "webhook %s (%s, %s) replayed: nothing to do", headers.webhook_id, headers.topic, headers.shop_domain
        )
        return Outcome(status=delivery.status, result=delivery.result, delivery_id=delivery.pk, replay=True)
    try:
        payload = _payload(body, headers)
    except WebhookInvalid as exc:
        _delivery_finish(delivery=delivery, status=DeliveryStatus.REJECTED, result=exc.message)
        raise
    handler = HANDLERS.get(headers.topic)
    if handler is None:
        _delivery_finish(delivery=delivery, status=DeliveryStatus.IGNORED, result="topic not handled")
        return Outcome(status=DeliveryStatus.IGNORED, result="topic not handled", delivery_id=delivery.pk)
    try:
        result = handler(delivery, payload)
    except Exception as exc:
        _delivery_finish(delivery=delivery, status=DeliveryStatus.FAILED, result=f"{type(exc).__name__}: {exc}")
        raise
    _delivery_finish(delivery=delivery, status=DeliveryStatus.PROCESSED, result=result)
    logger.info("webhook %s (%s, %s): %s", headers.webhook_id, headers.topic, headers.shop_domain, result)
    return Outcome(status=DeliveryStatus.PROCESSED, result=result, delivery_id=delivery.pk)
