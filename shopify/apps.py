from __future__ import annotations

from django.apps import AppConfig


class ShopifyConfig(AppConfig):
    """The Shopify tenant lifecycle: session tokens, webhooks, shop export, import and erasure."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "shopify"
    verbose_name = "Shopify lifecycle"
