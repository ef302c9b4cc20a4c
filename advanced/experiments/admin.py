"""Experiments: read through their latest figures and a chart of each variant's conversion rate
with its confidence interval, and moved through their lifecycle by actions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from backoffice.actions import apply_each
from backoffice.bases import AUDIT_FIELDS, ReadOnlyTabularInline, ShopChildAdmin, ShopScopedAdmin
from backoffice.charts import IntervalRow, interval_chart
from tenancy.admin import SHOP_FILTER
from tenancy.errors import DomainError

from ..common import EMPTY
from . import stats
from .models import Experiment, ExperimentResult, ExperimentStatus
from .querysets import ExperimentResultQuerySet
from .review import render_review
from .services import (
    DESIGN_FIELDS,
    TRANSITIONS,
    design_errors,
    experiment_analyze,
    experiment_archive,
    experiment_complete,
    experiment_pause,
    experiment_resume,
    experiment_start,
    variant_errors,
)

RESULT_FIELDS = (
    "snapshot_date",
    "variant_key",
    "participants",
    "conversions",
    "conversion_rate",
    "avg_order_value",
    "revenue_per_user",
    "p_value",
    "confidence_interval_lower",
    "confidence_interval_upper",
)
LIFECYCLE_FIELDS = ("status", "started_at", "ended_at", "winning_variant", "confidence_level")


def percent(value: float) -> str:
    return f"{value * 100:.2f}%"


@dataclass(frozen=True)
class VariantRow:
    """One declared variant with its latest snapshot, as the experiment page shows it."""

    key: str
    name: str
    share: float | None
    is_control: bool
    is_winner: bool
    participants: int | None
    conversions: int | None
    rate: float | None
    interval: stats.Interval | None
    snapshot_date: Any

    @property
    def share_text(self) -> str:
        return EMPTY if self.share is None else f"{self.share:.0%}"

    @property
    def rate_text(self) -> str:
        if self.rate is None:
            return EMPTY
        if self.interval is None:
            return percent(self.rate)
        return f"{percent(self.rate)} ({percent(self.interval.lower)} to {percent(self.interval.upper)})"


def _declared_variants(experiment: Experiment) -> list[dict[str, Any]]:
    variants = experiment.variants if isinstance(experiment.variants, list) else []
    return [v for v in variants if isinstance(v, dict) and isinstance(v.get("key"), str)]


def experiment_variant_rows(experiment: Experiment) -> list[VariantRow]:
    """Each declared variant with its latest snapshot and the Wald interval of its rate at
    the experiment's confidence threshold (one query; cached on the instance)."""
    cached: list[VariantRow] | None = getattr(experiment, "_admin_variant_rows", None)
    if cached is not None:
        return cached
    latest = {
        row.variant_key: row
        for row in ExperimentResult.objects.filter(experiment_id=experiment.pk)
        .latest_per_variant()
        .only("variant_key", "snapshot_date", "participants", "conversions")
    }
    declared = _declared_variants(experiment)
    weights = [float(v["weight"]) for v in declared if isinstance(v.get("weight"), int | float)]
    total = sum(weights) if len(weights) == len(declared) else 0.0
    confidence = float(experiment.confidence_threshold)
    rows = []
    for variant in declared:
        key = str(variant["key"])
        snapshot = latest.get(key)
        participants = snapshot.participants if snapshot else None
        conversions = snapshot.conversions if snapshot else None
        rows.append(
            VariantRow(
                key=key,
                name=str(variant.get("name") or key),
                share=float(variant["weight"]) / total if total else None,
                is_control=variant.get("is_control") is True,
                is_winner=bool(experiment.winning_variant) and experiment.winning_variant == key,
                participants=participants,
                conversions=conversions,
                rate=None if snapshot is None else stats.conversion_rate(snapshot.participants, snapshot.conversions),
                interval=None
                if snapshot is None
                else stats.rate_interval(snapshot.participants, snapshot.conversions, confidence),
                snapshot_date=snapshot.snapshot_date if snapshot else None,
            )
        )
    experiment._admin_variant_rows = rows  # type: ignore[attr-defined]
    return rows


def experiment_chart(experiment: Experiment) -> SafeString:
    """Each variant's conversion rate with its Wald interval, as inline SVG."""
    rows = experiment_variant_rows(experiment)
    confidence = float(experiment.confidence_threshold)
    control = next((row for row in rows if row.is_control and row.rate is not None), None)
    dates = sorted({row.snapshot_date for row in rows if row.snapshot_date is not None})
    as_of = f", snapshot of {dates[-1]}" if dates else ""
    return interval_chart(
        rows=[
            IntervalRow(
                label=f"{row.name} ({row.key})" + (" ★ winner" if row.is_winner else ""),
                value=row.rate,
                lower=row.interval.lower if row.interval else None,
                upper=row.interval.upper if row.interval else None,
                detail="" if row.participants is None else f"{row.conversions:,} / {row.participants:,}",
                highlight=row.is_winner,
            )
            for row in rows
        ],
        title=f"Conversion rate with its {confidence:.0%} confidence interval (Wald){as_of}",
        value_label="conversion rate",
        reference=None if control is None else control.rate,
        reference_label="control",
        value_format=percent,
    )


