"""Django's CommonMiddleware without the trailing-slash redirect for API writes, and the 503 of a
lost database around a view."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponseBase
from django.middleware.common import CommonMiddleware

from .errors import database_lost
from .views import API_PREFIX, unavailable_page


class APICommonMiddleware(CommonMiddleware):
    """APPEND_SLASH answers `POST /api/v1/ad-campaigns` (no slash) with a 301 to the slashed
    URL; clients follow a 301 with a GET, so the write was silently lost and the caller got a
    200 list (seen in an outside run with DEBUG off; with DEBUG on Django raises instead). Under
    /api/ only GET and HEAD are redirected; any other method gets the JSON 404, which names the
    route with the slash (tenancy.api.views.page_not_found)."""

    def should_redirect_with_slash(self, request: HttpRequest) -> bool:
        if request.path_info.startswith(API_PREFIX) and request.method not in ("GET", "HEAD"):
            return False
        return super().should_redirect_with_slash(request)


class DatabaseUnavailableMiddleware:
    """A lost or refused database connection raised by a view or by the request's transaction
    around it (ATOMIC_REQUESTS' atomic block connects before the view runs; the API views commit
    after DRF's handler) is a 503 with `Retry-After`, so that clients and proxies retry: the API's
    JSON error under /api/, a line of text elsewhere (the admin). DRF's handler answers what a
    view raises inside DRF (tenancy.api.errors.exception_handler); the 500 handler what a
    middleware raises (tenancy.api.views.server_error). Any other error is left to them."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponseBase | None:
        if not database_lost(exception, request.path):
            return None
        return unavailable_page(request)
