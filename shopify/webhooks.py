"""Shopify webhooks: signature check, idempotent delivery record, and the topic handlers.

A delivery goes through four short steps instead of one transaction, so that every step
that can fail leaves a record behind:
1. claim: the delivery row is inserted (or, for a retry of a rejected or failed one, reset)
   under a row lock, and stamped `claimed_at`; a delivery already processed or ignored is a
   replay: nothing happens;
2. the body is parsed (a malformed, too deep or too large body is recorded as rejected,
   answered 400);
3. the topic's handler runs in its own transactions (an erasure commits its record first);
4. the outcome is recorded (a failure is answered 503 and Shopify retries).

One webhook id is processed by one request at a time. Step 3 cannot hold a row lock (an
erasure commits several transactions), so the claim is a lease: a second delivery of the same
id that finds it `received` and claimed less than WEBHOOK_CLAIM_LEASE ago does not run the
handler again; it waits (up to WEBHOOK_BUSY_WAIT) for the first to finish and answers with its
outcome as a replay, or, if the first is still running, raises WebhookBusy (answered 409, and
Shopify retries later). A claim older than the lease belongs to a request that died (the web
server kills a worker after 60 s): the next delivery takes it over. Shopify retries a delivery
it timed out (5 s) while the first may still be running, and a retry storm sends duplicates at
once: before the lease, three concurrent `shop/redact` deliveries ran three erasures.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
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

# The largest body that is kept in memory and parsed. The lifecycle topics are small (the
# largest, customers/redact, lists a customer's order ids); a larger body is hashed as it
# streams in, so that its signature is checked and its delivery recorded (rejected), but it is
# never held whole or parsed.
WEBHOOK_BODY_LIMIT = 2 * 1024 * 1024
# How long a claimed delivery belongs to the request that claimed it (module docstring): well
# over the web server's 60 s worker timeout, so only a claim of a dead request expires.
WEBHOOK_CLAIM_LEASE = datetime.timedelta(minutes=5)
# How long a duplicate delivery waits for the one being processed: under the 5 s Shopify
# waits for an answer.
WEBHOOK_BUSY_WAIT = 4.0
WEBHOOK_BUSY_POLL = 0.1


def _signature_digest(signature: str, secret: str) -> bytes | None:
    if not secret or not signature:
        return None
    try:
        given = base64.b64decode(signature.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    return given


def webhook_signature_valid(*, body: bytes, signature: str, secret: str) -> bool:
    """True when `signature` is the base64 HMAC-SHA256 of the raw `body` under `secret`.

    Compared in constant time on the decoded digests; a signature that is not base64 of 32
    bytes, or an unset secret, is simply invalid."""
    return webhook_body_read(chunks=[body], signature=signature, secret=secret) is not None


@dataclass(frozen=True)
class WebhookBody:
    """A signed body: its bytes (None when over WEBHOOK_BODY_LIMIT: not kept), SHA-256 and size."""

    raw: bytes | None
    sha256: str
    size: int

    @classmethod
    def of(cls, raw: bytes) -> WebhookBody:
        return cls(raw=raw, sha256=hashlib.sha256(raw).hexdigest(), size=len(raw))


def webhook_body_read(
    *, chunks: Iterable[bytes], signature: str, secret: str, limit: int | None = None
) -> WebhookBody | None:
    """The body made of `chunks` if `signature` is its HMAC under `secret`, else None.

    Reads every chunk (the signature covers the whole body) but keeps at most `limit` bytes:
    a larger body comes back with `raw` None, its hash and size still exact."""
    given = _signature_digest(signature, secret)
    if given is None:
        return None
    limit = WEBHOOK_BODY_LIMIT if limit is None else limit
    mac = hmac.new(secret.encode(), digestmod=hashlib.sha256)
    sha = hashlib.sha256()
    kept: list[bytes] = []
    size = 0
    for chunk in chunks:
        mac.update(chunk)
        sha.update(chunk)
        size += len(chunk)
        if size <= limit:
            kept.append(chunk)
    if not hmac.compare_digest(mac.digest(), given):
        return None
    return WebhookBody(raw=b"".join(kept) if size <= limit else None, sha256=sha.hexdigest(), size=size)


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


class WebhookBusy(RuntimeError):
    """Another request is processing this webhook id and did not finish in time (answered
    409: Shopify retries, and the retry finds the outcome)."""

    def __init__(self, webhook_id: str) -> None:
        super().__init__(f"webhook {webhook_id} is being processed by another delivery")
        self.webhook_id = webhook_id


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


class Claim(Enum):
    MINE = "mine"  # this request processes the delivery
    REPLAY = "replay"  # already processed or ignored: nothing to do
    BUSY = "busy"  # another request holds a live claim on it


@transaction.atomic
def _delivery_claim(*, headers: WebhookHeaders, body: WebhookBody) -> tuple[WebhookDelivery, Claim]:
    """(delivery, claim): the row of this webhook id, and whether this request processes it."""
    with atomic_scope(service_scope()):
        now = timezone.now()
        fields = {
            "topic": headers.topic,
            "shop_domain": headers.shop_domain,
            "api_version": headers.api_version,
            "triggered_at": headers.triggered_at,
            "payload_sha256": body.sha256,
            "payload_bytes": body.size,
        }
        rows = WebhookDelivery.objects.select_for_update()
        delivery = rows.filter(webhook_id=headers.webhook_id).first()
        if delivery is None:
            try:
                # A savepoint: a concurrent first delivery of the same id waits on the unique
                # key until the other's claim commits, then fails here and reads that row.
                with transaction.atomic():
                    return WebhookDelivery.objects.create(
                        webhook_id=headers.webhook_id, claimed_at=now, **fields
                    ), Claim.MINE
            except IntegrityError:
                delivery = rows.get(webhook_id=headers.webhook_id)
        if delivery.status in FINAL_STATUSES:
            return delivery, Claim.REPLAY
        if (
            delivery.status == DeliveryStatus.RECEIVED
            and delivery.claimed_at is not None
            and delivery.claimed_at > now - WEBHOOK_CLAIM_LEASE
        ):
            return delivery, Claim.BUSY
        # A retry of a rejected or failed delivery, or of one whose request died: processed again.
        for name, value in fields.items():
            setattr(delivery, name, value)
        delivery.attempts += 1
        delivery.status = DeliveryStatus.RECEIVED
        delivery.result = ""
        delivery.claimed_at = now
        delivery.processed_at = None
        delivery.save()
        return delivery, Claim.MINE


def _delivery_claim_waiting(*, headers: WebhookHeaders, body: WebhookBody) -> tuple[WebhookDelivery, Claim]:
    """_delivery_claim, waiting while another request holds the claim (REPLAY or MINE, or
    WebhookBusy after WEBHOOK_BUSY_WAIT). Polls with short transactions: a lock held across the
    other request's handler would need a session-level lock, which a transaction pooler breaks."""
    deadline = time.monotonic() + WEBHOOK_BUSY_WAIT
    while True:
        delivery, claim = _delivery_claim(headers=headers, body=body)
        if claim is not Claim.BUSY:
            return delivery, claim
        if time.monotonic() >= deadline:
            raise WebhookBusy(headers.webhook_id)
        time.sleep(WEBHOOK_BUSY_POLL)


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


