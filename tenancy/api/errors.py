"""One JSON shape for every API error.

    {"status": 400, "code": "invalid", "detail": "Invalid input.",
     "errors": [{"field": "variants.0.weight", "code": "invalid", "message": "..."},
                {"index": 3, "field": "clicks", "code": "min_value", "message": "..."}]}

`errors` lists every field problem (flattened to dotted paths; `index` is the row of a bulk
batch); it is empty for errors that concern the whole request.

A lost or refused database connection (config/postgresql/errors.py) is a 503 `database_unavailable`
with `Retry-After`, so that clients and proxies retry: in DRF's handler here for what a view
raises, and in `DatabaseUnavailableMiddleware` (tenancy/api/middleware.py) and the 500 handler
for what fails around the view (the request's transaction, a middleware).
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

from config.postgresql.errors import database_unavailable
from tenancy import errors as domain

from .parsers import RequestTooLarge
from .throttling import failed_authentication_count

logger = logging.getLogger("app.database")

# Seconds a client should wait before it retries after a lost database: a restart or a failover
# takes a few seconds, and a terminated backend is replaced on the next request.
RETRY_AFTER_SECONDS = 5
UNAVAILABLE_DETAIL = "The database is unavailable (connection lost or refused). Retry the request."


def flatten(detail: Any, path: str = "", index: int | None = None) -> list[dict[str, Any]]:
    """DRF's nested error detail as a flat list of {field, code, message} (+ index): the domain
    errors' walk (`tenancy.errors.walk`), each leaf with its code."""
    out: list[dict[str, Any]] = []
    for field, leaf in domain.walk(detail, path):
        entry: dict[str, Any] = {"field": field, "code": getattr(leaf, "code", "invalid"), "message": str(leaf)}
        out.append(entry if index is None else {"index": index, **entry})
    return out


def error_body(*, status_code: int, code: str, detail: str, errors: list[dict[str, Any]]) -> dict[str, Any]:
    return {"status": status_code, "code": code, "detail": detail, "errors": errors}


# The status code of each kind of domain error: decided here, at the API edge, and nowhere else.
DOMAIN_STATUS: dict[type[domain.DomainError], int] = {
    domain.Refused: status.HTTP_400_BAD_REQUEST,
    domain.Forbidden: status.HTTP_403_FORBIDDEN,
    domain.NotFound: status.HTTP_404_NOT_FOUND,
    domain.Conflict: status.HTTP_409_CONFLICT,
    domain.Unavailable: status.HTTP_502_BAD_GATEWAY,
}


def api_exception(exc: domain.DomainError) -> exceptions.APIException:
    """The DRF exception a domain error is answered as (then shaped like every other error)."""
    if isinstance(exc, domain.Refused):
        return exceptions.ValidationError(exc.detail, code=exc.code)
    api = exceptions.APIException(exc.detail, code=exc.code)
    api.status_code = next(
        (code for kind, code in DOMAIN_STATUS.items() if isinstance(exc, kind)), status.HTTP_400_BAD_REQUEST
    )
    return api


def database_lost(exc: BaseException, path: str) -> bool:
    """Whether `exc` is a lost or refused database connection (then logged once, as a warning:
    the client is told to retry, and the server's log says why)."""
    reason = database_unavailable(exc)
    if reason is None:
        return False
    logger.warning("database unavailable (%s): %s answered 503", reason, path)
    return True


def unavailable_body() -> dict[str, Any]:
    return error_body(status_code=503, code="database_unavailable", detail=UNAVAILABLE_DETAIL, errors=[])


def unavailable_response() -> JsonResponse:
    """The 503 outside DRF (tenancy.api.middleware, tenancy.api.views.server_error, the probes in
    config/health.py)."""
    response = JsonResponse(unavailable_body(), status=status.HTTP_503_SERVICE_UNAVAILABLE)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    request = context.get("request")
    if database_lost(exc, request.path if request is not None else ""):
        # What the request did in its transaction is rolled back (lost with the connection
        # anyway); Django closes a connection that saw an error and no longer answers, so the
        # next request gets a new one.
        set_rollback()
        return Response(
            unavailable_body(),
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    if isinstance(exc, domain.DomainError):
        exc = api_exception(exc)
    request = context.get("request")
    if isinstance(exc, exceptions.AuthenticationFailed) and request is not None:
        # Counted per client address; past API_AUTH_FAILURE_RATE a 429 (tenancy/api/throttling.py).
        exc = failed_authentication_count(request) or exc
    if isinstance(exc, RequestDataTooBig):
        # Django's own refusal of a body over DATA_UPLOAD_MAX_MEMORY_SIZE, raised when the view
        # reads it: left to Django it is a 400, an HTML debug page with debug on.
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        exc = RequestTooLarge(f"The request body is larger than {limit} bytes (DATA_UPLOAD_MAX_MEMORY_SIZE).")
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        errors = getattr(exc, "row_errors", None) or flatten(exc.detail)
        body = error_body(status_code=response.status_code, code="invalid", detail="Invalid input.", errors=errors)
    else:
        if isinstance(exc, Http404):
            code, detail = "not_found", "Not found."
        elif isinstance(exc, exceptions.APIException):
            codes = exc.get_codes()
            code = codes if isinstance(codes, str) else "error"
            detail = str(exc.detail) if not isinstance(exc.detail, dict | list) else "Request failed."
        else:
            code, detail = "error", "Request failed."
        body = error_body(status_code=response.status_code, code=code, detail=detail, errors=[])
    response.data = body
    return response


def validation_error(errors: list[dict[str, Any]]) -> exceptions.ValidationError:
    """A 400 whose `errors` are given already flattened (bulk batches name row indexes)."""
    exc = exceptions.ValidationError("Invalid input.")
    exc.row_errors = errors  # type: ignore[attr-defined]
    return exc


__all__ = [
    "database_lost",
    "error_body",
    "exception_handler",
    "flatten",
    "status",
    "unavailable_response",
    "validation_error",
]
