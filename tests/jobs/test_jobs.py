"""Scheduled jobs: the schedule, the record of each run, the lock, the worker, the admin page."""

from __future__ import annotations

import ast
import datetime
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import psycopg
import pytest
from croniter import croniter
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management.base import CommandError
from django.db import connection
from django.test import Client
from django.urls import reverse
from procrastinate.contrib.django import app
from procrastinate.contrib.django.models import ProcrastinateJob

from advanced.models import CeoBriefing
from bench.servers import database_url, production_env
from jobs import schedule, tasks
from jobs.models import JobRun, JobStatus
from jobs.services import STALLED_AFTER_SECONDS, job_run, recover_stalled_jobs
from tenancy.factories import ShopFactory, ShopMembershipFactory, UserFactory
from tenancy.scope import atomic_scope, service_scope

REPO = Path(__file__).resolve().parents[2]


def _utc(*args: int) -> int:
    return int(datetime.datetime(*args, tzinfo=datetime.UTC).timestamp())


# --- The schedule ------------------------------------------------------------------------


def _next_runs(cron: str, start: datetime.datetime, count: int) -> list[int]:
    iterator = croniter(cron, start)
    return [int(iterator.get_next(float)) for _ in range(count)]


def test_weekly_briefings_report_on_the_week_ending_on_sunday() -> None:
    runs = _next_runs(schedule.BRIEFING_CRONS["weekly"], datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC), 3)
    assert [schedule.briefing_period_end(run) for run in runs] == [
        datetime.date(2026, 1, 4),
        datetime.date(2026, 1, 11),
        datetime.date(2026, 1, 18),
    ]
    assert {schedule.briefing_period_end(run).isoweekday() for run in runs} == {7}


def test_monthly_briefings_report_on_the_calendar_month_just_ended() -> None:
    runs = _next_runs(schedule.BRIEFING_CRONS["monthly"], datetime.datetime(2026, 1, 15, tzinfo=datetime.UTC), 3)
    assert [schedule.briefing_period_end(run) for run in runs] == [
        datetime.date(2026, 1, 31),
        datetime.date(2026, 2, 28),
        datetime.date(2026, 3, 31),
    ]


def test_quarterly_briefings_report_on_the_quarter_just_ended() -> None:
    runs = _next_runs(schedule.BRIEFING_CRONS["quarterly"], datetime.datetime(2026, 1, 2, tzinfo=datetime.UTC), 4)
    assert [schedule.briefing_period_end(run) for run in runs] == [
        datetime.date(2026, 3, 31),
        datetime.date(2026, 6, 30),
        datetime.date(2026, 9, 30),
        datetime.date(2026, 12, 31),
    ]


def test_daily_briefings_report_on_yesterday_even_when_the_worker_runs_them_late() -> None:
    assert schedule.briefing_period_end(_utc(2026, 3, 1, 3, 30)) == datetime.date(2026, 2, 28)
    # The argument is the time the job was scheduled for, not when it ran.
    assert schedule.briefing_period_end(_utc(2026, 3, 1, 23, 59)) == datetime.date(2026, 2, 28)


def test_every_job_of_the_issue_is_scheduled() -> None:
    scheduled = {
        (task.task.name, task.periodic_id): task.cron for task in app.periodic_registry.periodic_tasks.values()
    }
    assert scheduled == {
        ("jobs.ensure_partitions", ""): "5 3 * * *",
        ("jobs.purge_expired", ""): "15 3 * * *",
        ("jobs.generate_briefings", "daily"): "30 3 * * *",
        ("jobs.generate_briefings", "weekly"): "40 3 * * 1",
        ("jobs.generate_briefings", "monthly"): "50 3 1 * *",
        ("jobs.generate_briefings", "quarterly"): "0 4 1 1,4,7,10 *",
        ("jobs.analyze_experiments", ""): "20 4 * * *",
        ("jobs.refit_knowledge_index", ""): "40 4 * * *",
        ("jobs.refine_knowledge", ""): "* * * * *",
        ("jobs.recover_stalled_jobs", ""): "* * * * *",
    }


