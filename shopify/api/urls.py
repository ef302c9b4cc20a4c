"""Routes of the Shopify lifecycle: the webhook endpoint and the export download."""

from __future__ import annotations

from django.urls import path

from .views import shop_export, shopify_webhook

urlpatterns = [
    path("webhooks/shopify/", shopify_webhook, name="shopify-webhook"),
    path("api/v1/shop-export/", shop_export, name="shop-export"),
]
