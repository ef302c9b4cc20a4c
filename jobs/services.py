"""Run a management command as a recorded job: one run at a time, its end visible in the admin;
and recover the jobs whose worker died mid-run.

`job_run` is not one `@transaction.atomic` like the other services: the commands a job runs
commit their own transactions (purge_expired one per batch, generate_briefings one per shop),
and the run's record must be committed before the command starts and after it ends, whatever it
did, so staff see a failure even when the command rolled everything back.
"""

from __future__ import annotations

import datetime
import io
import logging
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

from django.core.management import call_command
from django.db import connection, transaction
from django.db.models.functions import Now

from config.logs import redact
from tenancy.scope import active_scope

from .models import JobRun, JobStatus

logger = logging.getLogger("jobs")

# What a run keeps of a command's output and of a failure's traceback (characters, the end).
OUTPUT_LIMIT = 20_000
ERROR_LIMIT = 8_000

# A worker writes its heartbeat every 10 s (procrastinate's `update_heartbeat_interval`); one
# silent for 30 s (three missed beats, procrastinate's own `stalled_worker_timeout` and
# `get_stalled_jobs` default) is dead, and its `doing` jobs are stalled. Sync tasks run in a
# thread, so a busy job never stops its worker's heartbeat; only a dead process (or a worker
# cut off from the database for 30 s) does.
STALLED_AFTER_SECONDS = 30
# A stalled job is queued again at most twice (three attempts in all), then failed. Every job
# is idempotent (jobs/schedule.py), so a retry redoes the killed run's work; a deploy's SIGKILL
# rarely hits the same job twice, and a job the OOM killer ends three times in a row will not
# fit a fourth time either, so it fails where staff see it.
STALLED_JOB_RETRIES = 2
# A killed worker's PostgreSQL session outlives it while its statement runs (a lock wait, a
# k-means index build: minutes), holding the run's advisory lock, so the retry would be skipped.
# During a run the server checks the client's socket every 10 s while a statement runs and ends
# the orphaned session (measured: 10.0 s after a kill -9). A host that vanishes sends no FIN;
# keepalives every 5 s after 5 s idle, 3 unanswered, mark its socket dead within 20 s. Both end
# the session within about 30 s, the threshold after which the job is retried.
RUN_SESSION_SETTINGS = {
    "client_connection_check_interval": "10s",
    "tcp_keepalives_idle": "5",
    "tcp_keepalives_interval": "5",
    "tcp_keepalives_count": "3",
}


class JobLockHeld(Exception):
    """Another run of the same job holds its lock."""


@contextmanager
def job_lock(name: str) -> Iterator[None]:
    """A session-level advisory lock named after the job, held for the whole run.

    Session-level because the run spans many transactions; the worker therefore connects to
    PostgreSQL directly (or through a session pooler), as procrastinate's LISTEN needs anyway.
    procrastinate's own `lock` already serialises the jobs it queued; this also covers a run
    called directly (a shell, a test) and a second worker with another queue.
    """
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", [f"jobs:{name}"])
        row = cursor.fetchone()
    if not (row and row[0]):
        raise JobLockHeld(name)
    try:
        with connection.cursor() as cursor:
            for setting, value in RUN_SESSION_SETTINGS.items():
                cursor.execute("SELECT set_config(%s, %s, false)", [setting, value])
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", [f"jobs:{name}"])
            for setting in RUN_SESSION_SETTINGS:
                cursor.execute("SELECT set_config(%s, NULL, false)", [setting])


