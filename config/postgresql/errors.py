"""Which database errors mean the database is unavailable: the connection was lost or refused.

Such a failure says nothing about the request, and the same request may well succeed once the
server is back (a restart, a failover, a terminated backend, a full server), so the API answers it
503 with Retry-After (tenancy/api/errors.py) and a command says so in one line (import_metrics),
instead of a 500 and a traceback.

Decided by psycopg's exception class and the SQLSTATE, never by the message (translated by the
server's lc_messages, reworded between versions):

- an `OperationalError` without a SQLSTATE: the failure is the client's side of the wire (the
  connection was refused, or its socket closed under a statement, or psycopg's pool lent none
  within its timeout);
- class 08, connection exception;
- 57P01 admin_shutdown (`pg_terminate_backend`, a fast shutdown), 57P02 crash_shutdown, 57P03
  cannot_connect_now (the server is starting, stopping or in recovery);
- 53300 too_many_connections (every slot taken: another client's turn ends soon).

Not unavailability: psycopg's `InterfaceError` (a closed cursor, a loader missing: a bug in the
caller, not an outage; a closed connection is an OperationalError), and OperationalErrors that
carry another SQLSTATE, such as 57014 (a statement timeout) or 55P03 (a lock not available).
"""

from __future__ import annotations

import psycopg

UNAVAILABLE_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "53300"})


def _driver_error(exc: BaseException) -> psycopg.Error | None:
    """psycopg's error behind `exc`. Django raises its own classes `from` the driver's; an error
    raised while one was handled (Django's TransactionManagementError, a clean-up's query on the
    dead connection) was caused by it, unless it was raised `from None`."""
    seen: set[int] = set()
    error: BaseException | None = exc
    while error is not None and id(error) not in seen:
        if isinstance(error, psycopg.Error):
            return error
        seen.add(id(error))
        error = error.__cause__ or (None if error.__suppress_context__ else error.__context__)
    return None


def database_unavailable(exc: BaseException) -> str | None:
    """Why `exc` means the database is unavailable ("AdminShutdown, SQLSTATE 57P01"), or None
    when it is any other error."""
    error = _driver_error(exc)
    if not isinstance(error, psycopg.OperationalError):
        return None
    sqlstate = error.sqlstate
    if sqlstate is None:
        return type(error).__name__
    if sqlstate.startswith("08") or sqlstate in UNAVAILABLE_SQLSTATES:
        return f"{type(error).__name__}, SQLSTATE {sqlstate}"
    return None
