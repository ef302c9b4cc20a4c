"""The loop of the knowledge commands that move documents in resumable batches
(`reembed_knowledge`, `refine_knowledge`): one transaction per batch as service_role, a
progress bar, and a command error that says how far the run got."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django.core.management.base import CommandError, OutputWrapper

from tenancy.errors import DomainError
from tenancy.scope import atomic_scope, service_scope

BAR_WIDTH = 30

# (after_id) -> (rows changed, the highest id looked at or None when nothing was left)
NextBatch = Callable[[int], tuple[int, int | None]]


def run_batches(stdout: OutputWrapper, *, total: int, next_batch: NextBatch, max_seconds: float | None = None) -> int:
    """Every batch until `next_batch` finds nothing (or `max_seconds` have passed after a
    batch); returns the rows changed. Each batch commits on its own, so an error stops the run
    with what it committed kept, and a rerun continues from there."""
    done, after_id, started = 0, 0, time.monotonic()
    while True:
        try:
            with atomic_scope(service_scope()):
                changed, last_id = next_batch(after_id)
        except (DomainError, ValueError) as exc:
            detail: Any = getattr(exc, "detail", exc)
            raise CommandError(f"Stopped after {done} documents (rerun to continue): {detail}") from exc
        if last_id is None:
            break
        after_id = last_id
        done += changed
        _progress(stdout, done, total, time.monotonic() - started)
        if max_seconds is not None and time.monotonic() - started >= max_seconds:
            break
    if total and stdout.isatty():
        stdout.write("")
    return done


def _progress(stdout: OutputWrapper, done: int, total: int, seconds: float) -> None:
    """A terminal gets one bar redrawn in place; a log gets a line a batch."""
    # More rows may fall behind during the run (writes meanwhile).
    total = max(total, done)
    filled = round(BAR_WIDTH * done / total) if total else BAR_WIDTH
    rate = done / seconds if seconds > 0 else 0.0
    line = f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done}/{total} ({rate:,.1f} documents/s)"
    if stdout.isatty():
        stdout.write("\r" + line, ending="")
        stdout.flush()
    else:
        stdout.write(line)