def _payload(body: WebhookBody, headers: WebhookHeaders) -> dict[str, Any]:
    if body.raw is None:
        raise WebhookInvalid("body", f"The body is larger than {WEBHOOK_BODY_LIMIT} bytes.")
    try:
        payload = json.loads(body.raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WebhookInvalid("body", f"The body is not JSON: {type(exc).__name__}.") from exc
    except RecursionError as exc:
        # Nesting deeper than the interpreter's recursion limit (about 1,000 levels): the
        # parser gives up cleanly, and no Shopify payload comes near it.
        raise WebhookInvalid("body", "The body is nested too deeply.") from exc
    except ValueError as exc:
        # e.g. an integer of more than 4,300 digits (Python's conversion limit).
        raise WebhookInvalid("body", f"The body is not acceptable JSON: {type(exc).__name__}.") from exc
    if not isinstance(payload, dict):
        raise WebhookInvalid("body", "The body must be a JSON object.")
    named = payload.get("shop_domain")
    if named is not None and (not isinstance(named, str) or named.strip().lower() != headers.shop_domain):
        raise WebhookInvalid("body.shop_domain", "shop_domain does not match X-Shopify-Shop-Domain.")
    return payload


def webhook_deliver(*, headers: WebhookHeaders, body: WebhookBody | bytes) -> Outcome:
    """Record and process one signed delivery (see the module docstring for the steps).

    Raises WebhookInvalid (recorded as rejected) for a body that cannot be processed,
    WebhookBusy while another request processes the same webhook id, and re-raises a
    handler's failure (recorded as failed)."""
    if isinstance(body, bytes):
        body = WebhookBody.of(body)
    delivery, claim = _delivery_claim_waiting(headers=headers, body=body)
    if claim is Claim.REPLAY:
        logger.info(
            "webhook %s (%s, %s) replayed: nothing to do", headers.webhook_id, headers.topic, headers.shop_domain
        )
        return Outcome(status=delivery.status, result=delivery.result, delivery_id=delivery.pk, replay=True)
    try:
        payload = _payload(body, headers)
    except WebhookInvalid as exc:
        _delivery_finish(delivery=delivery, status=DeliveryStatus.REJECTED, result=exc.message)
        raise
    except Exception as exc:
        # Whatever else parsing may raise must not leave the delivery `received` (claimed).
        _delivery_finish(delivery=delivery, status=DeliveryStatus.FAILED, result=f"{type(exc).__name__}: {exc}")
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
