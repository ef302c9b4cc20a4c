"""Fixtures shared by the whole test suite."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tenancy.scope import atomic_scope, service_scope


@pytest.fixture(autouse=True)
def fast_password_hashing(settings: Any) -> None:
    # PBKDF2 is slow on purpose (~0.3 s a hash) and factories create many accounts.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def process_local_cache(settings: Any) -> None:
    # The configured cache is the database's, through its own connection alias (throttling
    # counts must survive the request's rollback); a test transaction may use `default` only.
    # tests/api/test_throttling.py checks the shared cache itself, across processes.
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}


@pytest.fixture
def service(db: None) -> Iterator[None]:
    """Run the test body as service_role (cross-shop), the role test data is written with."""
    with atomic_scope(service_scope()):
        yield
