"""Job runs in the back office: read-only, failures first to the eye, each only to staff who may
see every shop it touched (a run's output names shops and their figures)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from procrastinate.contrib.django.admin import ProcrastinateJobAdmin
from procrastinate.contrib.django.models import ProcrastinateJob

from tenancy.admin import scope_shops

from .models import JobRun, JobStatus


def runs_visible(queryset: QuerySet[JobRun]) -> QuerySet[JobRun]:
    """The runs the current back-office scope may see: every run with the every-shop grant
    (superuser or tenancy.view_all_shops); otherwise only runs limited to a granted shop. A run
    across every shop (every scheduled job) prints every shop's domain and figures, so it fails
    closed: staff limited to some shops never see it, nor its output or error."""
    shops = scope_shops()
    if shops is None:
        return queryset
    return queryset.filter(shop__in=shops).exclude(shop="")


@admin.register(JobRun)
class JobRunAdmin(admin.ModelAdmin):
    list_display = ("job", "shop_label", "status_label", "started_at", "finished_at", "duration_seconds", "short_error")
    list_filter = ("status", "job")
    search_fields = ("job", "error")
    date_hierarchy = "started_at"
    readonly_fields = (
        "job",
        "shop_label",
        "arguments",
        "status_label",
        "started_at",
        "finished_at",
        "duration_seconds",
        "queue_job_id",
        "error",
        "output",
    )
    fields = readonly_fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[JobRun]:
        return runs_visible(super().get_queryset(request))

    @admin.display(description="shop", ordering="shop")
    def shop_label(self, run: JobRun) -> str:
        return run.shop or "every shop"

    @admin.display(description="status", ordering="status")
    def status_label(self, run: JobRun) -> str:
        # A run whose worker died says so in capitals: it is the one state nobody chose.
        if run.status == JobStatus.ABANDONED:
            return "ABANDONED: worker stopped mid-run"
        return run.get_status_display()

    @admin.display(description="error")
    def short_error(self, run: JobRun) -> str:
        lines = run.error.strip().splitlines()
        return lines[-1][:240] if lines else ""

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

    # The queue holds every shop's jobs (the scheduled ones span every shop): only staff with
    # the every-shop grant see it, like the runs across every shop.
    def has_module_permission(self, request: HttpRequest) -> bool:
        return scope_shops() is None and super().has_module_permission(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return scope_shops() is None and super().has_view_permission(request, obj)


admin.site.unregister(ProcrastinateJob)
admin.site.register(ProcrastinateJob, QueuedJobAdmin)
