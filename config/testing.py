"""The test suite's entry point (a pytest plugin, `-p config.testing` in pyproject.toml).

pytest-django reads the settings while pytest loads its first conftest files; this hook runs
before it and starts (or joins) the embedded PostgreSQL when DATABASE_URL is not set, as
manage.py and the WSGI module do for their processes. Importing the settings starts nothing.
"""

from __future__ import annotations

from typing import Any

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: Any, parser: Any, args: list[str]) -> None:
    from config.embedded import prepare

    prepare()
