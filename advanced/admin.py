"""Admin for experiments and their results, the knowledge base and CEO briefings."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.db.models import BooleanField, ExpressionWrapper, Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from rest_framework.exceptions import APIException

from tenancy.admin import AUDIT_FIELDS, ReadOnlyTabularInline, ShopChildAdmin, ShopScopedAdmin
from tenancy.api.errors import flatten
from tenancy.models import User

from .models import CeoBriefing, Experiment, ExperimentResult, KnowledgeDocument
from .services.experiments import (
    experiment_analyze,
    experiment_archive,
    experiment_complete,
    experiment_pause,
    experiment_resume,
    experiment_start,
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


class ExperimentResultInline(ReadOnlyTabularInline):
    model = ExperimentResult
    fields = RESULT_FIELDS
    readonly_fields = RESULT_FIELDS
    ordering = ("-snapshot_date", "variant_key")
    verbose_name_plural = "results (latest 30 snapshots)"


@admin.register(Experiment)
class ExperimentAdmin(ShopScopedAdmin):
    list_display = (
        "experiment_name",
        "experiment_key",
        "shop",
        "status",
        "primary_metric",
        "started_at",
        "ended_at",
        "winning_variant",
        "confidence_level",
    )
    list_filter = ("status", "primary_metric", "shop")
    search_fields = ("experiment_name", "experiment_key", "shop__domain")
    date_hierarchy = "started_at"
    ordering = ("-started_at",)
    inlines = (ExperimentResultInline,)
    actions = (
        "start_experiments",
        "pause_experiments",
        "resume_experiments",
        "complete_experiments",
        "archive_experiments",
        "analyze_experiments",
    )

    def _each(
        self, request: HttpRequest, queryset: QuerySet[Experiment], verb: str, move: Callable[[Experiment], object]
    ) -> None:
        """Run a lifecycle service on each selected experiment; refusals are reported, not fatal."""
        done, refused = 0, []
        for experiment in queryset:
            try:
                move(experiment)
            except APIException as exc:
                refused.append(f"{experiment}: {' '.join(error['message'] for error in flatten(exc.detail))}")
            else:
                done += 1
        if done:
            self.message_user(request, f"{verb} {done} experiment(s).", messages.SUCCESS)
        for reason in refused:
            self.message_user(request, f"Not {verb.lower()}: {reason}", messages.WARNING)

    @admin.action(description="Start selected draft experiments", permissions=["change"])
    def start_experiments(self, request: HttpRequest, queryset: QuerySet[Experiment]) -> None:
        self._each(request, queryset, "Started", lambda e: experiment_start(experiment=e))

    @admin.action(description="Pause selected running experiments", permissions=["change"])
    def pause_experiments(self, request: HttpRequest, queryset: QuerySet[Experiment]) -> None:
        self._each(request, queryset, "Paused", lambda e: experiment_pause(experiment=e))

    @admin.action(description="Resume selected paused experiments", permissions=["change"])
    def resume_experiments(self, request: HttpRequest, queryset: QuerySet[Experiment]) -> None:
        self._each(request, queryset, "Resumed", lambda e: experiment_resume(experiment=e))

    @admin.action(description="Complete selected experiments (keeping the analysis' winner)", permissions=["change"])
    def complete_experiments(self, request: HttpRequest, queryset: QuerySet[Experiment]) -> None:
        self._each(request, queryset, "Completed", lambda e: experiment_complete(experiment=e, winner=None))

    @admin.action(description="Archive selected completed experiments", permissions=["change"])
    def archive_experiments(self, request: HttpRequest, queryset: QuerySet[Experiment]) -> None:
        self._each(request, queryset, "Archived", lambda e: experiment_archive(experiment=e))

    @admin.action(description="Analyse selected experiments (statistics and winner)", permissions=["change"])
    def analyze_experiments(self, request: HttpRequest, queryset: QuerySet[Experiment]) -> None:
        def analyze(experiment: Experiment) -> None:
            result = experiment_analyze(experiment=experiment)
            verdict = f"winner {result.winner}" if result.winner else f"no winner ({'; '.join(result.reasons)})"
            self.message_user(request, f"{experiment}: {verdict}", messages.INFO)

        self._each(request, queryset, "Analysed", analyze)


@admin.register(ExperimentResult)
class ExperimentResultAdmin(ShopChildAdmin):
    parent_field = "experiment"
    list_display = ("experiment", "shop", *RESULT_FIELDS, "revenue_per_user_stddev")
    list_select_related = ("experiment", "shop")
    list_filter = ("shop",)
    search_fields = ("experiment__experiment_name", "experiment__experiment_key", "variant_key", "shop__domain")
    date_hierarchy = "snapshot_date"
    ordering = ("-snapshot_date", "experiment__experiment_name", "variant_key")
    autocomplete_fields = ("experiment",)
    readonly_fields = ("shop", "conversion_rate", *AUDIT_FIELDS)


@admin.register(KnowledgeDocument)
class KnowledgeDocumentAdmin(ShopScopedAdmin):
    list_display = (
        "title",
        "document_key",
        "version",
        "is_current",
        "shop",
        "document_type",
        "has_embedding",
        "embedding_model",
        "updated_at",
    )
    list_filter = ("document_type", "is_current", "embedding_model", "shop")
    search_fields = ("title", "document_key", "shop__domain")
    date_hierarchy = "created_at"
    ordering = ("shop__domain", "document_key", "-version")
    raw_id_fields = ("previous_version",)
    # A vector(1536) is ~20 kB of text per row: neither the list nor the form loads it, and a
    # form without the field leaves the stored embedding alone when staff edit the text.
    exclude = ("embedding",)
    readonly_fields = ("has_embedding", *AUDIT_FIELDS)

    def get_queryset(self, request: HttpRequest) -> QuerySet[KnowledgeDocument]:
        return (
            super()
            .get_queryset(request)
            .defer("embedding")
            .annotate(embedding_present=ExpressionWrapper(Q(embedding__isnull=False), output_field=BooleanField()))
        )

    @admin.display(description="has embedding", boolean=True, ordering="embedding_present")
    def has_embedding(self, obj: KnowledgeDocument) -> bool:
        # Rows that did not come from get_queryset (the add page's empty instance) have no flag.
        return bool(getattr(obj, "embedding_present", False))


# Generated by the briefing job; on an existing briefing staff only rate it and leave notes.
GENERATED_BRIEFING_FIELDS = (
    "shop",
    "briefing_type",
    "period_start",
    "period_end",
    "executive_summary",
    "key_metrics",
    "insights",
    "generation_model",
    "generation_tokens",
)
REVIEW_FIELDS = ("rating", "feedback_notes")


@admin.register(CeoBriefing)
class CeoBriefingAdmin(ShopScopedAdmin):
    list_display = (
        "__str__",
        "shop",
        "briefing_type",
        "period_start",
        "period_end",
        "rating",
        "reviewed_by",
        "reviewed_at",
        "generation_model",
    )
    list_select_related = ("shop", "reviewed_by")
    list_filter = ("briefing_type", "rating", "generation_model", "shop")
    search_fields = ("executive_summary", "shop__domain")
    date_hierarchy = "period_end"
    ordering = ("-period_end", "shop__domain")
    readonly_fields = ("reviewed_by", "reviewed_at", *AUDIT_FIELDS)

    def get_readonly_fields(self, request: HttpRequest, obj: CeoBriefing | None = None) -> tuple[str, ...]:
        base = tuple(super().get_readonly_fields(request, obj))
        return (*GENERATED_BRIEFING_FIELDS, *base) if obj is not None else base

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        # The reviewer is whoever last rated the briefing or wrote notes on it, not a choice.
        if set(REVIEW_FIELDS) & set(form.changed_data) and isinstance(request.user, User):
            obj.reviewed_by = request.user
            obj.reviewed_at = timezone.now()
        super().save_model(request, obj, form, change)
