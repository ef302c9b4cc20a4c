"""When each job runs and what it is asked to do, as pure functions of the scheduled time.

Every job's arguments derive from the time it was *scheduled* for (procrastinate passes it),
not from when a worker got to it, so a retried or late run does the same work as the on-time
one, and every command it calls is idempotent: re-running a day changes nothing.
"""

from __future__ import annotations

import datetime

# cron lines (UTC). Partitions first (the next month must exist before it starts), then the
# purge, then the daily work that reads the previous day: briefings (each on the day after
# its period ends) and experiment analysis. Spread over the night so no two start together.
ENSURE_PARTITIONS_CRON = "5 3 * * *"
PURGE_EXPIRED_CRON = "15 3 * * *"
BRIEFING_CRONS = {
    "daily": "30 3 * * *",  # yesterday
    "weekly": "40 3 * * 1",  # Monday: the week ending on Sunday
    "monthly": "50 3 1 * *",  # the 1st: the previous calendar month
    "quarterly": "0 4 1 1,4,7,10 *",  # the 1st of a quarter: the previous quarter
}
ANALYZE_EXPERIMENTS_CRON = "20 4 * * *"
KNOWLEDGE_REFIT_CHECK_CRON = "40 4 * * *"
# The refined knowledge vectors (all-MiniLM-L6-v2, knowledge search's second tier): checked
# every minute, so a new document is refined within about a minute of its save (plus the model's
# time: ~30-60 documents/s on 2 cores). A check with nothing pending records nothing; a run
# stops after the batch that passes KNOWLEDGE_REFINE_MAX_SECONDS, and the next minute's run
# continues (its lock forbids overlap).
KNOWLEDGE_REFINE_CRON = "* * * * *"
KNOWLEDGE_REFINE_MAX_SECONDS = 240
# Jobs whose worker died mid-run (jobs.services.recover_stalled_jobs): checked every minute, so
# a stalled job is retried or failed within 30 s (the heartbeat threshold) + 60 s of its
# worker's death, and at a worker's start (it queues the missed minute's check at once).
RECOVER_STALLED_CRON = "* * * * *"
# Ahead of every other waiting job (procrastinate runs higher priorities first; the others are 0).
RECOVER_STALLED_PRIORITY = 100


def scheduled_day(timestamp: int) -> datetime.date:
    """The UTC day of a scheduled time (epoch seconds)."""
    return datetime.datetime.fromtimestamp(timestamp, tz=datetime.UTC).date()


def briefing_period_end(timestamp: int) -> datetime.date:
    """The last day of the period a briefing job scheduled at `timestamp` reports on.

    Each briefing type is scheduled on the day after its period ends (see BRIEFING_CRONS), so
    the period ends the day before: Sunday for a Monday's weekly run, the last day of the
    month or quarter for a run on the 1st.
    """
    return scheduled_day(timestamp) - datetime.timedelta(days=1)


def refit_is_due(*, rows: int, lists_built: int | None, lists_fitted: int, growth: float) -> bool:
    """Whether the knowledge index should be rebuilt for its rows.

    IVFFlat learns its lists from the rows present when it was built and `rebuild_knowledge_index`
    fits lists to rows (rows / 1000). Rebuild when the lists it would fit now differ from the
    built ones by `growth` or more (default 2: the rows have doubled, or halved, since the
    build). Rebuilding on every change would run k-means daily on a large table for a gain
    nobody measures; a factor of two costs at most one rebuild per doubling of the data.
    """
    if rows == 0:
        return False
    if lists_built is None:
        return True
    return max(lists_fitted, lists_built) >= growth * min(lists_fitted, lists_built)
