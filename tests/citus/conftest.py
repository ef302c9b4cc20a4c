"""A real Citus cluster (a coordinator and two workers on 127.0.0.1:9700-9702) for the tests here.

`shared/citus/citus-cluster` (beside the repository: `<repo>/../shared`) builds Citus from its
source against the embedded PostgreSQL, once per machine (cached under its --dir), and starts
the three nodes. The session fixture starts the cluster when it is not running and stops it at
the end only if it started it; an exclusive lock keeps two test runs on one machine from sharing
(or stopping) it under each other. Without gcc the tests are skipped, with the reason printed.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO.parent / "shared" / "citus" / "citus-cluster"
PORT = 9700
SUPERUSER_URL = f"postgresql://postgres@127.0.0.1:{PORT}/postgres"
WORKER_PORTS = (PORT + 1, PORT + 2)
APP_PASSWORD = "app_owner"

NO_GCC = "gcc is missing: the Citus cluster is built from source (apt-get install gcc make)"
needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason=NO_GCC)


@dataclass(frozen=True)
class Cluster:
    superuser_url: str

    def url(self, database: str, *, user: str = "postgres", port: int = PORT) -> str:
        password = f":{APP_PASSWORD}" if user == "app_owner" else ""
        return f"postgresql://{user}{password}@127.0.0.1:{port}/{database}"

    def connect(self, database: str, *, port: int = PORT) -> psycopg.Connection[Any]:
        return psycopg.connect(self.url(database, port=port), autocommit=True)


def _running() -> bool:
    try:
        with psycopg.connect(SUPERUSER_URL, connect_timeout=3) as conn:
            return conn.execute("SELECT count(*) FROM pg_dist_node").fetchone() == (3,)
    except psycopg.Error:
        return False


def _script(*args: str) -> subprocess.CompletedProcess[str]:
    if not SCRIPT.exists():
        pytest.fail(f"{SCRIPT} is missing: the shared/ folder must lie beside the repository")
    return subprocess.run(
        [str(SCRIPT), *args, "--python", sys.executable, "--port", str(PORT)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )


@pytest.fixture(scope="session")
def citus() -> Iterator[Cluster]:
    lock_path = Path(tempfile.gettempdir()) / f"citus-cluster-{PORT}.lock"
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        started = False
        if not _running():
            begun = time.monotonic()
            result = _script("start")
            if result.returncode != 0:
                pytest.fail(f"citus-cluster start failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}")
            started = True
            print(f"\ncitus-cluster start: {time.monotonic() - begun:.0f} s", file=sys.stderr)
        try:
            yield Cluster(SUPERUSER_URL)
        finally:
            if started:
                _script("stop")


def deploy_env(cluster: Cluster, database: str) -> dict[str, str]:
    """A deploy's environment: the app connects as app_owner, the bootstrap as the superuser."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "EMBEDDED_DATABASE_"))}
    env["DATABASE_URL"] = cluster.url(database, user="app_owner")
    env["DATABASE_ADMIN_URL"] = cluster.superuser_url
    return env


def manage(cluster: Cluster, database: str, *args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env=deploy_env(cluster, database),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def fresh_database(citus: Cluster) -> Iterator[str]:
    """A database name no node has yet; dropped (on every node) afterwards."""
    name = f"citus_test_{os.getpid()}"
    with citus.connect("postgres") as conn:
        # citus.enable_create_database_propagation: CREATE and DROP DATABASE reach the workers.
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        yield name
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
