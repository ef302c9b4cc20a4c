"""The scheduled jobs (procrastinate periodic tasks), each a thin call of an existing command.

Started by the worker, `manage.py procrastinate worker` (make worker; make run starts one).
Each task has a `lock` (procrastinate runs one job of a lock at a time) and a `queueing_lock`
(at most one waiting job of a kind), and `jobs.services.job_run` adds an advisory lock and
records the run for the admin. The commands enter `service_role` themselves, as when an
operator runs them.
"""

from __future__ import annotations

import logging

from django.conf import settings
from procrastinate import JobContext
from procrastinate.contrib.django import app

from . import schedule
from .models import JobRun
from .services import job_run, recover_stalled_jobs

logger = logging.getLogger("jobs")


@app.periodic(cron=schedule.ENSURE_PARTITIONS_CRON)
@app.task(name="jobs.ensure_partitions", pass_context=True, lock="ensure_partitions", queueing_lock="ensure_partitions")
def ensure_partitions(context: JobContext, timestamp: int) -> None:
    day = schedule.scheduled_day(timestamp)
    job_run(
        job="ensure_partitions",
        command="ensure_partitions",
        arguments=["--today", day.isoformat()],
        queue_job_id=_id(context),
    )


@app.periodic(cron=schedule.PURGE_EXPIRED_CRON)
@app.task(name="jobs.purge_expired", pass_context=True, lock="purge_expired", queueing_lock="purge_expired")
def purge_expired(context: JobContext, timestamp: int) -> None:
    day = schedule.scheduled_day(timestamp)
    job_run(
        job="purge_expired", command="purge_expired", arguments=["--today", day.isoformat()], queue_job_id=_id(context)
    )


def _briefings(context: JobContext, timestamp: int, briefing_type: str) -> None:
    period_end = schedule.briefing_period_end(timestamp)
    job_run(
        job=f"generate_briefings:{briefing_type}",
        command="generate_briefings",
        arguments=["--type", briefing_type, "--period-end", period_end.isoformat()],
        queue_job_id=_id(context),
    )


generate_briefings = app.task(name="jobs.generate_briefings", pass_context=True)(_briefings)
for _type, _cron in schedule.BRIEFING_CRONS.items():
    # One schedule per briefing type, each with its own lock (a monthly run may overlap a daily one).
    app.periodic(
        cron=_cron,
        periodic_id=_type,
        task_kwargs={"briefing_type": _type},
        lock=f"briefings:{_type}",
        queueing_lock=f"briefings:{_type}",
    )(generate_briefings)


@app.periodic(cron=schedule.ANALYZE_EXPERIMENTS_CRON)
@app.task(
    name="jobs.analyze_experiments", pass_context=True, lock="analyze_experiments", queueing_lock="analyze_experiments"
)
def analyze_experiments(context: JobContext, timestamp: int) -> None:
    # Each variant's latest snapshot up to the scheduled day: a late run computes what the
    # on-time one would have.
    day = schedule.scheduled_day(timestamp)
    job_run(
        job="analyze_experiments",
        command="analyze_experiments",
        arguments=["--as-of", day.isoformat()],
        queue_job_id=_id(context),
    )


@app.periodic(cron=schedule.KNOWLEDGE_REFIT_CHECK_CRON)
@app.task(
    name="jobs.refit_knowledge_index",
    pass_context=True,
    lock="rebuild_knowledge_index",
    queueing_lock="rebuild_knowledge_index",
)
def refit_knowledge_index(context: JobContext, timestamp: int) -> JobRun | None:
    """Daily check; rebuilds the knowledge index only when its rows have grown enough."""
    from advanced.knowledge.services import knowledge_index_rebuild

    plan = knowledge_index_rebuild(dry_run=True)
    if not schedule.refit_is_due(
        rows=plan.rows,
        lists_built=plan.lists_before,
        lists_fitted=plan.lists_after,
        growth=settings.JOBS_KNOWLEDGE_REFIT_GROWTH,
    ):
        logger.info(
            "knowledge index refit not due: %s rows, lists %s built, %s fitted",
            plan.rows,
            plan.lists_before,
            plan.lists_after,
        )
        return None
    return job_run(
        job="rebuild_knowledge_index", command="rebuild_knowledge_index", arguments=[], queue_job_id=_id(context)
    )


@app.periodic(cron=schedule.KNOWLEDGE_REFINE_CRON)
@app.task(name="jobs.refine_knowledge", pass_context=True, lock="refine_knowledge", queueing_lock="refine_knowledge")
def refine_knowledge(context: JobContext, timestamp: int) -> JobRun | None:
    """Every minute; refines the knowledge documents that lack a current refined vector, if any."""
    from advanced.knowledge.services.refine import refine_pending
    from tenancy.scope import atomic_scope, service_scope

    if not settings.KNOWLEDGE_REFINE:
        return None
    with atomic_scope(service_scope()):
        pending = refine_pending().exists()
    if not pending:
        # The common case: no row in job_runs for it (1,440 a day otherwise).
        return None
    return job_run(
        job="refine_knowledge",
        command="refine_knowledge",
        arguments=["--max-seconds", str(schedule.KNOWLEDGE_REFINE_MAX_SECONDS)],
        queue_job_id=_id(context),
    )


@app.periodic(
    cron=schedule.RECOVER_STALLED_CRON,
    queueing_lock="recover_stalled_jobs",
    priority=schedule.RECOVER_STALLED_PRIORITY,
)
@app.task(name="jobs.recover_stalled_jobs", queueing_lock="recover_stalled_jobs")
def recover_stalled(timestamp: int) -> None:
    """Every minute; retries or fails the jobs whose worker died mid-run (nothing to do, no record).

    No `lock`, unlike the other tasks: a check whose own worker dies would otherwise block every
    later check behind it, and the stalled jobs it would recover with them. Two checks at once
    are safe: each takes the stalled jobs it handles with FOR UPDATE SKIP LOCKED. Each recovered
    job is logged at ERROR by the service and recorded in job_runs; the task returns nothing
    (procrastinate would log a result, and a JSON log line needs no dataclasses).
    """
    recover_stalled_jobs()


def _id(context: JobContext) -> int | None:
    return context.job.id if context.job is not None else None
