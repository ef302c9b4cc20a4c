"""Run a management command as a recorded job: one run at a time, its end visible in the admin.

Not one `@transaction.atomic` like the other services: the commands a job runs commit their own
transactions (purge_expired one per batch, generate_briefings one per shop), and the run's
record must be committed before the command starts and after it ends, whatever it did, so staff
see a failure even when the command rolled everything back.
"""

from __future__ import annotations

import io
import logging
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from django.core.management import call_command
from django.db import connection
from django.db.models.functions import Now

from config.logs import redact
from tenancy.scope import active_scope

from .models import JobRun, JobStatus

logger = logging.getLogger("jobs")

# What a run keeps of a command's output and of a failure's traceback (characters, the end).
OUTPUT_LIMIT = 20_000
ERROR_LIMIT = 8_000


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
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", [f"jobs:{name}"])


def job_run(*, job: str, command: str, arguments: Sequence[str], queue_job_id: int | None = None) -> JobRun:
    """Run `manage.py <command> <arguments>` as job `job`, recording the run in `job_runs`.

    A run whose lock is held by another is recorded as skipped and returns at once. A failing
    command is recorded as failed, with its error, and the exception propagates (so the queue
    marks its job failed as well).
    """
    if active_scope() is not None:
        raise ValueError("jobs run outside any tenant scope; each command enters service_role itself")
    try:
        with job_lock(job):
            run = JobRun.objects.create(
                job=job, arguments=list(arguments), status=JobStatus.RUNNING, queue_job_id=queue_job_id
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
        )
        logger.warning("job %s skipped: already running", job, extra={"job": job, "job_run": run.pk})
        return run


def _finish(run: JobRun, *, status: JobStatus, output: str, error: str) -> None:
    # tqdm's bars go to stderr as carriage-return redraws; keep the last state of each line.
    lines = [line.rsplit("\r", 1)[-1] for line in output.splitlines()]
    text = redact("\n".join(line for line in lines if line.strip())[-OUTPUT_LIMIT:])
    JobRun.objects.filter(pk=run.pk).update(status=status, finished_at=Now(), output=text, error=error)
    run.refresh_from_db()
