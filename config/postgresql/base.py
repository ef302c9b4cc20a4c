"""Django's PostgreSQL backend, with batches that fit the bind-parameter limit.

With server-side binding (`DATABASE_PREPARED_STATEMENTS`, on by default) every value is a bind
parameter, and the protocol carries at most 65,535 of them a statement; Django's PostgreSQL
backend never splits `bulk_create` or the deletion collector's batches (with client-side
binding the values are inlined and there is no such limit). Batches are capped here so that
a large `bulk_create` or an admin "delete selected" of many rows keeps working.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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
