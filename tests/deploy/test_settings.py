"""`manage.py check --deploy` is clean with the production environment the README documents."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.servers import REPO, production_env

README = REPO / "README.md"


def documented_environment() -> dict[str, str]:
    """The `export NAME=value` lines of the README's production environment block."""
    text = README.read_text()
    block = re.search(r"```sh\n# The production environment[^\n]*\n(.*?)```", text, re.S)
    assert block, "README.md has no production environment block"
    values = dict(re.findall(r"^export ([A-Z_]+)=(\S*)$", block[1], re.M))
    assert values, block[1]
    return {name: value.strip("'\"") for name, value in values.items()}


def check_deploy(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_documented_production_environment_passes_check_deploy() -> None:
    documented = documented_environment()
    # The README's placeholders stand for the operator's secrets; a check needs real-looking ones.
    env = production_env(**documented)
    env["DJANGO_SECRET_KEY"] = "k" * 20 + "production-secret-key-with-enough-entropy-0123456789"
    env["JWT_SECRET"] = "jwt-secret-0123456789-0123456789-0123456789"
    env["DATABASE_URL"] = "postgresql://app_owner:secret@127.0.0.1:1/growth"
    result = check_deploy(env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
    for name in (
        "DJANGO_SECURE_HSTS_SECONDS",
        "DJANGO_SECURE_PROXY_SSL_HEADER",
        "DJANGO_ALLOWED_HOSTS",
        "DJANGO_CSRF_TRUSTED_ORIGINS",
    ):
        assert name in documented


def test_without_hsts_check_deploy_warns() -> None:
    env = production_env(
        DJANGO_SECRET_KEY="k" * 20 + "production-secret-key-with-enough-entropy-0123456789",
        JWT_SECRET="jwt-secret-0123456789-0123456789-0123456789",
        DATABASE_URL="postgresql://app_owner:secret@127.0.0.1:1/growth",
    )
    result = check_deploy(env)
    assert result.returncode == 1
    assert "security.W004" in result.stderr + result.stdout


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("DJANGO_SECURE_PROXY_SSL_HEADER", "HTTP_X_FORWARDED_PROTO", "must be 'HEADER,value'"),
        ("DJANGO_SECURE_HSTS_SECONDS", "a year", "must be an integer"),
        ("LOG_FORMAT", "xml", "LOG_FORMAT must be json or text"),
        ("JOBS_KNOWLEDGE_REFIT_GROWTH", "0.5", "must be above 1"),
    ],
)
def test_a_malformed_security_setting_stops_the_process(name: str, value: str, message: str) -> None:
    env = production_env(
        DJANGO_SECRET_KEY="k" * 60,
        JWT_SECRET="j" * 40,
        DATABASE_URL="postgresql://app_owner:secret@127.0.0.1:1/growth",
        **{name: value},
    )
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert message in result.stderr


def test_importing_the_settings_starts_no_database(tmp_path: Path) -> None:
    # Settings read the environment and nothing else: the entry points start the embedded server
    # (config.embedded.prepare). mypy's Django plugin and any script that reads a setting import
    # this module.
    data_dir = tmp_path / "pgdata"
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE")}
    env["EMBEDDED_DATABASE_DIR"] = str(data_dir)
    script = (
        "import config.settings as s; "
        "print(s.USE_EMBEDDED_DATABASE, s.DATABASES['default']['HOST'], "
        "s.MIDDLEWARE.count('config.logs.RequestLogMiddleware'))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "embedded-database-not-started", "1"]
    assert not data_dir.exists()
