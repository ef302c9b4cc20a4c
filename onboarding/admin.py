"""Admin for onboarding progress and feature tours."""

from __future__ import annotations

from django.contrib import admin

from tenancy.admin import AuditedAdmin, ShopScopedAdmin

from .models import FeatureTour, OnboardingProgress


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
