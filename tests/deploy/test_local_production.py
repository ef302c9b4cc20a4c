"""The production server tried on this machine: the README's one-liner, run as written, answers.

And with debug off and neither DATABASE_URL nor DJANGO_EMBEDDED_DATABASE=1, every command stops
with one line that names both, instead of a traceback that named neither.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from bench.servers import REPO

from .client import fetch, free_port

README = REPO / "README.md"
DATABASE = "test_local_production"


def _environment(**overrides: str) -> dict[str, str]:
    """This machine's environment without the test session's database and Django settings: what a
    person's shell has."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "EMBEDDED_DATABASE_SUPERUSER_URL", "DJANGO_SETTINGS_MODULE"}
        and not key.startswith(("PYTEST_", "DJANGO_"))
    }
    env.update(overrides)
    return env


def one_liner() -> str:
    text = README.read_text()
    found = re.search(r"To try the production server on this machine.*?```sh\n(.*?)\n```", text, re.S)
    assert found, "README.md has no local production one-liner"
    line = found[1].strip()
    assert "\n" not in line and line.endswith("make serve"), line
    return line


@pytest.mark.parametrize("command", [["check"], ["migrate"], ["import_metrics", "ad_performance", "x.csv"]])
def test_without_a_database_url_debug_off_says_what_to_set_in_one_line(command: list[str]) -> None:
    env = _environment(DJANGO_DEBUG="0", DJANGO_SECRET_KEY="k" * 60, JWT_SECRET="j" * 40)
    result = subprocess.run(
        [sys.executable, "manage.py", *command], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("ImproperlyConfigured: DJANGO_DEBUG is off and DATABASE_URL is not set")
    assert "DATABASE_URL=postgresql://" in lines[0]
    assert "DJANGO_EMBEDDED_DATABASE=1" in lines[0]


def _installed(env: dict[str, str]) -> bool:
    """Whether `make serve` finds the virtualenv installed (it would install it otherwise, which a
    test must not do under the session that runs from it)."""
    plan = subprocess.run(["make", "-n", "serve"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    stamps = set(re.findall(r"\.venv/\.installed-[\w-]+", plan.stdout))
    return any((REPO / stamp).exists() for stamp in stamps)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes], Path]]:
    if "EMBEDDED_DATABASE_SUPERUSER_URL" not in os.environ:
        pytest.skip("the one-liner serves the embedded database; this session runs on DATABASE_URL")
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    port = free_port()
    # The one-liner as written; around it only what keeps the try apart from this machine's own:
    # its port, one worker, a database and a static folder of its own.
    env = _environment(
        PORT=str(port),
        WEB_CONCURRENCY="1",
        EMBEDDED_DATABASE_NAME=DATABASE,
        DJANGO_STATIC_ROOT=str(tmp_path / "static"),
    )
    if not _installed(env):
        pytest.skip("the virtualenv is not installed for these locks (make install)")
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            ["bash", "-c", one_liner()], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield f"http://127.0.0.1:{port}", process, log_path
    finally:
        # gunicorn's graceful stop is tests/deploy/test_production_server.py's business.
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        with psycopg.connect(os.environ["EMBEDDED_DATABASE_SUPERUSER_URL"], autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")


@pytest.mark.slow
def test_the_readme_one_liner_serves_requests(served: tuple[str, subprocess.Popen[bytes], Path]) -> None:
    base_url, process, log_path = served
    deadline = time.monotonic() + 240
    while True:
        if process.poll() is not None:
            raise AssertionError(f"make serve exited with {process.returncode}:\n{log_path.read_text()[-4000:]}")
        try:
            ready = fetch(base_url, "/readyz")
            break
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError(f"no answer in 240 s:\n{log_path.read_text()[-4000:]}") from None
            time.sleep(0.5)
    # As curl sends it (Host: 127.0.0.1:PORT): on main every request was 400 (no allowed host).
    assert ready.status == 200, ready.text
    assert ready.json() == {"status": "ready", "database": "ok", "migrations": "ok"}
    login = fetch(base_url, "/admin/login/", headers={"Host": f"localhost:{base_url.rsplit(':', 1)[1]}"})
    assert login.status == 200
    # Any other name is still refused.
    assert fetch(base_url, "/healthz", headers={"Host": "evil.example"}).status == 400
