"""The Shopify webhook endpoint and the owner's export download."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, HttpResponseBase, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.views import APIView

from tenancy.api.errors import error_body
from tenancy.api.scoping import SHOP_HEADER, tenant_context
from tenancy.models import MembershipRole

from ..archive import export_filename, shop_export_chunks
from ..webhooks import WebhookBusy, WebhookInvalid, webhook_body_read, webhook_deliver, webhook_headers

logger = logging.getLogger(__name__)

HMAC_HEADER = "X-Shopify-Hmac-Sha256"
BODY_CHUNK = 64 * 1024
EXPORT_SHOP_PARAMETER = OpenApiParameter(
    name=SHOP_HEADER,
    type=OpenApiTypes.STR,
    location=OpenApiParameter.HEADER,
    required=False,
    description="The shop to export (required with a project token; a Shopify session token names its shop).",
)


def _error(status: int, code: str, detail: str, field: str | None = None) -> JsonResponse:
    errors = [{"field": field, "code": code, "message": detail}] if field else []
    return JsonResponse(error_body(status_code=status, code=code, detail=detail, errors=errors), status=status)


@csrf_exempt
@require_POST
@transaction.non_atomic_requests
def shopify_webhook(request: HttpRequest) -> JsonResponse:
    """POST /webhooks/shopify/: one endpoint for every topic (X-Shopify-Topic).

    The HMAC of the raw body is checked before anything else is read; a delivery without a
    valid one changes nothing and is not recorded (anyone can post here). The body is read
    from the stream in chunks rather than through `request.body`, so that a body over the
    webhook limit (2 MiB) is checked and, when signed, recorded as rejected without being
    held in memory. Over DATA_UPLOAD_MAX_MEMORY_SIZE (32 MiB) it is refused unread, like any
    request: checking its signature would mean reading all of it, and anyone can send one."""
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    ceiling = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    if ceiling is not None and length > ceiling:
        logger.warning("webhook refused unread: %d bytes", length)
        return _error(400, "too_large", f"The body is larger than {ceiling} bytes.", "body")
    body = webhook_body_read(
        chunks=iter(lambda: request.read(BODY_CHUNK), b""),
        signature=request.headers.get(HMAC_HEADER, ""),
        secret=settings.SHOPIFY_API_SECRET,
    )
    if body is None:
        logger.warning("webhook refused: missing or invalid %s", HMAC_HEADER)
        return _error(401, "invalid_hmac", f"Missing or invalid {HMAC_HEADER}.")
    try:
        headers = webhook_headers(request.headers)
    except WebhookInvalid as exc:
        return _error(400, "invalid", exc.message, exc.field)
    try:
        outcome = webhook_deliver(headers=headers, body=body)
    except WebhookInvalid as exc:
        return _error(400, "invalid", exc.message, exc.field)
    except WebhookBusy:
        # Another request is processing this webhook id (a duplicate, or Shopify's retry of a
        # delivery it timed out): not processed twice; Shopify retries and gets the outcome.
        response = _error(409, "in_progress", "This webhook is being processed by another delivery; retry later.")
        response["Retry-After"] = "5"
        return response
    except Exception:
        # Recorded as failed (with the error's class and message) by webhook_deliver; 503 so
        # that Shopify retries the delivery.
        logger.exception("webhook %s (%s, %s) failed", headers.webhook_id, headers.topic, headers.shop_domain)
        return _error(503, "processing_failed", "The webhook could not be processed; it will be retried.")
    return JsonResponse(
        {"status": outcome.status, "replay": outcome.replay, "delivery": outcome.delivery_id, "result": outcome.result}
    )


class ShopExportView(APIView):
    """GET /api/v1/shop-export/: the shop's archive, for its owners only (streamed)."""

    # Not a list: no filters, ordering or pagination (and no serializer for the schema to guess).
    filter_backends: list[Any] = []
    pagination_class = None

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        # Authentication and the membership check run in a transaction of their own (DRF marks
        # the enclosing one for rollback on an error); the archive is read after it, while the
        # response streams, in the transaction shop_export_chunks opens.
        with transaction.atomic():
            return super().dispatch(request, *args, **kwargs)

    @extend_schema(
        operation_id="shop_export",
        request=None,
        parameters=[EXPORT_SHOP_PARAMETER],
        responses={(200, "application/zip"): OpenApiTypes.BINARY},
        description=(
            "A zip of one NDJSON file per table of the shop's data and a manifest (row counts, schema "
            "version, checksum), read under the shop's own row level security policies. Owners only. "
            "Send X-Shop-Domain with a project token; a Shopify session token names its shop itself."
        ),
    )
    def get(self, request: Request) -> StreamingHttpResponse:
        tenant = tenant_context(request, required=True)
        if tenant.member_role != MembershipRole.OWNER:
            raise exceptions.PermissionDenied("Only the shop's owners may export its data.")
        shop = tenant.required_shop
        logger.info("shop export of %s by %s", shop, request.user.pk)
        response = StreamingHttpResponse(shop_export_chunks(shop_domain=shop), content_type="application/zip")
        response["Content-Disposition"] = f'attachment; filename="{export_filename(shop)}"'
        return response


shop_export = transaction.non_atomic_requests(ShopExportView.as_view())
