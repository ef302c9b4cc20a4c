"""Rate-limit counters every worker process shares: one PostgreSQL statement a request.

A sliding window, estimated from two fixed windows (the approach of Cloudflare's and nginx's
limiters): the hits of the current window plus the previous window's, weighted by how much of
it still lies within the last `duration` seconds. It never lets a client through more than the
rate over any window boundary by more than that estimate's error, and needs one counter row per
key and window instead of a timestamp per request.

Why not Django's database cache (what DRF's throttles used before): DRF keeps a list of every
request's timestamp in the cache, pickled, read and rewritten whole on every request, and the
database cache's `set` runs a transaction of four statements (one of them `SELECT COUNT(*)` of
the whole table, to cull it). Measured in process on the load benchmark's request mix: 2.6 ms of
a 7.5 ms request, and six of its sixteen round trips. This statement is one round trip.

The table is UNLOGGED: counters are worth nothing after a crash (PostgreSQL empties an unlogged
table on crash recovery, which at worst forgives a minute of requests), and a transaction that
writes only unlogged tables does not wait for a WAL flush on commit.

Counted outside the request's transaction, on its own connection alias (`ratelimit`, the same
database in autocommit): in the request's transaction the counts would be rolled back with every
refused request, and a user's counter row would stay locked until the request ends, serialising
that user's concurrent requests.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, connections

RATELIMIT_ALIAS = "ratelimit"
TABLE = "api_rate_counts"


@dataclass(frozen=True)
class Hit:
    """The answer for one request: let through or not, and when to try again if not."""

    allowed: bool
    retry_after: float | None


def _slot_and_carry(now: float, duration: int) -> tuple[int, float]:
    """The window `now` falls in, and the share of the previous window still inside the last
    `duration` seconds."""
    slot = int(now // duration)
    elapsed = (now - slot * duration) / duration
    return slot, 1.0 - elapsed


def _retry_after(*, now: float, duration: int, limit: int, current: int, previous: int) -> float:
    """Seconds until one more request fits under the estimate (current + previous·carry < limit)."""
    slot, carry = _slot_and_carry(now, duration)
    window_end = (slot + 1) * duration - now
    if current + 1 > limit or previous == 0:
        # Only the next window helps, and there this window is the weighted one.
        return window_end
    # The previous window's weight falls linearly with time: find when it has fallen enough.
    needed_carry = (limit - current - 1) / previous
    return max(0.0, (carry - needed_carry) * duration)


# The counter row of this window is added to unless the estimate would pass the limit: a refused
# request is not counted (as DRF's throttles did), so a client that keeps retrying gets through
# again at the rate. `previous` is read before the insert in the same snapshot; the INSERT's
# SELECT and the UPDATE's WHERE check the same estimate, under the row lock for the update.
_HIT_SQL = f"""
WITH previous AS (
    SELECT coalesce(max(hits), 0) AS hits FROM {TABLE} WHERE key = %(key)s AND slot = %(slot)s - 1
), hit AS (
    INSERT INTO {TABLE} AS counter (key, slot, hits, expires_at)
    SELECT %(key)s, %(slot)s, 1, to_timestamp(%(expires)s) FROM previous
    WHERE 1 + previous.hits * %(carry)s <= %(limit)s
    ON CONFLICT (key, slot) DO UPDATE SET hits = counter.hits + 1
    WHERE counter.hits + 1 + (SELECT hits FROM previous) * %(carry)s <= %(limit)s
    RETURNING counter.hits
)
SELECT
    (SELECT hits FROM hit),
    (SELECT hits FROM previous),
    (SELECT hits FROM {TABLE} WHERE key = %(key)s AND slot = %(slot)s)
