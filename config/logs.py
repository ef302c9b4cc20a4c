"""Logs an operator can use: one line per request, and the request's id, shop and user on every line.

`RequestLogMiddleware` takes the request id from `X-Request-ID` when it is a sane token (1-64
characters of letters, digits and `._:-`; anything else could forge or break log lines) or
makes one, returns it in the response's `X-Request-ID`, and writes one access line per
request (method, path without the query string, status, duration). `RequestContextFilter`
adds `request_id`, `shop` and `user` to every record: lines written inside a tenant scope take
the scope's shop and subject, so a service's log line names its shop without being told.
`RedactingJsonFormatter` writes one JSON object a line and removes bearer tokens, JWTs and
`password=`/`secret=`-style values from whatever a line says, whoever logged it.
"""

from __future__ import annotations

import contextvars
import logging
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponseBase
from pythonjsonlogger.json import JsonFormatter

from tenancy.scope import active_scope

logger = logging.getLogger("app.request")

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


class _Context:
    __slots__ = ("request_id", "shop", "user")

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.shop: str | None = None
        self.user: str | None = None


_context: contextvars.ContextVar[_Context | None] = contextvars.ContextVar("request_log_context", default=None)


def request_id_from(value: str | None) -> str:
    """The client's request id if it is safe to log and echo, else a new one."""
    if value and _REQUEST_ID.fullmatch(value):
        return value
    return uuid.uuid4().hex


class RequestContextFilter(logging.Filter):
    """Adds request_id, shop and user to every record (None outside a request or scope)."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = _context.get()
        scope = active_scope()
        shop = scope.shop if scope is not None else None
        user = scope.subject if scope is not None else None
        if context is not None:
            # Remember the scope's shop and user for the request's access line, written after
            # the scope has ended.
            context.shop = shop or context.shop
            context.user = user or context.user
            shop, user = context.shop, context.user
        record.request_id = context.request_id if context else None
        record.shop = shop
        record.user = user
        # Django's request loggers attach the request object; its repr carries the query string.
        if hasattr(record, "request"):
            record.request = None
        return True


# Secrets a line may quote, whoever wrote it: a bearer token, anything shaped like a JWT, and
# `password=...`, `"secret": "..."`-style values.
_SECRETS = (
    (re.compile(r"(?i)\bbearer\s+[^\s\"',;]+"), "Bearer [redacted]"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"), "[redacted-jwt]"),
    (
        re.compile(
            r"(?i)((?:password|passwd|secret|token|api[_-]?key|authorization)[\"']?\s*[:=]\s*[\"']?)"
            r"(?!\[redacted|bearer\s)[^\s\"',;&]+"
        ),
        r"\1[redacted]",
    ),
)


def redact(text: str) -> str:
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


class RedactingJsonFormatter(JsonFormatter):
    """python-json-logger's formatter, with secrets removed from the finished line."""

    def jsonify_log_record(self, log_data: Any) -> str:
        log_data.pop("request", None)
        return redact(super().jsonify_log_record(log_data))


class RequestLogMiddleware:
    """Request id in and out, the request's context for every log line, one access line."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        started = time.monotonic()
        context = _Context(request_id_from(request.headers.get(REQUEST_ID_HEADER)))
        token = _context.set(context)
        try:
            response = self.get_response(request)
            response[REQUEST_ID_HEADER] = context.request_id
            self._remember_caller(request, response, context)
            level = logging.ERROR if response.status_code >= 500 else logging.INFO
            logger.log(
                level,
                "%s %s %s",
                request.method,
                request.path,
                response.status_code,
                extra={
                    "method": request.method,
                    "path": request.path,
                    "status": response.status_code,
                    "duration_ms": round((time.monotonic() - started) * 1000, 1),
                },
            )
            return response
        finally:
            _context.reset(token)

    @staticmethod
    def _remember_caller(request: HttpRequest, response: HttpResponseBase, context: _Context) -> None:
        # The API's scope has ended by now; DRF keeps its view (with the tenant context the
        # scope was built from) on the response, and sets the Django request's user.
        renderer_context = getattr(response, "renderer_context", None) or {}
        tenant = getattr(renderer_context.get("view"), "tenant", None)
        shop = getattr(tenant, "shop", None)
        if context.shop is None and shop:
            context.shop = str(shop)
        user = getattr(request, "user", None)
        if context.user is None and user is not None and user.is_authenticated:
            context.user = str(user.pk)
