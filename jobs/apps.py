from __future__ import annotations

from django.apps import AppConfig


class JobsConfig(AppConfig):
    """Scheduled jobs (procrastinate) and the record of their runs; see docs/operations.md."""

    name = "jobs"
    verbose_name = "Scheduled jobs"
