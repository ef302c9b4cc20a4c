"""Admin for onboarding progress and feature tours."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.safestring import SafeString

from backoffice.actions import apply_each
from backoffice.bases import AuditedAdmin, ShopScopedAdmin
from backoffice.charts import Series, stacked_bar_chart
from tenancy.admin import SHOP_FILTER

from . import services
from .models import FeatureTour, OnboardingProgress, StepStatus
from .querysets import Funnel
from .steps import ONBOARDING_STEPS, onboarding_step_position


class OnboardingProgressForm(forms.ModelForm):
    """The rules the onboarding services follow, as form errors rather than constraint names."""

    def clean_step_key(self) -> str:
        step_key = str(self.cleaned_data["step_key"])
        # A row of a retired step may still be edited; a new key must be a canonical one.
        if onboarding_step_position(step_key) is None and step_key != self.instance.step_key:
            raise forms.ValidationError(f"Unknown onboarding step; expected one of: {', '.join(ONBOARDING_STEPS)}.")
        return step_key

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        status, started_at, completed_at = cleaned.get("status"), cleaned.get("started_at"), cleaned.get("completed_at")
        if status == StepStatus.COMPLETED and completed_at is None and "completed_at" not in self.errors:
            self.add_error("completed_at", "A completed step needs the time it was completed.")
        if started_at is not None and completed_at is not None and completed_at < started_at:
            self.add_error("completed_at", "Must not be before started at.")
        return cleaned


class FunnelForm(forms.Form):
    shop = forms.CharField(
        max_length=255, required=False, help_text="A shop's domain; empty for every shop you may see."
    )

    def clean_shop(self) -> str:
        return str(self.cleaned_data["shop"]).strip().lower()


# Completed first, then the other statuses: the bars read left to right from done to untouched.
FUNNEL_STATUSES = (StepStatus.COMPLETED, StepStatus.IN_PROGRESS, StepStatus.SKIPPED, StepStatus.NOT_STARTED)


def funnel_chart(funnel: Funnel) -> SafeString:
    return stacked_bar_chart(
        categories=[step.step_key for step in funnel.steps],
        stacks=[
            Series(str(status.label), [getattr(step, status.value) for step in funnel.steps])
            for status in FUNNEL_STATUSES
        ],
        title=f"Onboarding funnel: {funnel.participants} participant{'s' if funnel.participants != 1 else ''}",
        width=900,
    )


@admin.register(OnboardingProgress)
class OnboardingProgressAdmin(ShopScopedAdmin):
    form = OnboardingProgressForm
    change_list_template = "admin/onboarding/onboardingprogress/change_list.html"
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
    list_filter = ("status", "step_key", SHOP_FILTER)
    search_fields = ("user__username", "user__email", "step_key", "shop__domain")
    date_hierarchy = "started_at"
    ordering = ("shop__domain", "user__username", "step_order")
    autocomplete_fields = ("user", "shop")
    actions = ("retry_steps",)

    @admin.action(description="Reopen selected completed or skipped steps (retry)", permissions=["change"])
    def retry_steps(self, request: HttpRequest, queryset: QuerySet[OnboardingProgress]) -> None:
        apply_each(self, request, queryset, lambda row: services.onboarding_step_retry(progress=row), "Reopened")

    def get_urls(self) -> list[URLPattern]:
        funnel = path(
            "funnel/",
            self.admin_site.admin_view(self.funnel_view),
            name=f"{self.opts.app_label}_{self.opts.model_name}_funnel",
        )
        return [funnel, *super().get_urls()]

    def funnel_view(self, request: HttpRequest) -> HttpResponse:
        """Counts by status per canonical step, for every shop the staff user sees or for one."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        form = FunnelForm(request.GET)
        context: dict[str, Any] = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Onboarding funnel",
            "form": form,
        }
        if form.is_valid():
            shop = form.cleaned_data["shop"]
            rows = OnboardingProgress.objects.all()
            # Row level security limits the rows to the staff user's shops.
            funnel = (rows.filter(shop_id=shop) if shop else rows).funnel()
            changelist = reverse("admin:onboarding_onboardingprogress_changelist")
            context.update(
                subtitle=shop or "all shops",
                shop=shop,
                funnel=funnel,
                chart=funnel_chart(funnel),
                statuses=FUNNEL_STATUSES,
                table=[
                    {"step": step, "counts": [getattr(step, status.value) for status in FUNNEL_STATUSES]}
                    for step in funnel.steps
                ],
                rows_url=changelist + ("?" + urlencode({"shop__domain__exact": shop}) if shop else ""),
            )
        return TemplateResponse(request, "admin/onboarding/onboardingprogress/funnel.html", context)


class FeatureTourForm(forms.ModelForm):
    def clean_steps(self) -> Any:
        steps = self.cleaned_data["steps"]
        if not isinstance(steps, list):
            raise forms.ValidationError('Must be a JSON array of steps, e.g. [{"title": …, "body": …}].')
        return steps

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        steps, current = cleaned.get("steps"), cleaned.get("current_step")
        if isinstance(steps, list) and current is not None and current > 0 and current >= len(steps):
            self.add_error("current_step", f"Must index a step: 0 to {max(len(steps) - 1, 0)} for this tour.")
        return cleaned


@admin.register(FeatureTour)
class FeatureTourAdmin(AuditedAdmin):
    form = FeatureTourForm
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
        apply_each(self, request, queryset, lambda tour: services.tour_dismiss(tour=tour), "Dismissed")
