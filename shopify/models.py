"""Records of the Shopify lifecycle: webhook deliveries and shop erasures.

These are not a shop's data. They are written before any tenant scope exists (a webhook has
no user), they must outlive the shop's data (they are the proof that an erasure happened),
and the tenant API never reaches them: `authenticated` has no privilege on these tables
(privileges are granted to it table by table by the row level security migrations). Staff
limited to some shops are limited to those shops' records in the admin, like the directory
tables `shops` and `shop_memberships` (tests/security/test_policies.py).

Neither table stores a webhook's payload: `customers/redact` and `customers/data_request`
carry a customer's e-mail and phone, which this service must not start keeping. A delivery
keeps the payload's SHA-256 and size, enough to match it with Shopify's delivery log.
"""

from __future__ import annotations

from django.db import models
from django.db.models.functions import Now

from tenancy.models import SHOP_DOMAIN_REGEX, shop_domain_validator


class DeliveryStatus(models.TextChoices):
    RECEIVED = "received", "Received (being processed)"
    PROCESSED = "processed", "Processed"
    IGNORED = "ignored", "Ignored (topic not handled)"
    REJECTED = "rejected", "Rejected (malformed body)"
    FAILED = "failed", "Failed (Shopify retries)"


# A delivery in one of these states is done: a replay of its webhook id answers 200 and does
# nothing. A rejected or failed one is processed again when Shopify retries it.
FINAL_STATUSES = frozenset({DeliveryStatus.PROCESSED, DeliveryStatus.IGNORED})


class WebhookDelivery(models.Model):
    """One webhook Shopify delivered with a valid HMAC (bad signatures are never recorded)."""

    webhook_id = models.CharField(max_length=255, unique=True, help_text="X-Shopify-Webhook-Id")
    topic = models.CharField(max_length=100, help_text="X-Shopify-Topic")
    shop_domain = models.CharField(max_length=253, validators=[shop_domain_validator], db_index=True)
    api_version = models.CharField(max_length=20, blank=True, default="")
    triggered_at = models.DateTimeField(null=True, blank=True, help_text="X-Shopify-Triggered-At")
    payload_sha256 = models.CharField(max_length=64)
    payload_bytes = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.RECEIVED)
    result = models.TextField(blank=True, default="")
    attempts = models.PositiveIntegerField(default=1)
    received_at = models.DateTimeField(db_default=Now(), editable=False)
    # When the request processing the delivery claimed it: a `received` delivery claimed less
    # than shopify.webhooks.WEBHOOK_CLAIM_LEASE ago is being processed, and a duplicate waits
    # for it instead of running the handler again.
    claimed_at = models.DateTimeField(null=True, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "shopify_webhook_deliveries"
        ordering = ["-received_at", "-id"]
        verbose_name = "webhook delivery"
        verbose_name_plural = "webhook deliveries"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(shop_domain__regex=SHOP_DOMAIN_REGEX),
                name="shopify_webhook_deliveries_domain_is_hostname",
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=DeliveryStatus.values),
                name="shopify_webhook_deliveries_status_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.topic} {self.shop_domain} ({self.webhook_id})"


class ErasureStatus(models.TextChoices):
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed (run again to finish)"


class ShopErasure(models.Model):
    """One run of a shop's erasure. The erasure itself is all or nothing (one transaction);
    this record is committed before it starts and updated after, so a crash half-way leaves a
    `running` or `failed` record, and running the erasure again finishes the job."""

    shop_domain = models.CharField(max_length=253, validators=[shop_domain_validator], db_index=True)
    status = models.CharField(max_length=16, choices=ErasureStatus.choices, default=ErasureStatus.RUNNING)
    reason = models.CharField(max_length=100, help_text="shop/redact, or the command that asked for it")
    delivery = models.ForeignKey(
        WebhookDelivery, null=True, blank=True, on_delete=models.SET_NULL, related_name="erasures"
    )
    requested_by = models.TextField(null=True, blank=True, help_text="Subject id of the person, if any.")
    rows_deleted = models.JSONField(default=dict, blank=True, help_text="Rows deleted per table.")
    error = models.TextField(blank=True, default="")
    started_at = models.DateTimeField(db_default=Now(), editable=False)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "shopify_shop_erasures"
        ordering = ["-started_at", "-id"]
        verbose_name = "shop erasure"
        verbose_name_plural = "shop erasures"
        # Staff who may download a shop's archive (admin: Shop erasures > Export a shop).
        permissions = [("export_shop_data", "Can download the export of a shop's data")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(shop_domain__regex=SHOP_DOMAIN_REGEX),
                name="shopify_shop_erasures_domain_is_hostname",
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=ErasureStatus.values),
                name="shopify_shop_erasures_status_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"erasure of {self.shop_domain} ({self.status})"


# Tables that name a shop but outlive its erasure: the records above (the erasure keeps only
# the shop's shop/redact deliveries, shopify/erasure.py).
RECORD_TABLES = frozenset({WebhookDelivery._meta.db_table, ShopErasure._meta.db_table})
