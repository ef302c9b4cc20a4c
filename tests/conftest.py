"""Fixtures shared by the whole test suite."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tenancy.scope import atomic_scope, service_scope

# Fixtures for every folder, by name: the shops A and B with their owners and API actors, and the
# local OpenAI embeddings endpoint. Test modules import only their constants, types and helpers.
pytest_plugins = ["tests.fixtures.tenants", "tests.fixtures.embeddings"]


@pytest.fixture(autouse=True)
def fast_password_hashing(settings: Any) -> None:
    # PBKDF2 is slow on purpose (~0.3 s a hash) and factories create many accounts.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def process_local_rate_counts(settings: Any) -> Iterator[None]:
    # The configured rate-limit counters are the database's, through their own connection alias
    # (counts must survive the request's rollback); a test transaction may use `default` only.
    # tests/api/test_auth_and_contract.py checks the shared counters themselves, across processes.
    from tenancy.ratelimit import memory_counters

    settings.API_THROTTLE_STORE = "memory"
    yield
    memory_counters.clear()


@pytest.fixture
def service(db: None) -> Iterator[None]:
    """Run the test body as service_role (cross-shop), the role test data is written with."""
    with atomic_scope(service_scope()):
        yield
