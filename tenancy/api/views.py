"""The caller's own account, and the error pages of requests that never reach a DRF view."""

from __future__ import annotations

import sys

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.urls import is_valid_path
from django.views import defaults
from rest_framework.generics import RetrieveAPIView

from tenancy.models import User

from .errors import RETRY_AFTER_SECONDS, database_lost, error_body, unavailable_response
from .serializers import MeSerializer


class MeView(RetrieveAPIView[User]):
    """The signed-in user and the shops they may act for, with their role in each."""

    serializer_class = MeSerializer

    def get_object(self) -> User:
        # Memberships and shops are directory tables (no RLS); the user reads only their own.
        return User.objects.prefetch_related("memberships__shop").get(pk=str(self.request.user.pk))


# Django's error pages for requests that never reach a DRF view (an unknown path, an exception
# outside DRF's handler, a refused Host): under /api/ they answer the API's one JSON error shape
# (tenancy/api/errors.py); everywhere else (the admin) Django's own HTML pages.
API_PREFIX = "/api/"


def _api_error(status: int, code: str, detail: str) -> JsonResponse:
    return JsonResponse(error_body(status_code=status, code=code, detail=detail, errors=[]), status=status)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponseBase:
    if request.path.startswith(API_PREFIX):
        if isinstance(exception, RequestDataTooBig):
            limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
            return _api_error(
                413, "too_large", f"The request body is larger than {limit} bytes (DATA_UPLOAD_MAX_MEMORY_SIZE)."
            )
        return _api_error(400, "bad_request", "Bad request.")
    return defaults.bad_request(request, exception)


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponseBase:
    if request.path.startswith(API_PREFIX):
        return _api_error(403, "permission_denied", "You do not have permission to perform this action.")
    return defaults.permission_denied(request, exception)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponseBase:
    if request.path.startswith(API_PREFIX):
        detail = "Not found: no API route matches this path."
        if not request.path_info.endswith("/") and is_valid_path(f"{request.path_info}/"):
            detail += f" Did you mean {request.path}/ (with the trailing slash)?"
        return _api_error(404, "not_found", detail)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponseBase:
    # Django calls this while it handles the exception (with debug off): a lost database raised
    # by a middleware (outside the view, which DatabaseUnavailableMiddleware covers) is a 503.
    exception = sys.exc_info()[1]
    if exception is not None and database_lost(exception, request.path):
        return unavailable_page(request)
    if request.path.startswith(API_PREFIX):
        return _api_error(500, "server_error", "Server error. It has been logged.")
    return defaults.server_error(request)


def unavailable_page(request: HttpRequest) -> HttpResponseBase:
    """503 with Retry-After for a lost database: the API's JSON error under /api/, a line of text
    elsewhere (the admin)."""
    if request.path.startswith(API_PREFIX):
        return unavailable_response()
    response = HttpResponse(
        "Service unavailable: the database connection was lost or refused. Retry in a few seconds.\n",
        status=503,
        content_type="text/plain; charset=utf-8",
    )
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response
