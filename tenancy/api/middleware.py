"""Django's CommonMiddleware, without the trailing-slash redirect for API writes."""

from __future__ import annotations

from django.http import HttpRequest
from django.middleware.common import CommonMiddleware

from .views import API_PREFIX


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
