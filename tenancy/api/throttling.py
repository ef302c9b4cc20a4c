"""DRF throttles counted in PostgreSQL, shared by every worker process (tenancy/ratelimit.py).

DRF's own throttles count in Django's cache: with the default (local memory) cache each
gunicorn worker counts alone, so 3 workers allowed three times the rate (an outside run: 2,881
answers in 7.9 s against 1200/minute); with the database cache each request cost six round
trips (tenancy/ratelimit.py). These keep DRF's keys, rates, settings and 429 answer, and count
with one statement.
"""

from __future__ import annotations

from typing import Any

from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import AnonRateThrottle, SimpleRateThrottle, UserRateThrottle

from tenancy.ratelimit import rate_hit


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