def job_run(*, job: str, command: str, arguments: Sequence[str], queue_job_id: int | None = None) -> JobRun:
    """Run `manage.py <command> <arguments>` as job `job`, recording the run in `job_runs`.

    A run whose lock is held by another is recorded as skipped and returns at once. A failing
    command is recorded as failed, with its error, and the exception propagates (so the queue
    marks its job failed as well). A run with `--shop DOMAIN` is recorded as that shop's (staff
    of the shop see it); any other run spans every shop.
    """
    if active_scope() is not None:
        raise ValueError("jobs run outside any tenant scope; each command enters service_role itself")
    shop = run_shop(arguments)
    try:
        with job_lock(job):
            run = JobRun.objects.create(
                job=job, arguments=list(arguments), status=JobStatus.RUNNING, queue_job_id=queue_job_id, shop=shop
            )
            logger.info("job %s started", job, extra={"job": job, "job_run": run.pk, "arguments": list(arguments)})
            out = io.StringIO()
            try:
                call_command(command, *arguments, stdout=out, stderr=out, verbosity=1, no_color=True)
            except BaseException as exc:
                error = redact("".join(traceback.format_exception(exc))[-ERROR_LIMIT:])
                _finish(run, status=JobStatus.FAILED, output=out.getvalue(), error=error)
                logger.error("job %s failed: %s", job, exc, extra={"job": job, "job_run": run.pk})
                raise
            _finish(run, status=JobStatus.SUCCEEDED, output=out.getvalue(), error="")
            logger.info("job %s succeeded", job, extra={"job": job, "job_run": run.pk})
            return run
    except JobLockHeld:
        run = JobRun.objects.create(
            job=job,
            arguments=list(arguments),
            status=JobStatus.SKIPPED,
            finished_at=Now(),
            error="another run of this job held its lock; nothing was done",
            queue_job_id=queue_job_id,
            shop=shop,
        )
        logger.warning("job %s skipped: already running", job, extra={"job": job, "job_run": run.pk})
        return run


def _finish(run: JobRun, *, status: JobStatus, output: str, error: str) -> None:
    # tqdm's bars go to stderr as carriage-return redraws; keep the last state of each line.
    lines = [line.rsplit("\r", 1)[-1] for line in output.splitlines()]
    text = redact("\n".join(line for line in lines if line.strip())[-OUTPUT_LIMIT:])
    JobRun.objects.filter(pk=run.pk).update(status=status, finished_at=Now(), output=text, error=error)
    run.refresh_from_db()


def run_shop(arguments: Sequence[str]) -> str:
    """The shop a command's arguments limit it to (`--shop DOMAIN` or `--shop=DOMAIN`, the one
    spelling every command shares); "" when they do not, i.e. the run spans every shop."""
    values = list(arguments)
    for index, argument in enumerate(values):
        if argument == "--shop" and index + 1 < len(values):
            return values[index + 1].strip().lower()
        if argument.startswith("--shop="):
            return argument.removeprefix("--shop=").strip().lower()
    return ""


@dataclass(frozen=True)
class StalledJob:
    """A queued job whose worker died mid-run, and what `recover_stalled_jobs` did with it."""

    queue_job_id: int
    task_name: str
    outcome: Literal["retried", "failed"]
    reason: str
    # The `job_runs` rows closed as abandoned (0: the job died before its run was recorded,
    # and one abandoned row was written for it instead).
    runs_closed: int


# The `doing` jobs of workers silent for the threshold, or of workers already removed (a
# starting worker deletes those silent for 30 s, which sets their jobs' worker_id to NULL).
# FOR UPDATE SKIP LOCKED: two workers recovering at once never handle one job twice.
_STALLED_JOBS = """
    SELECT job.id, job.task_name, job.attempts, job.queueing_lock, job.abort_requested, job.worker_id,
           worker.last_heartbeat, now()
      FROM procrastinate_jobs job
      LEFT JOIN procrastinate_workers worker ON worker.id = job.worker_id
     WHERE job.status = 'doing'
       AND (worker.id IS NULL OR worker.last_heartbeat < now() - make_interval(secs => %s))
     ORDER BY job.id
       FOR UPDATE OF job SKIP LOCKED
"""


