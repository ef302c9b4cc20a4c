"""DRF throttles counted in PostgreSQL, shared by every worker process (tenancy/ratelimit.py).

DRF's own throttles count in Django's cache: with the default (local memory) cache each
gunicorn worker counts alone, so 3 workers allowed three times the rate (an outside run: 2,881
answers in 7.9 s against 1200/minute); with the database cache each request cost six round
trips (tenancy/ratelimit.py). These keep DRF's keys, rates, settings and 429 answer, and count
with one statement.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any

from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import AnonRateThrottle, SimpleRateThrottle, UserRateThrottle

from tenancy.ratelimit import rate_hit, rate_peek


def live_rate(scope: str | None) -> str | None:
    """The rate of `scope` in the current settings (DRF reads them once, at import, so a
    changed setting, as in tests, would otherwise never apply)."""
    rate = api_settings.DEFAULT_THROTTLE_RATES.get(scope or "")
    return None if rate is None else str(rate)


class CountedRateThrottle(SimpleRateThrottle):
    """A DRF rate throttle whose counts live in tenancy.ratelimit, not in Django's cache."""

    _retry_after: float | None = None
    num_requests: int | None  # set by SimpleRateThrottle.__init__ from the rate
    duration: int | None

    def get_rate(self) -> str | None:
        return live_rate(self.scope)

    def allow_request(self, request: Request, view: Any) -> bool:
        if self.rate is None or self.num_requests is None or self.duration is None:
            return True
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        hit = rate_hit(key=key, limit=self.num_requests, duration=self.duration)
        self._retry_after = hit.retry_after
        return hit.allowed

    def wait(self) -> float | None:
        # DRF turns this into Retry-After (rounded up) and "Expected available in N seconds."
        return self._retry_after


class UserThrottle(CountedRateThrottle, UserRateThrottle):
    """API_THROTTLE_RATE per signed-in user, across every worker."""


class AnonThrottle(CountedRateThrottle, AnonRateThrottle):
    """API_ANON_THROTTLE_RATE per client address for requests without a user, across every worker."""


# --- Failed authentication, per client address ---------------------------------------------
#
# A request whose credentials are refused (AuthenticationFailed: a bad, expired or foreign token,
# a token of no active user) never reached the throttles above: DRF authenticates first, and the
# user throttle needs a user. Failures are counted per client address (the anonymous throttle's
# address: the connecting one, or the one API_NUM_PROXIES proxies saw) at API_AUTH_FAILURE_RATE
# (scope `auth_failure`), in the same shared counters. Past the rate, the address is refused with
# 429 and Retry-After *before* its credentials are checked, valid ones included, until the window
# lets one more failure in: a client guessing tokens learns nothing from the answers, and a
# misbehaving one stops costing user lookups.
#
# The success path pays nothing: the check before authentication (one read of the counters) runs
# only for addresses this process has seen fail within the last window (`_suspects`); counting a
# failure is one statement. An address's first requests to a process that never saw it fail are
# not checked, so at most one request a worker slips past the lock per window.


class FailedAuthenticationThrottle(CountedRateThrottle, AnonRateThrottle):
    scope = "auth_failure"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


_SUSPECTS_MAX = 10_000
_suspects: OrderedDict[str, float] = OrderedDict()
_suspects_lock = threading.Lock()


def _suspect(ident: str, until: float) -> None:
    with _suspects_lock:
        _suspects[ident] = until
        _suspects.move_to_end(ident)
        while len(_suspects) > _SUSPECTS_MAX:
            _suspects.popitem(last=False)


def _is_suspect(ident: str) -> bool:
    with _suspects_lock:
        until = _suspects.get(ident)
        if until is not None and until < time.monotonic():
            del _suspects[ident]
            until = None
    return until is not None


def _throttled(wait: float | None) -> exceptions.Throttled:
    return exceptions.Throttled(wait=wait, detail="Too many failed authentications from this address. Try again later.")


def failed_authentication_gate(request: Request) -> None:
    """429 before authentication for an address over its failed-authentication rate (once a
    request: the tenant views call it before any authentication class runs, so that it holds for
    Shopify session tokens too; JWTAuthentication calls it for every other view)."""
    django_request: Any = getattr(request, "_request", request)
    if getattr(django_request, "_failed_authentication_gated", False):
        return
    django_request._failed_authentication_gated = True
    throttle = FailedAuthenticationThrottle()
    if throttle.num_requests is None or throttle.duration is None:
        return
    ident = throttle.get_ident(request)
    if not _is_suspect(ident):
        return
    key = throttle.get_cache_key(request, None)
    hit = rate_peek(key=str(key), limit=throttle.num_requests, duration=throttle.duration)
    if not hit.allowed:
        raise _throttled(hit.retry_after)


def failed_authentication_count(request: Request) -> exceptions.Throttled | None:
    """Count one failed authentication of the request's address; the 429 to answer instead of
    the 401 when the address is past its rate."""
    throttle = FailedAuthenticationThrottle()
    if throttle.num_requests is None or throttle.duration is None:
        return None
    ident = throttle.get_ident(request)
    _suspect(ident, time.monotonic() + 2 * throttle.duration)
    hit = rate_hit(
        key=str(throttle.get_cache_key(request, None)), limit=throttle.num_requests, duration=throttle.duration
    )
    return None if hit.allowed else _throttled(hit.retry_after)


def failed_authentication_suspects_clear() -> None:
    """Forget the addresses seen failing (tests)."""
    with _suspects_lock:
        _suspects.clear()