def test_a_worker_starting_after_an_outage_queues_each_jobs_most_recent_missed_run() -> None:
    from procrastinate.periodic import PeriodicDeferrer

    # The worker was down from Sunday night; it starts on Wednesday 2 December 2026 at noon.
    deferrer = PeriodicDeferrer(registry=app.periodic_registry, **app.periodic_defaults)
    queued = {
        (task.task.name, task.periodic_id): timestamp
        for task, timestamp in deferrer.get_previous_tasks(at=_utc(2026, 12, 2, 12))
    }
    assert queued == {
        ("jobs.ensure_partitions", ""): _utc(2026, 12, 2, 3, 5),
        ("jobs.purge_expired", ""): _utc(2026, 12, 2, 3, 15),
        ("jobs.generate_briefings", "daily"): _utc(2026, 12, 2, 3, 30),
        ("jobs.generate_briefings", "weekly"): _utc(2026, 11, 30, 3, 40),  # Monday
        ("jobs.generate_briefings", "monthly"): _utc(2026, 12, 1, 3, 50),
        # The quarter's run (1 October) is older than JOBS_CATCH_UP_HOURS (8 days): not replayed.
        ("jobs.analyze_experiments", ""): _utc(2026, 12, 2, 4, 20),
        ("jobs.refit_knowledge_index", ""): _utc(2026, 12, 2, 4, 40),
        ("jobs.refine_knowledge", ""): _utc(2026, 12, 2, 11, 59),  # every minute: the one before
        ("jobs.recover_stalled_jobs", ""): _utc(2026, 12, 2, 11, 59),  # at once: a dead worker's jobs
    }


@pytest.mark.parametrize(
    ("rows", "built", "fitted", "due"),
    [
        (0, 100, 1, False),  # nothing to index
        (5_000, None, 5, True),  # no index at all
        (5_000, 100, 5, True),  # the migration's 100 lists on 5,000 rows
        (150_000, 100, 150, False),  # grown by half: not yet
        (199_999, 100, 199, False),
        (200_000, 100, 200, True),  # doubled
        (40_000, 100, 40, True),  # shrunk to less than half
    ],
)
def test_the_knowledge_index_is_refitted_when_its_rows_double_or_halve(
    rows: int, built: int | None, fitted: int, due: bool
) -> None:
    assert schedule.refit_is_due(rows=rows, lists_built=built, lists_fitted=fitted, growth=2.0) is due


def test_tenancy_does_not_import_the_jobs_app() -> None:
    for path in (REPO / "tenancy").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            assert not any(name == "jobs" or name.startswith("jobs.") for name in names), path


# --- Runs and their record --------------------------------------------------------------


@pytest.mark.django_db
def test_a_successful_run_is_recorded_with_its_arguments_and_output() -> None:
    run = job_run(job="ensure_partitions", command="ensure_partitions", arguments=["--today", "2026-01-15"])
    assert run.status == JobStatus.SUCCEEDED
    assert run.arguments == ["--today", "2026-01-15"]
    assert "Partitions ready" in run.output
    assert run.error == ""
    assert run.finished_at is not None and run.finished_at >= run.started_at
    assert list(JobRun.objects.values_list("job", "status")) == [("ensure_partitions", "succeeded")]


@pytest.mark.django_db
def test_a_failing_run_is_recorded_with_its_error_and_the_error_propagates() -> None:
    with pytest.raises(CommandError, match="last day"):
        job_run(
            job="generate_briefings:monthly",
            command="generate_briefings",
            arguments=["--type", "monthly", "--period-end", "2026-01-30"],
        )
    run = JobRun.objects.get()
    assert run.status == JobStatus.FAILED
    assert "CommandError" in run.error
    assert "last day" in run.error
    assert run.finished_at is not None


