"""The record of every scheduled job's run, for staff in the admin (read-only)."""

from __future__ import annotations

from django.db import models
from django.db.models.functions import Now


class JobStatus(models.TextChoices):
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    # Another run of the same job held its lock: this one did nothing.
    SKIPPED = "skipped", "Skipped (already running)"
    # Its worker died mid-run (kill -9, the OOM killer, a deploy's SIGKILL): closed by
    # `jobs.services.recover_stalled_jobs`, the error says when the worker stopped and whether
    # the job was queued again or failed.
    ABANDONED = "abandoned", "Abandoned (worker stopped)"


class JobRun(models.Model):
    """One run of a job: which command with which arguments, how it ended, what it said.

    A system table (no row level security): written outside any tenant scope by
    `jobs.services.job_run`, closed once (by the run itself, or by `recover_stalled_jobs` when
    its worker died), never edited afterwards. Its output and error name shops and their
    figures (an analysis prints each experiment's verdict), so the admin shows a run only to
    staff who may see every shop it touched: `shop` for a run limited to one shop (`--shop`),
    blank for a run across every shop, which only staff with the every-shop grant see.
    """

    job = models.CharField(max_length=100)
    arguments = models.JSONField(default=list, blank=True)
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.RUNNING)
    started_at = models.DateTimeField(db_default=Now())
    finished_at = models.DateTimeField(null=True, blank=True)
    # The command's last lines of output and, on failure, the error (both capped).
    output = models.TextField(blank=True, default="")
    error = models.TextField(blank=True, default="")
    # The procrastinate job this run belongs to (null for a run started by hand or a test).
    queue_job_id = models.BigIntegerField(null=True, blank=True)
    # The one shop the run was limited to; blank: every shop (the scheduled jobs).
    shop = models.CharField(max_length=253, blank=True, default="")

    class Meta:
        db_table = "job_runs"
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["job", "-started_at"], name="job_runs_job_started_idx")]
        constraints = [
            models.CheckConstraint(condition=models.Q(status__in=JobStatus.values), name="job_runs_status_valid"),
            models.CheckConstraint(
                condition=models.Q(finished_at__isnull=True) | models.Q(finished_at__gte=models.F("started_at")),
                name="job_runs_finished_after_start",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.job} {self.status} at {self.started_at:%Y-%m-%d %H:%M}"

    @property
    def duration_seconds(self) -> float | None:
        if self.finished_at is None:
            return None
        return round((self.finished_at - self.started_at).total_seconds(), 1)
