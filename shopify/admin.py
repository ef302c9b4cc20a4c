"""Back office: webhook deliveries and shop erasures, read-only; shop exports for staff.

Both record tables are kept without row level security (shopify/models.py), so staff limited
to some shops are limited here, like the directory tables (`tenancy.admin.visible_shops`).
An export is read under the shop's own policies, for a shop the staff member may see, and
needs the `shopify.export_shop_data` permission (superusers have it)."""

from __future__ import annotations

import logging
from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path

from tenancy.admin import visible_shops
from tenancy.models import Shop

from .archive import export_filename, shop_export_chunks
from .models import ShopErasure, WebhookDelivery

logger = logging.getLogger(__name__)

EXPORT_PERMISSION = "shopify.export_shop_data"


class ReadOnlyRecordAdmin(admin.ModelAdmin):
    """Records of what happened: nobody adds, changes or deletes them here."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return visible_shops(super().get_queryset(request), "shop_domain")


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyRecordAdmin):
    list_display = (
        "received_at",
        "topic",
        "shop_domain",
        "status",
        "attempts",
        "claimed_at",
        "processed_at",
        "webhook_id",
    )
    list_filter = ("status", "topic")
    search_fields = ("shop_domain", "webhook_id", "topic")
    date_hierarchy = "received_at"
    ordering = ("-received_at", "-id")


@admin.register(ShopErasure)
class ShopErasureAdmin(ReadOnlyRecordAdmin):
    list_display = ("started_at", "shop_domain", "status", "reason", "finished_at", "total_rows")
    list_filter = ("status", "reason")
    search_fields = ("shop_domain",)
    date_hierarchy = "started_at"
    ordering = ("-started_at", "-id")

    @admin.display(description="rows deleted")
    def total_rows(self, obj: ShopErasure) -> int:
        return sum(int(n) for n in (obj.rows_deleted or {}).values())

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        extra = {**(extra_context or {}), "can_export_shops": request.user.has_perm(EXPORT_PERMISSION)}
        return super().changelist_view(request, extra_context=extra)

    def get_urls(self) -> list[URLPattern]:
        return [
            path("export/", self.admin_site.admin_view(self.export_list_view), name="shopify_shop_export"),
            path(
                "export/<str:domain>/",
                self.admin_site.admin_view(self.export_download_view),
                name="shopify_shop_export_download",
            ),
            *super().get_urls(),
        ]

    def _exportable_shops(self, request: HttpRequest) -> QuerySet[Shop]:
        if not request.user.has_perm(EXPORT_PERMISSION):
            raise PermissionDenied
        return visible_shops(Shop.objects.order_by("domain"))

    def export_list_view(self, request: HttpRequest) -> HttpResponse:
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Export a shop",
            "shops": self._exportable_shops(request),
        }
        return TemplateResponse(request, "admin/shopify/shop_export.html", context)

    def export_download_view(self, request: HttpRequest, domain: str) -> StreamingHttpResponse:
        if not self._exportable_shops(request).filter(domain=domain).exists():
            # The same answer whether the shop does not exist or is not the staff member's.
            raise Http404("No such shop.")
        logger.info("staff %s exported shop %s", request.user.pk, domain)
        response = StreamingHttpResponse(shop_export_chunks(shop_domain=domain), content_type="application/zip")
        response["Content-Disposition"] = f'attachment; filename="{export_filename(domain)}"'
        return response
