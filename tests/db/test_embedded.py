"""The embedded server (config/embedded.py) as a fresh machine meets it: an empty data folder
becomes a running, bootstrapped PostgreSQL that Django reaches as app_owner over a Unix socket,
and a second start in the same process returns the same DSN without a second server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from config.settings import BASE_DIR

pytestmark = pytest.mark.slow

PROBE = """
import json, sys
from pathlib import Path
import psycopg
from config.embedded import activate
first = activate(data_dir=Path(sys.argv[1]), database="probe", app_password="probe-secret")
second = activate(data_dir=Path(sys.argv[1]), database="other", app_password="other")
with psycopg.connect(first) as conn:
    row = conn.execute(
        "SELECT current_user, current_database(), r.rolsuper, r.rolbypassrls, "
        "inet_server_addr() IS NULL, (SELECT count(*) FROM pg_extension WHERE extname = 'vector') "
        "FROM pg_roles r WHERE r.rolname = current_user"
    ).fetchone()
print(json.dumps({"first": first, "second": second, "row": list(row)}))
"""


def test_an_empty_data_folder_becomes_a_bootstrapped_server_reached_as_app_owner_over_a_socket(
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "EMBEDDED_DATABASE_SUPERUSER_URL")}
    data_dir = tmp_path / "pgdata"
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(data_dir)],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    # The first start bootstraps: roles, database and extension are created and announced.
    assert "created role app_owner" in done.stderr
    assert "created database probe owned by app_owner" in done.stderr
    assert report["first"].startswith("postgresql://app_owner:probe-secret@/probe?host=")
    # Activation is once per process: the second call neither starts nor bootstraps again.
    assert report["second"] == report["first"]
    assert report["row"] == ["app_owner", "probe", False, False, True, 1]
    # The package stopped the server when the process ended.
    assert (data_dir / "PG_VERSION").exists()
    assert not (data_dir / "postmaster.pid").exists()
