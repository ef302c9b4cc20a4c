"""Rate limits that every worker process shares, counted outside the request's transaction.

DRF counts requests in Django's cache. The default cache (local memory) is per process, so 3
gunicorn workers allowed three times the rate (an outside run: 2,881 answers in 7.9 s against
1200/minute). The cache is PostgreSQL's (Django's database cache, table `api_cache`, created by
the tenancy migration `api_cache_table`): no new server.

It is read and written through its own connection alias (`cache`, the same database in
autocommit), routed by `CacheRouter`. On the request's own connection the counts would live in
the request's transaction: rolled back with every refused request (DRF rolls back on errors,
so failures would never be counted), and the row lock on a user's counter held until the
request ends, serialising that user's concurrent requests.
"""

from __future__ import annotations

from typing import Any

from django.db import models
from rest_framework.settings import api_settings
from rest_framework.throttling import AnonRateThrottle, UserRateThrottle

CACHE_ALIAS = "cache"
CACHE_TABLE = "api_cache"


class CacheRouter:
    """Django's cache table (app label `django_cache`) goes through the `cache` alias."""

    def _route(self, model: type[models.Model]) -> str | None:
        return CACHE_ALIAS if model._meta.app_label == "django_cache" else None

    def db_for_read(self, model: type[models.Model], **hints: Any) -> str | None:
        return self._route(model)

    def db_for_write(self, model: type[models.Model], **hints: Any) -> str | None:
        return self._route(model)

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool | None:
        # The alias is the same database as `default`: migrations run there only.
        return False if db == CACHE_ALIAS else None


def live_rate(scope: str | None) -> str | None:
    """The rate of `scope` in the current settings (DRF reads them once, at import, so a
    changed setting, as in tests, would otherwise never apply)."""
    rate = api_settings.DEFAULT_THROTTLE_RATES.get(scope or "")
    return None if rate is None else str(rate)


class UserThrottle(UserRateThrottle):
    """API_THROTTLE_RATE per signed-in user, across every worker."""

    def get_rate(self) -> str | None:
        return live_rate(self.scope)


class AnonThrottle(AnonRateThrottle):
    """API_ANON_THROTTLE_RATE per client address for requests without a user, across every worker."""

    def get_rate(self) -> str | None:
        return live_rate(self.scope)
