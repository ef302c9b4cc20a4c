"""Job runs in the back office: read-only, failures first to the eye."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from procrastinate.contrib.django.admin import ProcrastinateJobAdmin
from procrastinate.contrib.django.models import ProcrastinateJob

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


class QueuedJobAdmin(ProcrastinateJobAdmin):
    """procrastinate's own page of queued jobs and their events, with every field read-only.

    procrastinate lists its computed columns (`pretty_args`, ...) in `fields` but not among the
    read-only ones; the admin's change view shows them read-only anyway (nobody may change a
    job), but a form built for the page outright, as the back office's form-field check does
    for every admin, would fail on them.
    """

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return list(dict.fromkeys([*super().get_readonly_fields(request, obj), *(self.fields or ())]))


admin.site.unregister(ProcrastinateJob)
admin.site.register(ProcrastinateJob, QueuedJobAdmin)