@transaction.atomic
def recover_stalled_jobs(
    *, stalled_after_seconds: float = STALLED_AFTER_SECONDS, retries: int = STALLED_JOB_RETRIES
) -> list[StalledJob]:
    """Retry or fail every job whose worker stopped its heartbeat mid-run, and close its run.

    A job left `doing` by a dead worker holds its procrastinate `lock` for ever: every later job
    of the lock (the next day's run of the same schedule) waits behind it, and its `job_runs` row
    stays `running`. Each such job is queued again at once while it has retries left (its
    `attempts` counts the earlier ones), else failed; its running `job_runs` row is closed as
    `abandoned` with the reason. One transaction: the queue and the record never disagree.
    """
    if active_scope() is not None:
        raise ValueError("stalled jobs are recovered outside any tenant scope")
    recovered = []
    with connection.cursor() as cursor:
        cursor.execute(_STALLED_JOBS, [stalled_after_seconds])
        rows = cursor.fetchall()
        for job_id, task_name, attempts, queueing_lock, abort_requested, worker_id, last_heartbeat, now in rows:
            stopped = _stopped(worker_id=worker_id, last_heartbeat=last_heartbeat, now=now)
            outcome: Literal["retried", "failed"]
            if abort_requested:
                # Staff asked procrastinate to abort it: the death does what they asked.
                cursor.execute("SELECT procrastinate_finish_job_v1(%s, 'failed', false)", [job_id])
                outcome = "failed"
                reason = f"{stopped}; failed: its abort had been requested"
            elif attempts < retries:
                if queueing_lock is not None:
                    # The next scheduled run may already wait with the same queueing lock (at
                    # most one waiting job of a kind, a unique index): the retry gives its lock
                    # up rather than fail on it. Both keep the `lock`, and the lower id (the
                    # retry) runs first.
                    cursor.execute(
                        "UPDATE procrastinate_jobs SET queueing_lock = NULL WHERE id = %s AND EXISTS ("
                        " SELECT 1 FROM procrastinate_jobs other"
                        " WHERE other.queueing_lock = %s AND other.status = 'todo' AND other.id <> %s)",
                        [job_id, queueing_lock, job_id],
                    )
                cursor.execute("SELECT procrastinate_retry_job_v2(%s, now(), NULL, NULL, NULL)", [job_id])
                outcome = "retried"
                reason = (
                    f"{stopped}; queued again as attempt {attempts + 2} of {retries + 1} (procrastinate job {job_id})"
                )
            else:
                cursor.execute("SELECT procrastinate_finish_job_v1(%s, 'failed', false)", [job_id])
                outcome = "failed"
                reason = f"{stopped}; failed: its worker stopped during all {attempts + 1} attempts"
            closed = JobRun.objects.filter(queue_job_id=job_id, status=JobStatus.RUNNING).update(
                status=JobStatus.ABANDONED, finished_at=Now(), error=reason
            )
            if not closed:
                JobRun.objects.create(
                    job=task_name.removeprefix("jobs."),
                    status=JobStatus.ABANDONED,
                    finished_at=Now(),
                    error=f"{reason} (before its run was recorded)",
                    queue_job_id=job_id,
                )
            logger.error(
                "job %s (procrastinate job %s) abandoned by its worker: %s",
                task_name,
                job_id,
                reason,
                extra={"job": task_name, "queue_job": job_id, "outcome": outcome},
            )
            recovered.append(
                StalledJob(queue_job_id=job_id, task_name=task_name, outcome=outcome, reason=reason, runs_closed=closed)
            )
    return recovered


def _stopped(*, worker_id: int | None, last_heartbeat: datetime.datetime | None, now: datetime.datetime) -> str:
    if worker_id is None or last_heartbeat is None:
        return "worker stopped: it missed its heartbeats and a starting worker removed it"
    silent = (now - last_heartbeat).total_seconds()
    return (
        f"worker {worker_id} stopped: last heartbeat at {last_heartbeat.astimezone(datetime.UTC):%Y-%m-%d %H:%M:%S} "
        f"UTC, {silent:.0f} s before this check"
    )
