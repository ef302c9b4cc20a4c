"""Real servers for the load benchmark and the deployment tests: gunicorn and PgBouncer.

Each is started as a child process on loopback (or a socket in a temporary folder), waited for,
and stopped by the `with` block that started it, so no test or benchmark leaves one behind.
Imports no model: usable before Django is configured.
"""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

REPO = Path(__file__).resolve().parent.parent
PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def database_url(params: Mapping[str, Any], *, host: str | None = None, port: int | None = None) -> str:
    """A DATABASE_URL for psycopg connection parameters (Django's `get_connection_params()`);
    a Unix socket folder becomes `?host=`."""
    host = host if host is not None else str(params.get("host") or "127.0.0.1")
    port = port if port is not None else int(params.get("port") or 5432)
    user = quote(str(params["user"]), safe="")
    password = quote(str(params.get("password") or ""), safe="")
    name = quote(str(params["dbname"]), safe="")
    credentials = f"{user}:{password}@" if password else f"{user}@"
    if host.startswith("/"):
        return f"postgresql://{credentials}/{name}?host={quote(host, safe='')}&port={port}"
    return f"postgresql://{credentials}{host}:{port}/{name}"


@dataclass
class Server:
    """A running gunicorn: where it listens and where its output goes."""

    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def production_env(**overrides: str) -> dict[str, str]:
    """The environment of a production process: debug off, its secrets, no embedded database."""
    env = {
        key: value
        for key, value in os.environ.items()
        # pytest-django's and the embedded server's variables are the parent's business.
        if not key.startswith(("PYTEST_", "DJANGO_", "EMBEDDED_DATABASE_"))
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DJANGO_DEBUG": "0",
            "DJANGO_SECRET_KEY": "production-test-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            # Required with debug off; the tokens the tests and benchmarks mint carry it.
            "JWT_AUDIENCE": "authenticated",
            "LOG_FORMAT": "json",
        }
    )
    env.update(overrides)
    return env