@pytest.mark.django_db(transaction=True)
def test_a_run_whose_lock_is_held_elsewhere_is_skipped_and_does_nothing() -> None:
    params = connection.get_connection_params()
    dsn = {key: params[key] for key in ("dbname", "host", "port", "user", "password")}
    # --dry-run: this test commits, and partitions created for another day would outlive it.
    with psycopg.connect(**dsn, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(hashtextextended('jobs:ensure_partitions', 0))")
        run = job_run(job="ensure_partitions", command="ensure_partitions", arguments=["--dry-run"])
        assert run.status == JobStatus.SKIPPED
        assert "held its lock" in run.error
        assert run.output == ""
        other.execute("SELECT pg_advisory_unlock(hashtextextended('jobs:ensure_partitions', 0))")
    # Released: the next run goes ahead.
    assert job_run(job="ensure_partitions", command="ensure_partitions", arguments=["--dry-run"]).status == (
        JobStatus.SUCCEEDED
    )


@pytest.mark.django_db
def test_a_job_refuses_to_start_inside_a_tenant_scope() -> None:
    with atomic_scope(service_scope()), pytest.raises(ValueError, match="outside any tenant scope"):
        job_run(job="ensure_partitions", command="ensure_partitions", arguments=[])
    assert not JobRun.objects.exists()


@pytest.fixture
def empty_queue(transactional_db: None) -> Iterator[None]:
    """procrastinate's tables are not Django-managed, so a transactional test's flush leaves
    them alone: empty them around the test."""

    def empty() -> None:
        with connection.cursor() as cursor:
            cursor.execute("TRUNCATE procrastinate_jobs, procrastinate_periodic_defers, procrastinate_workers CASCADE")

    empty()
    yield
    empty()


def _periodic_runs_already_queued(*, around: datetime.datetime, minutes: int = 15) -> None:
    """Record every periodic task's runs from `minutes` before `around` to `minutes` after it as
    already queued, as a worker that ran then would have: the worker under test then queues no
    periodic job of its own. Without this a test run within 10 minutes of a cron time (03:30, the
    daily briefings) found a second, scheduled job beside the one it queued."""
    start, end = around - datetime.timedelta(minutes=minutes), around + datetime.timedelta(minutes=minutes)
    rows = []
    for task in app.periodic_registry.periodic_tasks.values():
        times = croniter(task.cron, start - datetime.timedelta(seconds=1))
        while (moment := times.get_next(datetime.datetime)) <= end:
            rows.append((task.task.name, task.periodic_id, int(moment.timestamp())))
    with connection.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO procrastinate_periodic_defers (task_name, periodic_id, defer_timestamp) "
            "VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
            rows,
        )


