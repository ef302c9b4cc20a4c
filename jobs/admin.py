"""Job runs in the back office: read-only, failures first to the eye."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from .models import JobRun


@admin.register(JobRun)
class JobRunAdmin(admin.ModelAdmin):
    list_display = ("job", "status", "started_at", "finished_at", "duration_seconds", "short_error")
    list_filter = ("status", "job")
    search_fields = ("job", "error")
    date_hierarchy = "started_at"
    readonly_fields = (
        "job",
        "arguments",
        "status",
        "started_at",
        "finished_at",
        "duration_seconds",
        "queue_job_id",
        "error",
        "output",
    )
    fields = readonly_fields

    @admin.display(description="error")
    def short_error(self, run: JobRun) -> str:
        lines = run.error.strip().splitlines()
        return lines[-1][:160] if lines else ""

    # The record is what happened: nobody adds, edits or deletes it from the admin.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
