"""Django's PostgreSQL backend, with batches that fit the bind-parameter limit.

With server-side binding (`DATABASE_PREPARED_STATEMENTS`, on by default) every value is a bind
parameter, and the protocol carries at most 65,535 of them a statement; Django's PostgreSQL
backend never splits `bulk_create` or the deletion collector's batches (with client-side
binding the values are inlined and there is no such limit). Batches are capped here so that
a large `bulk_create` or an admin "delete selected" of many rows keeps working.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from django.core.signals import request_finished
from django.db import connections
from django.db.backends.postgresql import base, operations

# Parameters a statement may carry (a 16-bit count in the Bind message), less a margin for
# the parameters a statement adds besides the batch's.
MAX_PARAMETERS = 65_535 - 535


class DatabaseOperations(operations.DatabaseOperations):
    def bulk_batch_size(self, fields: Sequence[Any], objs: Sequence[Any]) -> int:
        if not self.connection.settings_dict["OPTIONS"].get("server_side_binding"):
            return super().bulk_batch_size(fields, objs)
        return max(1, min(len(objs), MAX_PARAMETERS // max(1, len(fields))))


class DatabaseWrapper(base.DatabaseWrapper):
    ops_class = DatabaseOperations

    # Django's CONN_HEALTH_CHECKS runs `SELECT 1` before the first query of every request, on
    # every connection a request uses (the request's and the rate limit's): two of the ~9 round
    # trips of a list request, 14% of a web worker's samples under the load benchmark (py-spy).
    # Connections are lost mostly while idle (server or pooler idle timeouts, a failover between
    # requests), so the check runs only on a connection that has not finished a request without
    # errors in the last HEALTH_CHECK_AFTER_IDLE_SECONDS; a busy worker's connection skips it.
    HEALTH_CHECK_AFTER_IDLE_SECONDS = 2.0
    _usable_at: float | None = None
    health_check_done: bool  # Django's (untyped in the stubs)

    def close_if_health_check_failed(self) -> None:
        if (
            self.connection is not None
            and self.settings_dict["CONN_HEALTH_CHECKS"]
            and not self.health_check_done
            and self._usable_at is not None
            and time.monotonic() - self._usable_at < self.HEALTH_CHECK_AFTER_IDLE_SECONDS
        ):
            self.health_check_done = True
            return
        super().close_if_health_check_failed()

    def close(self) -> None:
        self._usable_at = None
        super().close()


def connections_mark_usable(**kwargs: Any) -> None:
    """At the end of a request: each open connection that saw no error has just worked."""
    now = time.monotonic()
    for wrapper in connections.all(initialized_only=True):
        if isinstance(wrapper, DatabaseWrapper) and wrapper.connection is not None and not wrapper.errors_occurred:
            wrapper._usable_at = now


# After Django's own receiver (connected when django.db is imported, before this backend is
# loaded), which closes the connections that are unusable or too old.
request_finished.connect(connections_mark_usable, dispatch_uid="config.postgresql.connections_mark_usable")
