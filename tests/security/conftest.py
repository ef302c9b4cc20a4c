"""The isolation tests' walk over the table catalog (tests/fixtures/tables.py), and scopes.

The shops and their owners (`tenant_a`, `tenant_b`) come from tests/fixtures/tenants.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tenancy.scope import Scope, atomic_scope
from tests.fixtures.tables import TABLES, TableCase


@pytest.fixture(params=TABLES.values(), ids=list(TABLES))
def table_case(request: pytest.FixtureRequest) -> TableCase:
    return request.param


@pytest.fixture
def in_scope() -> Callable[[Scope], Any]:
    """`with in_scope(scope):` — a transaction (savepoint in tests) with the scope entered."""
    return atomic_scope