def run_worker_once() -> str:
    """`manage.py procrastinate worker --one-shot` on the test database: the real worker
    command, in its own process, until the queue is empty. It runs the jobs the test queued,
    and no periodic job (see `_periodic_runs_already_queued`)."""
    _periodic_runs_already_queued(around=datetime.datetime.now(datetime.UTC))
    env = production_env(DATABASE_URL=database_url(connection.get_connection_params()), LOG_FORMAT="text")
    # No replay of the night's missed runs (purges and partitions of today) in a test database:
    # only procrastinate's own 10 minutes.
    env.update(DJANGO_DEBUG="1", JOBS_CATCH_UP_HOURS="0")
    result = subprocess.run(
        [sys.executable, "manage.py", "procrastinate", "worker", "--one-shot"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


@pytest.mark.slow
def test_the_worker_runs_a_queued_briefing_job_across_shops_as_app_owner(empty_queue: None) -> None:
    with atomic_scope(service_scope()):
        ShopFactory(domain="one.myshopify.com")
        ShopFactory(domain="two.myshopify.com")
    tasks.generate_briefings.defer(timestamp=_utc(2026, 1, 6, 3, 30), briefing_type="daily")
    output = run_worker_once()
    assert "ended with status: Success" in output

    # The one job the test queued, and no periodic one (the every-minute jobs included).
    [job] = ProcrastinateJob.objects.all()
    assert job.task_name == "jobs.generate_briefings"
    assert job.status == "succeeded"
    # Other periodic jobs the worker queues at its start may record runs too: this job's is one.
    run = JobRun.objects.get(job="generate_briefings:daily")
    assert (run.job, run.status, run.queue_job_id) == ("generate_briefings:daily", "succeeded", job.id)
    assert run.arguments == ["--type", "daily", "--period-end", "2026-01-05"]
    with atomic_scope(service_scope()):
        written = sorted(CeoBriefing.objects.values_list("shop_id", "briefing_type", "period_end"))
    assert written == [
        ("one.myshopify.com", "daily", datetime.date(2026, 1, 5)),
        ("two.myshopify.com", "daily", datetime.date(2026, 1, 5)),
    ]
    # Idempotent: the same scheduled time again updates the same rows.
    tasks.generate_briefings.defer(timestamp=_utc(2026, 1, 6, 3, 30), briefing_type="daily")
    run_worker_once()
    with atomic_scope(service_scope()):
        assert CeoBriefing.objects.count() == 2
    assert list(JobRun.objects.filter(job="generate_briefings:daily").values_list("status", flat=True)) == [
        "succeeded",
        "succeeded",
    ]


def test_periodic_jobs_of_one_kind_cannot_queue_twice(empty_queue: None) -> None:
    configured: Any = app.configure_task("jobs.purge_expired", queueing_lock="purge_expired")
    configured.defer(timestamp=_utc(2026, 1, 6, 3, 15))
    from procrastinate.exceptions import AlreadyEnqueued

    with pytest.raises(AlreadyEnqueued):
        app.configure_task("jobs.purge_expired", queueing_lock="purge_expired").defer(timestamp=_utc(2026, 1, 7, 3, 15))
    assert ProcrastinateJob.objects.count() == 1


# --- The admin page ------------------------------------------------------------------------


@pytest.mark.django_db
def test_staff_see_failed_runs_with_their_error_and_cannot_change_them() -> None:
    with pytest.raises(CommandError):
        job_run(
            job="generate_briefings:quarterly",
            command="generate_briefings",
            arguments=["--type", "quarterly", "--period-end", "2026-02-28"],
        )
    run = JobRun.objects.get()
    with atomic_scope(service_scope()):
        admin = get_user_model().objects.create_superuser(username="ops", password="x-password-1", email="o@x.io")
    client = Client()
    client.force_login(admin)

    listing = client.get(reverse("admin:jobs_jobrun_changelist"), {"status__exact": "failed"})
    assert listing.status_code == 200
    assert "generate_briefings:quarterly" in listing.text
    assert "quarter" in listing.text  # the error's last line

    detail = client.get(reverse("admin:jobs_jobrun_change", args=[run.pk]))
    assert detail.status_code == 200
    assert "CommandError" in detail.text
    assert 'name="_save"' not in detail.text
    assert client.get(reverse("admin:jobs_jobrun_add")).status_code == 403
    assert client.post(reverse("admin:jobs_jobrun_delete", args=[run.pk]), {"post": "yes"}).status_code == 403
    assert JobRun.objects.filter(pk=run.pk, status="failed").exists()
    # procrastinate's own pages (its jobs and their events) open under the back_office role too.
    assert client.get(reverse("admin:procrastinate_procrastinatejob_changelist")).status_code == 200


@pytest.mark.django_db
def test_staff_without_the_view_permission_do_not_see_job_runs() -> None:
    with atomic_scope(service_scope()):
        staff = get_user_model().objects.create_user(username="clerk", password="x-password-1", is_staff=True)
    client = Client()
    client.force_login(staff)
    assert client.get(reverse("admin:jobs_jobrun_changelist")).status_code == 403


# --- A worker that dies mid-job ----------------------------------------------------------


def _defer_analysis(timestamp: int) -> int:
    """Queue the daily analysis as its schedule does (its lock and queueing lock)."""
    # Typed with its JobContext first (pass_context), which defer() does not take.
    task: Any = tasks.analyze_experiments
    job_id: int = task.defer(timestamp=timestamp)
    return job_id


def _stalled_job(*, heartbeat_age_seconds: int, attempts: int = 0) -> tuple[int, int]:
    """An analysis job taken by a worker whose last heartbeat was `heartbeat_age_seconds` ago,
    with its run recorded as running: what a worker killed mid-run leaves behind."""
    job_id = _defer_analysis(_utc(2026, 12, 7, 4, 20))
    with connection.cursor() as cursor:
        cursor.execute("SELECT worker_id FROM procrastinate_register_worker_v1()")
        worker_id = cursor.fetchone()[0]
        cursor.execute(
            "UPDATE procrastinate_workers SET last_heartbeat = now() - make_interval(secs => %s) WHERE id = %s",
            [heartbeat_age_seconds, worker_id],
        )
        # What procrastinate_fetch_job_v2 does when the worker takes it.
        cursor.execute(
            "UPDATE procrastinate_jobs SET status = 'doing', worker_id = %s, attempts = %s WHERE id = %s",
            [worker_id, attempts, job_id],
        )
    JobRun.objects.create(
        job="analyze_experiments", arguments=["--as-of", "2026-12-07"], status=JobStatus.RUNNING, queue_job_id=job_id
    )
    return job_id, worker_id


def _queue_job(job_id: int) -> tuple[str, int, str | None]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT status, attempts, queueing_lock FROM procrastinate_jobs WHERE id = %s", [job_id])
        status, attempts, queueing_lock = cursor.fetchone()
    return status, attempts, queueing_lock


@pytest.mark.django_db
def test_a_job_whose_worker_stopped_its_heartbeat_is_queued_again_and_its_run_closed_with_the_reason() -> None:
    job_id, worker_id = _stalled_job(heartbeat_age_seconds=45)
    # The next day's run already waits behind it, with the same queueing lock.
    next_id = _defer_analysis(_utc(2026, 12, 8, 4, 20))

    [recovered] = recover_stalled_jobs()

    assert (recovered.queue_job_id, recovered.outcome, recovered.runs_closed) == (job_id, "retried", 1)
    # Waiting again, with its attempt counted; the queueing lock stays with the next day's run.
    assert _queue_job(job_id) == ("todo", 1, None)
    assert _queue_job(next_id) == ("todo", 0, "analyze_experiments")
    run = JobRun.objects.get(queue_job_id=job_id)
    assert run.status == JobStatus.ABANDONED
    assert run.finished_at is not None
    assert f"worker {worker_id} stopped: last heartbeat at " in run.error
    assert "45 s before this check; queued again as attempt 2 of 3" in run.error
    # Nothing left to recover: a second check does nothing.
    assert recover_stalled_jobs() == []


@pytest.mark.django_db
def test_a_job_its_worker_died_on_three_times_is_failed_and_no_longer_blocks_its_lock() -> None:
    job_id, _ = _stalled_job(heartbeat_age_seconds=120, attempts=2)
    [recovered] = recover_stalled_jobs()
    assert recovered.outcome == "failed"
    assert _queue_job(job_id)[0] == "failed"
    run = JobRun.objects.get(queue_job_id=job_id)
    assert run.status == JobStatus.ABANDONED
    assert run.error.endswith("failed: its worker stopped during all 3 attempts")
    # The lock is free: the next run can be taken by a worker.
    next_id = _defer_analysis(_utc(2026, 12, 8, 4, 20))
    with connection.cursor() as cursor:
        cursor.execute("SELECT id FROM procrastinate_fetch_job_v2(NULL, NULL)")
        assert cursor.fetchone()[0] == next_id


@pytest.mark.django_db
def test_a_stalled_job_staff_asked_to_abort_is_failed_rather_than_retried() -> None:
    job_id, _ = _stalled_job(heartbeat_age_seconds=60)
    with connection.cursor() as cursor:
        cursor.execute("UPDATE procrastinate_jobs SET abort_requested = true WHERE id = %s", [job_id])
    [recovered] = recover_stalled_jobs()
    assert recovered.outcome == "failed"
    assert _queue_job(job_id)[0] == "failed"
    assert JobRun.objects.get(queue_job_id=job_id).error.endswith("failed: its abort had been requested")


@pytest.mark.django_db
def test_a_job_of_a_worker_with_a_recent_heartbeat_is_left_running() -> None:
    job_id, _ = _stalled_job(heartbeat_age_seconds=STALLED_AFTER_SECONDS - 10)
    assert recover_stalled_jobs() == []
    assert _queue_job(job_id)[0] == "doing"
    assert JobRun.objects.get(queue_job_id=job_id).status == JobStatus.RUNNING


@pytest.mark.django_db
def test_a_job_killed_before_its_run_was_recorded_gets_an_abandoned_run() -> None:
    job_id, _ = _stalled_job(heartbeat_age_seconds=60)
    JobRun.objects.all().delete()
    recover_stalled_jobs()
    run = JobRun.objects.get()
    assert (run.job, run.status, run.queue_job_id) == ("analyze_experiments", JobStatus.ABANDONED, job_id)
    assert run.error.endswith("(before its run was recorded)")


def _poll(what: str, check: Callable[[], Any], *, within: float, log: IO[str] | None = None) -> float:
    """Seconds until `check()` is true; fails after `within` seconds, with the worker's log."""
    start = time.monotonic()
    while time.monotonic() - start < within:
        if check():
            return time.monotonic() - start
        time.sleep(0.25)
    detail = ""
    if log is not None:
        log.seek(0)
        detail = log.read()[-4000:]
    pytest.fail(f"{what}: not within {within:.0f} s\n{detail}")


def _start_worker(log: IO[str]) -> subprocess.Popen[str]:
    """`manage.py procrastinate worker`, the real command, on the test database, until stopped."""
    env = production_env(DATABASE_URL=database_url(connection.get_connection_params()), LOG_FORMAT="text")
    env.update(DJANGO_DEBUG="1", JOBS_CATCH_UP_HOURS="0")
    return subprocess.Popen(
        [sys.executable, "manage.py", "procrastinate", "worker"],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _stop(worker: subprocess.Popen[str]) -> None:
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


@pytest.mark.slow
def test_a_worker_killed_mid_job_has_its_job_retried_and_the_next_scheduled_run_goes_ahead(
    empty_queue: None,
) -> None:
    params = connection.get_connection_params()
    dsn = {key: params[key] for key in ("dbname", "host", "port", "user", "password")}
    first_id = _defer_analysis(_utc(2026, 12, 7, 4, 20))
    timings: dict[str, float] = {}

    def status(job_id: int) -> str:
        return _queue_job(job_id)[0]

    with tempfile.TemporaryFile("w+") as log, psycopg.connect(**dsn) as blocker:
        # The analysis blocks on the experiments table, as a long analysis would run: the worker
        # is killed while its run is recorded as running and its statement is still going.
        blocker.execute("LOCK TABLE experiments IN ACCESS EXCLUSIVE MODE")
        first_worker = _start_worker(log)
        try:
            _poll(
                "the first run started",
                lambda: JobRun.objects.filter(queue_job_id=first_id, status=JobStatus.RUNNING).exists(),
                within=120,
                log=log,
            )

            def analysis_waits() -> bool:
                with connection.cursor() as cursor:
                    cursor.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND pid <> %s"
                        " AND datname = current_database() AND query LIKE %s",
                        [blocker.info.backend_pid, '%"experiments"%'],
                    )
                    return bool(cursor.fetchone()[0])

            _poll("the analysis waits on the experiments table", analysis_waits, within=60, log=log)
            # The next day's run is queued and waits behind the running one's lock.
            next_id = _defer_analysis(_utc(2026, 12, 8, 4, 20))
            os.kill(first_worker.pid, signal.SIGKILL)
            first_worker.wait(timeout=10)
            killed = time.monotonic()
        finally:
            _stop(first_worker)
        assert status(first_id) == "doing"

        # Its database session ends by itself though its statement still waits on the table,
        # and with it the run's advisory lock, which would make the retry a skipped run.
        def advisory_lock_free() -> bool:
            with psycopg.connect(**dsn, autocommit=True) as probe:
                row = probe.execute("SELECT pg_try_advisory_lock(hashtextextended('jobs:analyze_experiments', 0))")
                return bool(row.fetchone()[0])  # type: ignore[index]

        timings["session ended"] = _poll("the killed worker's session ended", advisory_lock_free, within=30)
        blocker.rollback()

        second_worker = _start_worker(log)
        try:
            _poll(
                "the first run closed as abandoned",
                lambda: JobRun.objects.filter(queue_job_id=first_id, status=JobStatus.ABANDONED).exists(),
                within=150,
                log=log,
            )
            timings["abandoned"] = time.monotonic() - killed
            _poll(
                "both runs done",
                lambda: status(first_id) == "succeeded" and status(next_id) == "succeeded",
                within=120,
                log=log,
            )
            timings["both done"] = time.monotonic() - killed
        finally:
            _stop(second_worker)
    print(f"after the kill: {', '.join(f'{name} {seconds:.1f} s' for name, seconds in timings.items())}")

    runs = list(JobRun.objects.filter(job="analyze_experiments").order_by("id").values_list("queue_job_id", "status"))
    assert runs == [(first_id, "abandoned"), (first_id, "succeeded"), (next_id, "succeeded")]
    abandoned = JobRun.objects.get(queue_job_id=first_id, status=JobStatus.ABANDONED)
    assert "stopped: " in abandoned.error
    assert f"queued again as attempt 2 of 3 (procrastinate job {first_id})" in abandoned.error
    assert abandoned.finished_at is not None
    assert JobRun.objects.get(queue_job_id=next_id).arguments == ["--as-of", "2026-12-08"]
    assert _queue_job(first_id)[1] == 2  # the retry, then its end
    # Every run is closed: nothing is left running to block the schedule.
    assert not JobRun.objects.filter(status=JobStatus.RUNNING).exists()


# --- Who sees which runs -----------------------------------------------------------------


@pytest.mark.django_db
def test_a_run_limited_to_one_shop_is_recorded_as_that_shops() -> None:
    with atomic_scope(service_scope()):
        ShopFactory(domain="one.myshopify.com")
    run = job_run(job="analyze_experiments", command="analyze_experiments", arguments=["--shop", "one.myshopify.com"])
    assert (run.status, run.shop) == (JobStatus.SUCCEEDED, "one.myshopify.com")
    every = job_run(job="analyze_experiments", command="analyze_experiments", arguments=["--as-of", "2026-12-07"])
    assert every.shop == ""


@pytest.mark.django_db
def test_shop_limited_staff_see_only_their_shops_job_runs_and_never_a_run_across_every_shop() -> None:
    # What the runs print: each analysed experiment's shop and its figures.
    across = JobRun.objects.create(
        job="analyze_experiments",
        arguments=["--as-of", "2026-12-07"],
        status=JobStatus.SUCCEEDED,
        output="one.myshopify.com hero-test: winner b (confidence 0.9912)\n"
        "two.myshopify.com price-test: winner c (confidence 0.9734)",
    )
    theirs = JobRun.objects.create(
        job="analyze_experiments",
        arguments=["--shop", "one.myshopify.com"],
        shop="one.myshopify.com",
        status=JobStatus.SUCCEEDED,
        output="one.myshopify.com hero-test: no winner: 4211 of 8000 visitors",
    )
    other = JobRun.objects.create(
        job="generate_briefings:daily",
        arguments=["--type", "daily", "--shop", "two.myshopify.com"],
        shop="two.myshopify.com",
        status=JobStatus.FAILED,
        error="CommandError: two.myshopify.com revenue 18433.20 disagrees",
    )
    with atomic_scope(service_scope()):
        one = ShopFactory(domain="one.myshopify.com")
        ShopFactory(domain="two.myshopify.com")
        clerk = UserFactory(username="clerk-of-one", is_staff=True)
        ShopMembershipFactory(user=clerk, shop=one, role="member")
        clerk.user_permissions.add(*Permission.objects.filter(codename="view_jobrun"))
        admin = UserFactory(username="ops", is_staff=True, is_superuser=True)
    limited = Client(raise_request_exception=False)
    limited.force_login(clerk)

    listing = limited.get(reverse("admin:jobs_jobrun_changelist"))
    assert listing.status_code == 200
    assert list(listing.context["cl"].result_list) == [theirs]
    assert "one.myshopify.com" in listing.text
    for hidden in ("two.myshopify.com", "18433.20", "price-test", "0.9912", "every shop"):
        assert hidden not in listing.text
    assert "4211 of 8000" in limited.get(reverse("admin:jobs_jobrun_change", args=[theirs.pk])).text
    for run in (across, other):
        page = limited.get(reverse("admin:jobs_jobrun_change", args=[run.pk]), follow=True)
        assert "two.myshopify.com" not in page.text
        assert "0.9912" not in page.text and "18433.20" not in page.text
    # Their search reaches no other run either, nor does procrastinate's queue of every shop's jobs.
    assert list(limited.get(reverse("admin:jobs_jobrun_changelist"), {"q": "two"}).context["cl"].result_list) == []
    assert limited.get(reverse("admin:procrastinate_procrastinatejob_changelist")).status_code == 403

    full = Client()
    full.force_login(admin)
    everything = full.get(reverse("admin:jobs_jobrun_changelist"))
    assert everything.context["cl"].result_count == 3
    assert "every shop" in everything.text and "two.myshopify.com" in everything.text
    assert "0.9912" in full.get(reverse("admin:jobs_jobrun_change", args=[across.pk])).text


@pytest.mark.django_db
def test_staff_see_a_run_abandoned_by_its_dead_worker_with_the_reason() -> None:
    _stalled_job(heartbeat_age_seconds=90)
    recover_stalled_jobs()
    with atomic_scope(service_scope()):
        admin = UserFactory(username="ops", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(admin)
    listing = client.get(reverse("admin:jobs_jobrun_changelist"), {"status__exact": "abandoned"})
    assert listing.context["cl"].result_count == 1
    assert "ABANDONED: worker stopped mid-run" in listing.text
    assert "queued again as attempt 2 of 3" in listing.text
    run = JobRun.objects.get()
    assert "90 s before this check" in client.get(reverse("admin:jobs_jobrun_change", args=[run.pk])).text