class ExperimentResultInline(ReadOnlyTabularInline):
    model = ExperimentResult
    fields = RESULT_FIELDS
    readonly_fields = RESULT_FIELDS
    verbose_name_plural = "latest results per variant"

    def get_queryset(self, request: HttpRequest) -> QuerySet[ExperimentResult]:
        return cast(ExperimentResultQuerySet, super().get_queryset(request)).latest_per_variant()


class ExperimentForm(forms.ModelForm):
    def clean_variants(self) -> Any:
        variants = self.cleaned_data.get("variants")
        errors = variant_errors(variants)
        if errors:
            raise forms.ValidationError(errors)
        return variants

    def clean(self) -> dict[str, Any] | None:
        cleaned = super().clean() or {}
        design = {name: cleaned.get(name, getattr(self.instance, name, None)) for name in DESIGN_FIELDS}
        for name, reason in design_errors(design).items():
            self.add_error(name if name in self.fields else None, reason)
        return cleaned


class WinnerForm(forms.Form):
    """The variant a completed experiment records as its winner."""

    winner = forms.ChoiceField(widget=forms.RadioSelect, label="Winning variant")

    def __init__(self, *args: Any, experiment: Experiment, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        analysed = experiment.winning_variant
        choices = []
        for variant in _declared_variants(experiment):
            key = str(variant["key"])
            label = f"{variant.get('name') or key} ({key})"
            if variant.get("is_control") is True:
                label += ", control"
            if key == analysed:
                level = experiment.confidence_level
                label += " — the analysis' winner" + (f" at {float(level):.2%} confidence" if level is not None else "")
            choices.append((key, label))
        cast(forms.ChoiceField, self.fields["winner"]).choices = choices
        if analysed in {key for key, _ in choices}:
            self.fields["winner"].initial = analysed


@admin.register(Experiment)
class ExperimentAdmin(ShopScopedAdmin):
    form = ExperimentForm
    list_display = (
        "experiment_name",
        "shop",
        "status",
        "primary_metric",
        "winning_variant",
        "confidence",
        "started_at",
        "ended_at",
    )
    list_filter = ("status", "primary_metric", SHOP_FILTER)
    search_fields = ("experiment_name", "experiment_key", "shop__domain")
    date_hierarchy = "started_at"
    ordering = ("-started_at",)
    inlines = (ExperimentResultInline,)
    actions = (
        "analyze_experiments",
        "start_experiments",
        "pause_experiments",
        "resume_experiments",
        "complete_with_winner",
        "complete_experiments",
        "archive_experiments",
    )

    def get_fieldsets(self, request: HttpRequest, obj: Experiment | None = None) -> Any:
        described = (
            "shop",
            "experiment_key",
            "experiment_name",
            "description",
            "primary_metric",
            "confidence_threshold",
            "min_sample_size",
        )
        # Variants are the experiment's design: editable as JSON while it is a draft, a
        # table once traffic is split by them.
        variants = ("variants",) if obj is None else ("variants_table", "variants")
        if obj is not None and obj.status != ExperimentStatus.DRAFT:
            variants = ("variants_table",)
        fieldsets: list[tuple[str | None, dict[str, Any]]] = [
            ("Experiment", {"fields": described}),
            ("Variants", {"fields": variants}),
            ("Analysis design", {"fields": (*DESIGN_FIELDS, "target_mde")}),
            ("Lifecycle", {"fields": LIFECYCLE_FIELDS}),
        ]
        if obj is not None:
            fieldsets.insert(0, ("Review", {"fields": ("review_panel",)}))
            fieldsets.append(("Results", {"fields": ("conversion_chart", "all_snapshots")}))
            fieldsets.append(("Audit", {"classes": ("collapse",), "fields": AUDIT_FIELDS}))
        return fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj: Experiment | None = None) -> tuple[str, ...]:
        shown = (
            "review_panel",
            "variants_table",
            "conversion_chart",
            "all_snapshots",
            *LIFECYCLE_FIELDS,
            *AUDIT_FIELDS,
        )
        if obj is not None and obj.status != ExperimentStatus.DRAFT:
            # Results are keyed by these: renaming them would orphan the data collected; the
            # design is how they are judged, chosen before looking.
            return ("experiment_key", "variants", *DESIGN_FIELDS, *shown)
        return shown

    @admin.display(description="confidence", ordering="confidence_level")
    def confidence(self, obj: Experiment) -> str:
        return EMPTY if obj.confidence_level is None else f"{float(obj.confidence_level):.2%}"

    @admin.display(description="variants")
    def variants_table(self, obj: Experiment) -> str:
        if obj.pk is None:
            return EMPTY
        return render_to_string("admin/advanced/experiment/variants_table.html", {"rows": experiment_variant_rows(obj)})

    @admin.display(description="review")
    def review_panel(self, obj: Experiment) -> str:
        return EMPTY if obj.pk is None else render_review(obj)

    @admin.display(description="conversion rate by variant")
    def conversion_chart(self, obj: Experiment) -> str:
        return EMPTY if obj.pk is None else experiment_chart(obj)

    @admin.display(description="history")
    def all_snapshots(self, obj: Experiment) -> str:
        if obj.pk is None:
            return EMPTY
        url = reverse("admin:advanced_experimentresult_changelist")
        return format_html(
            '<a href="{}?experiment__id__exact={}">Every daily snapshot of this experiment</a>', url, obj.pk
        )

    # Actions: one service call per selected experiment; a refusal is reported and changes nothing.

    def _each(
        self, request: HttpRequest, queryset: QuerySet[Experiment], verb: str, move: Callable[[Experiment], object]
    ) -> None:
        apply_each(
            self, request, queryset.order_by("pk"), move, verb, noun="experiment(s)", refused_level=messages.ERROR
        )

    @admin.action(description="Analyze now (statistics and winner)", permissions=["change"])
    def analyze_experiments(self, request: HttpRequest, queryset: QuerySet[Experiment]) -> None:
        def analyze(experiment: Experiment) -> None:
            result = experiment_analyze(experiment=experiment)
            if result.winner:
                verdict = f"winner {result.winner} at {result.confidence_level or 0:.2%} confidence"
            else:
                verdict = f"no winner ({' '.join(result.reasons)})"
            warnings = f" Warnings: {' '.join(result.warnings)}" if result.warnings else ""
            self.message_user(request, f"{experiment}: {verdict}.{warnings}", messages.INFO)

        self._each(request, queryset, "Analyzed", analyze)

    @admin.action(description="Start selected draft experiments", permissions=["change"])
    def start_experiments(self, request: HttpRequest, queryset: QuerySet[Experiment]) -> None:
        self._each(request, queryset, "Started", lambda e: experiment_start(experiment=e))

    @admin.action(description="Pause selected running experiments", permissions=["change"])
    def pause_experiments(self, request: HttpRequest, queryset: QuerySet[Experiment]) -> None:
        self._each(request, queryset, "Paused", lambda e: experiment_pause(experiment=e))

    @admin.action(description="Resume selected paused experiments", permissions=["change"])
    def resume_experiments(self, request: HttpRequest, queryset: QuerySet[Experiment]) -> None:
        self._each(request, queryset, "Resumed", lambda e: experiment_resume(experiment=e))

    @admin.action(
        description="Complete without choosing a winner (keeps the analysis' verdict)", permissions=("change",)
    )
    def complete_experiments(self, request: HttpRequest, queryset: QuerySet[Experiment]) -> None:
        self._each(request, queryset, "Completed", lambda e: experiment_complete(experiment=e, winner=None))

    @admin.action(description="Archive selected completed experiments", permissions=["change"])
    def archive_experiments(self, request: HttpRequest, queryset: QuerySet[Experiment]) -> None:
        self._each(request, queryset, "Archived", lambda e: experiment_archive(experiment=e))

    @admin.action(description="Complete with a winner…", permissions=["change"])
    def complete_with_winner(self, request: HttpRequest, queryset: QuerySet[Experiment]) -> HttpResponse | None:
        """An intermediate page to pick the winner among the experiment's own variants."""
        selected = list(queryset[:2])
        if len(selected) != 1:
            self.message_user(
                request,
                "Select exactly one experiment to complete with a winner: the winner is one of its own variants.",
                messages.ERROR,
            )
            return None
        experiment = selected[0]
        if "complete" not in TRANSITIONS.get(experiment.status, {}):
            self.message_user(
                request,
                f"Not completed: {experiment} is {experiment.status}; only running or paused experiments can be "
                "completed.",
                messages.ERROR,
            )
            return None
        form = WinnerForm(request.POST if "apply" in request.POST else None, experiment=experiment)
        if form.is_bound and form.is_valid():
            try:
                completed = experiment_complete(experiment=experiment, winner=form.cleaned_data["winner"])
            except DomainError as exc:
                for name, message in exc.problems:
                    form.add_error("winner" if name in {"winner", "winning_variant"} else None, message)
            else:
                self.message_user(
                    request, f"Completed {completed} with winner {completed.winning_variant}.", messages.SUCCESS
                )
                return None
        context = {
            **self.admin_site.each_context(request),
            "title": f"Complete {experiment} with a winner",
            "opts": self.model._meta,
            "experiment": experiment,
            "form": form,
            "chart": experiment_chart(experiment),
            "variants_table": self.variants_table(experiment),
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/advanced/experiment/complete_with_winner.html", context)


@admin.register(ExperimentResult)
class ExperimentResultAdmin(ShopChildAdmin):
    parent_field = "experiment"
    list_display = ("experiment", "shop", *RESULT_FIELDS, "revenue_per_user_stddev")
    list_select_related = ("experiment", "shop")
    list_filter = (SHOP_FILTER,)
    search_fields = ("experiment__experiment_name", "experiment__experiment_key", "variant_key", "shop__domain")
    date_hierarchy = "snapshot_date"
    ordering = ("-snapshot_date", "experiment__experiment_name", "variant_key")
    autocomplete_fields = ("experiment",)
    readonly_fields = ("shop", "conversion_rate", *AUDIT_FIELDS)
