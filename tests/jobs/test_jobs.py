"""Scheduled jobs: the schedule, the record of each run, the lock, the worker, the admin page."""

from __future__ import annotations

import ast
import datetime
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from croniter import croniter
from django.contrib.auth import get_user_model
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
from jobs.services import job_run
from tenancy.factories import ShopFactory
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
            cursor.execute("TRUNCATE procrastinate_jobs, procrastinate_periodic_defers CASCADE")

    empty()
    yield
    empty()


def run_worker_once() -> str:
    """`manage.py procrastinate worker --one-shot` on the test database: the real worker
    command, in its own process, until the queue is empty."""
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

    # The every-minute refine check is deferred by the worker too (and finds nothing to do).
    job = ProcrastinateJob.objects.get(task_name="jobs.generate_briefings")
    assert job.status == "succeeded"
    run = JobRun.objects.get()
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
    assert list(JobRun.objects.values_list("status", flat=True)) == ["succeeded", "succeeded"]


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