def _wait_http(port: int, process: subprocess.Popen[bytes], log_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {process.returncode}:\n{log_path.read_text()[-4000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/healthz", headers={"Host": "127.0.0.1"})
            conn.getresponse().read()
            conn.close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"gunicorn did not answer within {timeout:.0f} s:\n{log_path.read_text()[-4000:]}")


# `make serve`'s worker lifecycle (Makefile; docs/operations.md, "Worker recycles, reloads and
# stopping"). Each worker is replaced after MAX_REQUESTS plus randint(0, MAX_REQUESTS_JITTER)
# requests. Under even load every worker serves about the same requests a second, so the
# workers' recycles are as far apart as their limits: with gunicorn's usual jitter of a tenth
# (200) the three recycled within seconds of each other (55-57 s with nothing served while each
# exit hung, before onnxruntime's thread stopped hanging the exit). Half of MAX_REQUESTS spreads
# them over a third of a worker's life, and each recycle draws again, so their phases drift
# apart. A recycle now costs its slot about a second (a worker's exit and the master's fork),
# the others serving meanwhile.
MAX_REQUESTS = 2000
MAX_REQUESTS_JITTER = 1000
# gunicorn answers a longer request line (414) or header line (431) itself, in HTML, before
# Django sees it. 8190 bytes is gunicorn's ceiling for the request line (its default 4094 cut a
# cursor page's URL with filters short); header lines keep gunicorn's 8190 (a Shopify session
# token is ~1 kB). docs/api.md, "Limits".
LIMIT_REQUEST_LINE = 8190
# The options `make serve` passes to gunicorn besides --bind, --workers and --graceful-timeout
# (tests/deploy/test_worker_lifecycle.py checks that the Makefile passes the same).
SERVE_OPTIONS = (
    "--preload",
    "--timeout", "60",
    "--max-requests", str(MAX_REQUESTS), "--max-requests-jitter", str(MAX_REQUESTS_JITTER),
    "--limit-request-line", str(LIMIT_REQUEST_LINE),
    # gunicorn's control socket is one file in $HOME, shared by every server on the machine.
    "--no-control-socket",
    # gunicorn's own lines as JSON in the app's log (config/gunicorn_logging.py).
    "--logger-class", "config.gunicorn_logging.AppLogger",
)  # fmt: skip


@contextmanager
def gunicorn(
    env: Mapping[str, str],
    *,
    workers: int,
    log_path: Path,
    timeout: float = 90,
    kind: str = "sync",
    threads: int = 4,
    max_requests: int = MAX_REQUESTS,
    max_requests_jitter: int = MAX_REQUESTS_JITTER,
    graceful_timeout: int = 10,
) -> Iterator[Server]:
    """The production server on a free loopback port: gunicorn serving config.wsgi with
    `workers` sync workers and the options of `make serve` (SERVE_OPTIONS; `make serve` gives
    workers 30 s to finish on SIGTERM, these 10). `max_requests` and its jitter replace make
    serve's for the recycling tests and `bench.load --recycle-every`.

    `kind` "gthread" (gunicorn, `threads` threads a worker) and "granian" (its WSGI interface) exist
    to compare servers (docs/performance.md). Stopped (SIGTERM, then SIGKILL) when the block
    exits.
    """
    port = free_port()
    if kind == "granian":
        command = [
            sys.executable, "-m", "granian", "--interface", "wsgi", "config.wsgi:application",
            "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers), "--no-ws",
        ]  # fmt: skip
    else:
        command = [
            sys.executable, "-m", "gunicorn", "config.wsgi:application",
            "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
            "--graceful-timeout", str(graceful_timeout), *SERVE_OPTIONS,
            # Given again: the last of a repeated option wins.
            "--max-requests", str(max_requests), "--max-requests-jitter", str(max_requests_jitter),
        ]  # fmt: skip
        if kind == "gthread":
            command += ["--worker-class", "gthread", "--threads", str(threads)]
        elif kind != "sync":
            raise ValueError(f"unknown server kind {kind!r}")
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=REPO, env=dict(env), stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_http(port, process, log_path, timeout)
        yield Server(port=port, process=process, log_path=log_path)
    finally:
        _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@dataclass
class Pooler:
    """A running PgBouncer in transaction mode."""

    port: int
    socket_dir: Path
    process: subprocess.Popen[bytes]

    def url(self, params: Mapping[str, Any]) -> str:
        return database_url(params, host="127.0.0.1", port=self.port)

    def stats(self, params: Mapping[str, Any], command: str = "SHOW STATS") -> list[dict[str, Any]]:
        """A `SHOW ...` of PgBouncer's console (simple query protocol: a client-side cursor)."""
        import psycopg

        with (
            psycopg.connect(
                host="127.0.0.1",
                port=self.port,
                dbname="pgbouncer",
                user=str(params["user"]),
                autocommit=True,
                cursor_factory=psycopg.ClientCursor,
            ) as conn,
            conn.cursor() as cursor,
        ):
            cursor.execute(command)
            names = [column.name for column in cursor.description or []]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def pgbouncer_available() -> str | None:
    """None when PgBouncer can run here, else why not."""
    if not Path(PGBOUNCER).exists():
        return f"{PGBOUNCER} is not installed (make pgbouncer installs Debian's package as root)"
    return None


@contextmanager
def pgbouncer(params: Mapping[str, Any], *, pool_size: int = 2, timeout: float = 20) -> Iterator[Pooler]:
    """PgBouncer in transaction mode in front of the database of `params` (psycopg connection
    parameters, as Django's `get_connection_params()`), listening on a free loopback port.

    `pool_size` server connections per (database, user): a small pool makes clients take turns
    on the same server connections, which is what a transaction pooler does under load.
    """
    directory = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
    port = free_port()
    host = str(params.get("host") or "127.0.0.1")
    server_port = int(params.get("port") or 5432)
    user = str(params["user"])
    password = str(params.get("password") or "")
    name = str(params["dbname"])
    (directory / "users.txt").write_text(f'"{user}" ""\n')
    (directory / "pgbouncer.ini").write_text(
        "\n".join(
            [
                "[databases]",
                f"{name} = host={host} port={server_port} dbname={name} user={user}"
                + (f" password={password}" if password else ""),
                "[pgbouncer]",
                "listen_addr = 127.0.0.1",
                f"listen_port = {port}",
                f"unix_socket_dir = {directory}",
                "auth_type = trust",
                f"stats_users = {user}",
                f"auth_file = {directory / 'users.txt'}",
                "pool_mode = transaction",
                f"default_pool_size = {pool_size}",
                "min_pool_size = 0",
                "reserve_pool_size = 0",
                "max_client_conn = 200",
                # psycopg sends these startup parameters; PgBouncer must pass them through.
                "ignore_startup_parameters = extra_float_digits,options",
                f"logfile = {directory / 'pgbouncer.log'}",
                f"pidfile = {directory / 'pgbouncer.pid'}",
                "",
            ]
        )
    )
    # PgBouncer refuses to run as root. Run as root, it is started as the owner of the
    # database's socket folder (the embedded server's own user), the one user sure to reach
    # the socket; it must then read and write its temporary folder.
    command = [PGBOUNCER, str(directory / "pgbouncer.ini")]
    if os.geteuid() == 0:
        owner = "nobody"
        if host.startswith("/"):
            import pwd

            owner = pwd.getpwuid(os.stat(host).st_uid).pw_name
        os.chmod(directory, 0o777)
        for path in directory.iterdir():
            os.chmod(path, 0o666)
        command = [PGBOUNCER, "-u", owner, str(directory / "pgbouncer.ini")]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                output = process.stdout.read().decode(errors="replace") if process.stdout else ""
                log = (directory / "pgbouncer.log").read_text() if (directory / "pgbouncer.log").exists() else ""
                raise RuntimeError(f"pgbouncer exited with {process.returncode}: {output}{log}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("pgbouncer did not listen in time") from None
                time.sleep(0.1)
        yield Pooler(port=port, socket_dir=directory, process=process)
    finally:
        _stop(process)
        shutil.rmtree(directory, ignore_errors=True)


# --- CPU accounting: what a request costs, whatever else the machine is doing -----------------


def _stat(pid: int) -> tuple[int, float, float] | None:
    """(parent pid, own CPU seconds, reaped children's CPU seconds) from /proc/<pid>/stat."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    # After the command: state ppid ... utime(12) stime(13) cutime(14) cstime(15), 0-based.
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / ticks, (int(fields[13]) + int(fields[14])) / ticks


def tree_cpu_seconds(root: int) -> float:
    """CPU seconds used so far by `root` and every process under it, living or reaped.

    A reaped child's time is in its parent's cutime/cstime, so recycled gunicorn workers and
    closed PostgreSQL backends still count. Linux only; 0.0 when /proc is unreadable.
    """
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None:
                stats[int(entry.name)] = stat
    if root not in stats:
        return 0.0
    children: dict[int, list[int]] = {}
    for pid, (parent, _own, _reaped) in stats.items():
        children.setdefault(parent, []).append(pid)
    total, stack = 0.0, [root]
    while stack:
        pid = stack.pop()
        _parent, own, reaped = stats[pid]
        total += own + reaped
        stack.extend(children.get(pid, ()))
    return total


def parent_pid(pid: int) -> int | None:
    stat = _stat(pid)
    return stat[0] if stat else None