"""


def database_hit(*, key: str, limit: int, duration: int, now: float) -> Hit:
    """Count one request for `key` in PostgreSQL (every worker process sees the same count)."""
    slot, carry = _slot_and_carry(now, duration)
    # The duration is part of the key: a rate changed from 100/minute to 1000/hour between two
    # deploys must not read minutes as hours.
    params: dict[str, str | int | float] = {
        "key": f"{key}:{duration}",
        "slot": slot,
        "carry": carry,
        "limit": limit,
        # A row is read for two windows (its own, then as the previous one).
        "expires": (slot + 2) * duration,
    }
    with connections[RATELIMIT_ALIAS].cursor() as cursor:
        cursor.execute(_HIT_SQL, params)
        counted, previous, current = cursor.fetchone()
    if counted is not None:
        return Hit(allowed=True, retry_after=None)
    wait = _retry_after(now=now, duration=duration, limit=limit, current=current or 0, previous=previous)
    return Hit(allowed=False, retry_after=wait)


_PEEK_SQL = f"""
SELECT
    (SELECT hits FROM {TABLE} WHERE key = %(key)s AND slot = %(slot)s),
    (SELECT hits FROM {TABLE} WHERE key = %(key)s AND slot = %(slot)s - 1)
"""


def _peeked(*, current: int, previous: int, limit: int, duration: int, now: float) -> Hit:
    _, carry = _slot_and_carry(now, duration)
    if current + 1 + previous * carry <= limit:
        return Hit(allowed=True, retry_after=None)
    wait = _retry_after(now=now, duration=duration, limit=limit, current=current, previous=previous)
    return Hit(allowed=False, retry_after=wait)


def database_peek(*, key: str, limit: int, duration: int, now: float) -> Hit:
    """Whether one more hit for `key` would be let through, counting nothing (one read)."""
    slot, _ = _slot_and_carry(now, duration)
    with connections[RATELIMIT_ALIAS].cursor() as cursor:
        cursor.execute(_PEEK_SQL, {"key": f"{key}:{duration}", "slot": slot})
        current, previous = cursor.fetchone()
    return _peeked(current=current or 0, previous=previous or 0, limit=limit, duration=duration, now=now)


class MemoryCounters:
    """The same estimate in one process's memory: for tests that do not test the limits
    themselves (their transactions may not touch a second connection), and nothing else."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, int], int] = {}

    def hit(self, *, key: str, limit: int, duration: int, now: float) -> Hit:
        slot, carry = _slot_and_carry(now, duration)
        name = f"{key}:{duration}"
        with self._lock:
            previous = self._counts.get((name, slot - 1), 0)
            current = self._counts.get((name, slot), 0)
            if current + 1 + previous * carry > limit:
                wait = _retry_after(now=now, duration=duration, limit=limit, current=current, previous=previous)
                return Hit(allowed=False, retry_after=wait)
            self._counts[(name, slot)] = current + 1
            return Hit(allowed=True, retry_after=None)

    def peek(self, *, key: str, limit: int, duration: int, now: float) -> Hit:
        slot, _ = _slot_and_carry(now, duration)
        name = f"{key}:{duration}"
        with self._lock:
            current, previous = self._counts.get((name, slot), 0), self._counts.get((name, slot - 1), 0)
        return _peeked(current=current, previous=previous, limit=limit, duration=duration, now=now)

    def clear(self) -> None:
        with self._lock:
            self._counts.clear()


memory_counters = MemoryCounters()


def rate_hit(*, key: str, limit: int, duration: int, now: float | None = None) -> Hit:
    """Count one request for `key` against `limit` per `duration` seconds, in the store
    `API_THROTTLE_STORE` names (`database`, the default; `memory` in most tests)."""
    when = time.time() if now is None else now
    hit: Callable[..., Hit] = memory_counters.hit if settings.API_THROTTLE_STORE == "memory" else database_hit
    return hit(key=key, limit=limit, duration=duration, now=when)


def rate_peek(*, key: str, limit: int, duration: int, now: float | None = None) -> Hit:
    """What `rate_hit` would answer for `key` now, without counting anything."""
    when = time.time() if now is None else now
    peek: Callable[..., Hit] = memory_counters.peek if settings.API_THROTTLE_STORE == "memory" else database_peek
    return peek(key=key, limit=limit, duration=duration, now=when)


def expired_rate_counts_purge() -> int:
    """Delete counters no window reads any more (run daily by `purge_expired`); their number.
    On the default connection: a command's, outside any request."""
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {TABLE} WHERE expires_at < now()")
        return int(cursor.rowcount)
