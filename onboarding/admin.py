"""Admin for onboarding progress and feature tours."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from django.contrib import admin, messages
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest
from rest_framework.exceptions import APIException

from tenancy.admin import AuditedAdmin, ShopScopedAdmin
from tenancy.api.errors import flatten

from . import services
from .models import FeatureTour, OnboardingProgress

_M = TypeVar("_M", bound=models.Model)


def _apply_each(
    modeladmin: admin.ModelAdmin, request: HttpRequest, rows: QuerySet[_M], move: Callable[[_M], object], verb: str
) -> None:
    """Run a service move on each selected row; rows it refuses are reported, the rest applied."""
    done, refused = 0, []
    for row in rows:
        try:
            move(row)
        except APIException as exc:
            refused.append(f"{row}: {' '.join(error['message'] for error in flatten(exc.detail))}")
        else:
            done += 1
    if done:
        modeladmin.message_user(request, f"{verb} {done} row(s).", messages.SUCCESS)
    for reason in refused:
        modeladmin.message_user(request, f"Not {verb.lower()}: {reason}", messages.WARNING)


@admin.register(OnboardingProgress)
class OnboardingProgressAdmin(ShopScopedAdmin):
    list_display = (
        "user",
        "shop",
        "step_order",
        "step_key",
        "status",
        "started_at",
        "completed_at",
        "attempts",
        "time_spent_seconds",
    )
    list_select_related = ("user", "shop")
    list_filter = ("status", "step_key", "shop")
    search_fields = ("user__username", "user__email", "step_key", "shop__domain")
    date_hierarchy = "started_at"
    ordering = ("shop__domain", "user__username", "step_order")
    autocomplete_fields = ("user", "shop")
    actions = ("retry_steps",)

    @admin.action(description="Reopen selected completed or skipped steps (retry)", permissions=["change"])
    def retry_steps(self, request: HttpRequest, queryset: QuerySet[OnboardingProgress]) -> None:
        _apply_each(self, request, queryset, lambda row: services.onboarding_step_retry(progress=row), "Reopened")


@admin.register(FeatureTour)
class FeatureTourAdmin(AuditedAdmin):
    list_display = (
        "tour_name",
        "tour_key",
        "user",
        "status",
        "current_step",
        "times_shown",
        "interactions",
        "last_shown_at",
        "completed_at",
        "dismissed_at",
    )
    list_select_related = ("user",)
    list_filter = ("status", "tour_key")
    search_fields = ("tour_key", "tour_name", "user__username", "user__email")
    date_hierarchy = "last_shown_at"
    ordering = ("user__username", "tour_key")
    autocomplete_fields = ("user",)
    actions = ("dismiss_tours",)

    @admin.action(description="Dismiss selected pending or active tours", permissions=["change"])
    def dismiss_tours(self, request: HttpRequest, queryset: QuerySet[FeatureTour]) -> None:
        _apply_each(self, request, queryset, lambda tour: services.tour_dismiss(tour=tour), "Dismissed")
