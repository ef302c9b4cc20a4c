"""Back office for experiments and their results, the knowledge base and CEO briefings.

Staff review here: briefings are read as a report (summary, metrics table, ranked insights) and
rated; experiments are read through their latest figures and a chart of each variant's
conversion rate with its confidence interval, and moved through their lifecycle by actions;
knowledge documents are edited as new versions. Every write goes through the services of
`advanced.services`, and a service's refusal is shown where the input was given: as a form
error on a change page, as an error message for an action. Nothing is half-saved.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar, cast

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db import models, transaction
from django.db.models import BooleanField, ExpressionWrapper, F, Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.text import capfirst
from rest_framework.exceptions import APIException

from tenancy.admin import AUDIT_FIELDS, SHOP_FILTER, ReadOnlyTabularInline, ShopChildAdmin, ShopScopedAdmin
from tenancy.api.errors import flatten
from tenancy.charts import IntervalRow, interval_chart
from tenancy.models import User

from . import stats
from .models import CeoBriefing, Experiment, ExperimentResult, ExperimentStatus, KnowledgeDocument
from .querysets import CeoBriefingQuerySet, ExperimentResultQuerySet
from .review import render_review
from .services.experiments import (
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
from .services.knowledge import knowledge_document_delete, knowledge_document_revise, knowledge_document_save
from .services.reviews import briefing_review, briefing_review_errors, briefings_mark_reviewed

EMPTY = "—"

# --- forms whose save is a service call ----------------------------------------------------


def service_messages(exc: APIException) -> list[tuple[str | None, str]]:
    """(field or None, message) of every problem a service's refusal names."""
    return [(error["field"], error["message"]) for error in flatten(exc.detail)]


class ServiceModelForm(forms.ModelForm):
    """A model form whose save is a service call, made as the last step of validation.

    The service runs in a savepoint once every field is valid: if it refuses (a rule only it
    checks, a concurrent change, a provider failure), the savepoint is rolled back and the
    refusal becomes a form error, so the page shows it next to the input and nothing was
    written. The admins using these forms have no inlines, so nothing can fail after it.
    """

    # The staff user saving the form; set per request by ServiceFormAdmin.get_form.
    actor: ClassVar[User | None] = None
    saved: models.Model | None = None

    def perform(self) -> models.Model | None:
        """Call the service; return the row it saved (None: there was nothing to save)."""
        raise NotImplementedError

    def full_clean(self) -> None:
        super().full_clean()
        if not self.is_bound or self.errors:
            return
        try:
            with transaction.atomic():
                self.saved = self.perform()
        except APIException as exc:
            for name, message in service_messages(exc):
                self.add_error(name if name in self.fields else None, message)


class ServiceFormAdmin(ShopScopedAdmin):
    """Saves through the form's service call (ServiceModelForm) instead of `obj.save()`."""

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        if issubclass(form, ServiceModelForm):
            # A subclass per request: the actor must never be shared between requests.
            form = cast(Any, type(form.__name__, (form,), {"actor": request.user}))
        return form

    def save_form(self, request: HttpRequest, form: Any, change: bool) -> Any:
        instance = form.save(commit=False)
        if isinstance(form, ServiceModelForm) and form.saved is not None:
            # The row the service wrote (a new knowledge version has a new id): the admin's
            # log entry and redirect must name it.
            return form.saved
        return instance

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if isinstance(form, ServiceModelForm):
            return
        super().save_model(request, obj, form, change)


# --- experiments ----------------------------------------------------------------------------

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
        done, refused = 0, []
        for experiment in queryset.order_by("pk"):
            try:
                move(experiment)
            except APIException as exc:
                refused.append(f"{experiment}: {' '.join(message for _, message in service_messages(exc))}")
            else:
                done += 1
        if done:
            self.message_user(request, f"{verb} {done} experiment(s).", messages.SUCCESS)
        for reason in refused:
            self.message_user(request, f"Not {verb.lower()}: {reason}", messages.ERROR)

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
            except APIException as exc:
                for name, message in service_messages(exc):
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


# --- knowledge documents --------------------------------------------------------------------

DOCUMENT_FIELDS = ("title", "content", "document_type", "tags", "source_url")


class KnowledgeDocumentAddForm(ServiceModelForm):
    """Version 1 of a new document, embedded by the configured provider."""

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        shop, key = cleaned.get("shop"), cleaned.get("document_key")
        if shop is not None and key:
            current = KnowledgeDocument.objects.filter(shop=shop, document_key=key).order_by("-version").first()
            if current is not None:
                self.add_error(
                    "document_key",
                    f"{shop} already has a document {key!r} (version {current.version}); edit its current version "
                    "to add a new one.",
                )
        return cleaned

    def perform(self) -> KnowledgeDocument:
        data = self.cleaned_data
        return knowledge_document_save(
            shop_id=data["shop"].pk,
            document_key=data["document_key"],
            **{name: data[name] for name in DOCUMENT_FIELDS},
            actor=None if self.actor is None else str(self.actor.pk),
        )


class KnowledgeDocumentReviseForm(ServiceModelForm):
    """The edit of a current version, saved as the next version (history is never edited)."""

    def perform(self) -> KnowledgeDocument | None:
        # The form has already copied the edits onto self.instance: compare with the stored
        # version (the service also decides from it whether the text, so the embedding, changed).
        stored = KnowledgeDocument.objects.defer("embedding").get(pk=self.instance.pk)
        changes = {
            name: self.cleaned_data[name]
            for name in DOCUMENT_FIELDS
            if name in self.cleaned_data and self.cleaned_data[name] != getattr(stored, name)
        }
        if not changes:
            return None
        return knowledge_document_revise(
            document=stored, changes=changes, actor=None if self.actor is None else str(self.actor.pk)
        )


@dataclass(frozen=True)
class VersionRow:
    pk: int
    version: int
    is_current: bool
    title: str
    created_at: Any
    created_by: str | None
    previous_version_id: int | None
    url: str


def document_versions(document: KnowledgeDocument) -> list[VersionRow]:
    """Every version of the document's key, newest first (one query, never the embedding)."""
    cached: list[VersionRow] | None = getattr(document, "_admin_versions", None)
    if cached is not None:
        return cached
    rows = (
        KnowledgeDocument.objects.versions_of(document.document_key)
        .for_shop(document.shop_id)
        .values("pk", "version", "is_current", "title", "created_at", "created_by", "previous_version_id")
    )
    versions = [
        VersionRow(**row, url=reverse("admin:advanced_knowledgedocument_change", args=[row["pk"]])) for row in rows
    ]
    document._admin_versions = versions  # type: ignore[attr-defined]
    return versions


@admin.register(KnowledgeDocument)
class KnowledgeDocumentAdmin(ServiceFormAdmin):
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
    list_filter = ("document_type", "is_current", "embedding_model", SHOP_FILTER)
    search_fields = ("title", "document_key", "shop__domain")
    date_hierarchy = "created_at"
    ordering = ("shop__domain", "document_key", "-version")
    # A vector(1536) is ~20 kB of text per row: neither the list nor the form loads it, and a
    # form without the field leaves the stored embedding alone.
    exclude = ("embedding",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[KnowledgeDocument]:
        return (
            super()
            .get_queryset(request)
            .defer("embedding")
            .annotate(embedding_present=ExpressionWrapper(Q(embedding__isnull=False), output_field=BooleanField()))
        )

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        if obj is None:
            kwargs["form"] = KnowledgeDocumentAddForm
        elif obj.is_current:
            kwargs["form"] = KnowledgeDocumentReviseForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fieldsets(self, request: HttpRequest, obj: KnowledgeDocument | None = None) -> Any:
        if obj is None:
            return [
                (
                    None,
                    {
                        "fields": ("shop", "document_key", *DOCUMENT_FIELDS),
                        "description": "Saved as version 1; its embedding is computed when you save.",
                    },
                )
            ]
        note = (
            "Saving stores your edit as a new version; this one stays in the history unchanged."
            if obj.is_current
            else "An earlier version: history is read-only. Edit the current version to change the document."
        )
        return [
            ("Document", {"fields": ("shop", "document_key", *DOCUMENT_FIELDS), "description": note}),
            ("Versions", {"fields": ("version", "is_current", "version_links", "version_history")}),
            ("Embedding", {"fields": ("has_embedding", "embedding_model")}),
            ("Audit", {"classes": ("collapse",), "fields": AUDIT_FIELDS}),
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: KnowledgeDocument | None = None) -> tuple[str, ...]:
        shown = (
            "version",
            "is_current",
            "version_links",
            "version_history",
            "has_embedding",
            "embedding_model",
            *AUDIT_FIELDS,
        )
        if obj is None:
            return shown
        if not obj.is_current:
            return ("shop", "document_key", *DOCUMENT_FIELDS, *shown)
        return ("shop", "document_key", *shown)

    def has_change_permission(self, request: HttpRequest, obj: KnowledgeDocument | None = None) -> bool:
        # History is read-only: an earlier version's page is a view, with no save buttons.
        if obj is not None and not obj.is_current:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: KnowledgeDocument | None = None) -> bool:
        # A document is deleted with its whole history, through its current version.
        if obj is not None and not obj.is_current:
            return False
        return super().has_delete_permission(request, obj)

    def delete_model(self, request: HttpRequest, obj: KnowledgeDocument) -> None:
        knowledge_document_delete(document=obj)

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> Any:
        # "Delete selected" removes whole documents, through their current versions (see
        # delete_queryset): the confirmation lists every version that goes, and only those.
        # History versions are not passed to Django's collector, whose per-object permission
        # check would refuse them (they cannot be deleted on their own).
        currents = [obj for obj in objs if obj.is_current]
        deleted, counts, perms_needed, protected = super().get_deleted_objects(currents, request)
        documents = Q(pk__in=[])
        for obj in currents:
            documents |= Q(shop_id=obj.shop_id, document_key=obj.document_key)
        history = list(KnowledgeDocument.objects.filter(documents, is_current=False).defer("embedding"))
        label = capfirst(str(KnowledgeDocument._meta.verbose_name))
        deleted = [*deleted, *(f"{label}: {obj} (an earlier version, deleted with its document)" for obj in history)]
        if history:
            plural = str(KnowledgeDocument._meta.verbose_name_plural)
            counts[plural] = counts.get(plural, 0) + len(history)
        return deleted, counts, perms_needed, protected

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[KnowledgeDocument]) -> None:
        """The bulk "delete selected": each selected current version deletes its document with
        its whole history (as the single delete does); selected history versions are kept."""
        selected = list(queryset.defer("embedding"))
        deleting = {(obj.shop_id, obj.document_key) for obj in selected if obj.is_current}
        kept = [obj for obj in selected if (obj.shop_id, obj.document_key) not in deleting]
        with transaction.atomic():
            for obj in selected:
                if obj.is_current:
                    knowledge_document_delete(document=obj)
        if kept:
            self.message_user(
                request,
                f"Not deleted: {len(kept)} earlier version(s) selected without their document's current "
                "version. A document is deleted with its whole history, through its current version.",
                messages.WARNING,
            )

    def response_change(self, request: HttpRequest, obj: KnowledgeDocument) -> HttpResponse:
        response = super().response_change(request, obj)
        page = reverse("admin:advanced_knowledgedocument_change", args=[obj.pk])
        if request.path != page:
            # The edit was saved as a new version: say so, and continue on that version's page.
            self.message_user(
                request,
                f"Saved as version {obj.version}; version {obj.version - 1} stays in the history unchanged.",
                messages.INFO,
            )
            if "_continue" in request.POST:
                return HttpResponseRedirect(page)
        return response

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if request.method == "POST":
            document = self.get_object(request, unquote(object_id))
            if document is not None and not document.is_current:
                # The page was opened while this version was current; someone saved a newer one since.
                current = next((v for v in document_versions(document) if v.is_current), None)
                newer = f"version {current.version} is" if current else "no version is"
                self.message_user(
                    request,
                    f"Not saved: version {document.version} of {document.document_key!r} is no longer current "
                    f"({newer}). Edit the current version.",
                    messages.ERROR,
                )
                return HttpResponseRedirect(current.url if current else request.path)
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.display(description="has embedding", boolean=True, ordering="embedding_present")
    def has_embedding(self, obj: KnowledgeDocument) -> bool:
        # Rows that did not come from get_queryset (the add page's empty instance) have no flag.
        return bool(getattr(obj, "embedding_present", False))

    @admin.display(description="previous / next")
    def version_links(self, obj: KnowledgeDocument) -> str:
        if obj.pk is None:
            return EMPTY
        versions = document_versions(obj)
        previous = next((v for v in versions if v.pk == obj.previous_version_id), None)
        if previous is None:
            previous = next((v for v in versions if v.version == obj.version - 1), None)
        following = next((v for v in versions if v.previous_version_id == obj.pk), None)
        if following is None:
            following = next((v for v in versions if v.version == obj.version + 1), None)
        return render_to_string(
            "admin/advanced/knowledgedocument/version_links.html", {"previous": previous, "next": following}
        )

    @admin.display(description="version history")
    def version_history(self, obj: KnowledgeDocument) -> str:
        if obj.pk is None:
            return EMPTY
        return render_to_string(
            "admin/advanced/knowledgedocument/version_history.html",
            {"versions": document_versions(obj), "shown": obj.pk},
        )


# --- CEO briefings --------------------------------------------------------------------------

FIGURE_KEYS = ("current", "previous", "change", "change_pct")
# Parts of a figure that add nothing the sign of its change does not say.
REDUNDANT_FIGURE_KEYS = frozenset({"trend"})
WORDS = {
    "roas": "ROAS",
    "seo": "SEO",
    "ctr": "CTR",
    "cpc": "CPC",
    "cpa": "CPA",
    "pct": "%",
    "id": "ID",
    "url": "URL",
    "top10": "top 10",
}
PLAIN_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")
# jsonb stores an object's keys by length, not as written: "roas" comes before "spend". The
# report puts the names the briefing job writes in reading order; other keys follow as stored.
READING_ORDER = {
    name: position
    for position, name in enumerate(
        (
            *("period", "ads", "seo", "social", "experiments", "onboarding"),
            *("type", "start", "end", "days", "previous_start", "previous_end", "previous_days"),
            *("currencies", "spend", "revenue", "roas"),
            *("latest_audit_at", "previous_audit_at", "scores", "technical", "content", "performance"),
            *("keywords_entered_top10", "keywords_left_top10", "top_posts", "concluded"),
            *("steps_total", "steps_completed", "completion_pct", "completed_in_period"),
            *("keyword", "search_engine", "location", "best_position", "previous_best_position"),
            *("platform", "platform_post_id", "post_url", "measured_at", "engagement_rate"),
            *("reach", "likes", "comments", "shares", "social_post_id"),
            *("experiment_name", "experiment_key", "ended_at", "winning_variant", "winning_variant_name"),
            *("confidence_level", "experiment_id"),
        )
    )
}


def in_reading_order(keys: Any) -> list[str]:
    names = [str(key) for key in keys]
    return sorted(names, key=lambda name: READING_ORDER.get(name, len(READING_ORDER)))


def metric_label(parts: Sequence[str]) -> str:
    """`("seo", "keywords_entered_top10")` -> "SEO > Keywords entered top 10" (with a guillemet)."""
    return " \u203a ".join(column_label(part) for part in parts)


def column_label(name: str) -> str:
    words = [WORDS.get(word.lower(), word) for word in str(name).split("_") if word]
    text = " ".join(words) or str(name)
    return text[:1].upper() + text[1:]


def display_value(value: Any) -> str:
    """A JSON value as a reader wants it: thousands separators, no quotes, a dash for null."""
    if value is None:
        return EMPTY
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.10g}" if abs(value) >= 1000 else f"{value:.10g}"
    if isinstance(value, str):
        if PLAIN_NUMBER.match(value):
            try:
                return f"{Decimal(value):,}"
            except InvalidOperation:
                return value
        return value
    if isinstance(value, list):
        return ", ".join(display_value(item) for item in value) or "none"
    if isinstance(value, dict):
        return "; ".join(f"{column_label(k)}: {display_value(v)}" for k, v in value.items())
    return str(value)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and PLAIN_NUMBER.match(value):
        return float(value)
    return None


def _signed(value: Any) -> str:
    number = _number(value)
    text = display_value(value)
    return f"+{text}" if number is not None and number > 0 and not text.startswith("+") else text


@dataclass(frozen=True)
class MetricRow:
    metric: str
    current: str
    previous: str
    change: str
    change_pct: str
    # "up", "down" or "": colours the change.
    direction: str
    empty: str = EMPTY


@dataclass(frozen=True)
class MetricTable:
    title: str
    columns: list[str]
    rows: list[list[str]]


@dataclass
class MetricsReport:
    """A briefing's `key_metrics`, flattened for reading: figures (current against previous),
    single facts, and the lists (top posts, keywords, concluded experiments) as tables."""

    figures: list[MetricRow] = field(default_factory=list)
    facts: list[tuple[str, str]] = field(default_factory=list)
    tables: list[MetricTable] = field(default_factory=list)


def _is_figure(value: dict[str, Any]) -> bool:
    return "current" in value and not isinstance(value["current"], dict | list)


def metrics_report(key_metrics: Any) -> MetricsReport:
    """Flatten any `key_metrics` object: a dict with a `current` is a figure row; other dicts
    are walked into, their names joined into the metric's label; a list of objects is a table;
    anything else is a fact. The top-level `version` (of the layout) is left out."""
    report = MetricsReport()

    def walk(value: Any, parts: list[str]) -> None:
        if isinstance(value, dict):
            if parts and _is_figure(value):
                change_pct = _number(value.get("change_pct"))
                change = _number(value.get("change"))
                sign = change_pct if change_pct is not None else change
                report.figures.append(
                    MetricRow(
                        metric=metric_label(parts),
                        current=display_value(value.get("current")),
                        previous=display_value(value.get("previous")),
                        change=_signed(value.get("change")),
                        change_pct=EMPTY if change_pct is None else f"{change_pct:+.1f}%",
                        direction="" if not sign else "up" if sign > 0 else "down",
                    )
                )
                for key in in_reading_order(value):
                    if key not in FIGURE_KEYS and key not in REDUNDANT_FIGURE_KEYS:
                        walk(value[key], [*parts, key])
                return
            for key in in_reading_order(value):
                if not parts and key == "version":
                    continue
                walk(value[key], [*parts, key])
        elif isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
            columns = in_reading_order(dict.fromkeys(str(key) for item in value for key in item))
            report.tables.append(
                MetricTable(
                    title=metric_label(parts),
                    columns=[column_label(column) for column in columns],
                    rows=[[display_value(item.get(column)) for column in columns] for item in value],
                )
            )
        else:
            report.facts.append((metric_label(parts) or "Value", display_value(value)))

    walk(key_metrics, [])
    return report


@dataclass(frozen=True)
class InsightItem:
    title: str
    detail: str
    meta: str


def insight_items(insights: Any) -> list[InsightItem]:
    """The ranked insights, best first, as title, detail and a line of their figures."""
    if not isinstance(insights, list):
        return [] if insights in (None, "") else [InsightItem(title=display_value(insights), detail="", meta="")]
    ranked = list(insights)
    if all(isinstance(item, dict) and isinstance(item.get("rank"), int) for item in ranked):
        ranked.sort(key=lambda item: item["rank"])
    items = []
    for item in ranked:
        if not isinstance(item, dict):
            items.append(InsightItem(title=display_value(item), detail="", meta=""))
            continue
        known = {"rank", "title", "detail"}
        meta = " · ".join(
            f"{column_label(key)}: {_signed(value) if key == 'change' else display_value(value)}"
            for key, value in item.items()
            if key not in known and value not in (None, "")
        )
        items.append(
            InsightItem(
                title=display_value(item.get("title") or item.get("kind") or "Insight"),
                detail=display_value(item.get("detail") or ""),
                meta=meta,
            )
        )
    return items


RATING_CHOICES = [
    ("", "Not rated"),
    (5, "5 (excellent)"),
    (4, "4 (good)"),
    (3, "3 (adequate)"),
    (2, "2 (weak)"),
    (1, "1 (poor)"),
]


class CeoBriefingReviewForm(ServiceModelForm):
    """A staff review: rating and notes, stamped with the reviewer by `briefing_review`."""

    rating = forms.TypedChoiceField(choices=RATING_CHOICES, coerce=int, empty_value=None, required=False)

    class Meta:
        model = CeoBriefing
        fields = ("rating", "feedback_notes")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if "rating" in cleaned and "feedback_notes" in cleaned:
            # The service's own rules, shown before anything is written.
            errors = briefing_review_errors(rating=cleaned["rating"], feedback_notes=cleaned["feedback_notes"])
            for name, problems in errors.items():
                for problem in problems:
                    self.add_error(name, problem)
        return cleaned

    def perform(self) -> CeoBriefing | None:
        if not self.has_changed():
            return None
        if not isinstance(self.actor, User):
            raise PermissionDenied("Only a signed-in staff user can review a briefing.")
        return briefing_review(
            briefing=self.instance,
            rating=self.cleaned_data["rating"],
            feedback_notes=self.cleaned_data["feedback_notes"],
            reviewer=self.actor,
        )


class ReviewedFilter(admin.SimpleListFilter):
    title = "review"
    parameter_name = "reviewed"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("no", "Unreviewed (the queue)"), ("yes", "Reviewed")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "no":
            return cast(Any, queryset).unreviewed()
        if self.value() == "yes":
            return cast(Any, queryset).reviewed()
        return queryset


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
class CeoBriefingAdmin(ServiceFormAdmin):
    list_display = ("period", "shop", "briefing_type", "rating_stars", "review", "generation_model")
    list_display_links = ("period",)
    list_select_related = ("shop", "reviewed_by")
    list_filter = (ReviewedFilter, "briefing_type", "rating", "generation_model", SHOP_FILTER)
    search_fields = ("executive_summary", "shop__domain", "feedback_notes")
    date_hierarchy = "period_end"
    # The review queue: briefings nobody has reviewed come first, newest period first.
    # (The stubs type ordering as names only; the admin accepts expressions.)
    ordering = cast(tuple[str, ...], (F("reviewed_at").desc(nulls_first=True), "-period_end", "shop__domain"))
    actions = ("mark_reviewed",)

    @admin.display(description="period", ordering="period_end")
    def period(self, obj: CeoBriefing) -> str:
        return f"{obj.period_start} to {obj.period_end}" if obj.period_start != obj.period_end else str(obj.period_end)

    @admin.display(description="rating", ordering="rating")
    def rating_stars(self, obj: CeoBriefing) -> str:
        if obj.rating is None:
            return EMPTY
        return "\u2605" * obj.rating + "\u2606" * (5 - obj.rating) + f" {obj.rating}/5"

    @admin.display(description="review", ordering="reviewed_at")
    def review(self, obj: CeoBriefing) -> str:
        if obj.reviewed_at is None:
            return "unreviewed"
        who = obj.reviewed_by.get_username() if obj.reviewed_by is not None else "a former user"
        return f"{who}, {obj.reviewed_at:%Y-%m-%d %H:%M}"

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        if obj is not None:
            kwargs["form"] = CeoBriefingReviewForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fieldsets(self, request: HttpRequest, obj: CeoBriefing | None = None) -> Any:
        if obj is None:
            return super().get_fieldsets(request, obj)
        generated = ("shop", "briefing_type", "period_start", "period_end", "generation_model", "generation_tokens")
        return [
            ("Briefing", {"fields": generated}),
            ("Review", {"fields": (*REVIEW_FIELDS, "reviewed_by", "reviewed_at")}),
            ("Audit", {"classes": ("collapse",), "fields": AUDIT_FIELDS}),
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: CeoBriefing | None = None) -> tuple[str, ...]:
        stamps = ("reviewed_by", "reviewed_at", *AUDIT_FIELDS)
        return (*GENERATED_BRIEFING_FIELDS, *stamps) if obj is not None else stamps

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: CeoBriefing | None = None,
    ) -> HttpResponse:
        if obj is not None:
            context["briefing_summary"] = obj.executive_summary
            context["briefing_metrics"] = metrics_report(obj.key_metrics)
            context["briefing_insights"] = insight_items(obj.insights)
        return super().render_change_form(request, context, add, change, form_url, obj)

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        context = {
            "unreviewed_count": CeoBriefing.objects.unreviewed().count(),
            "statistics_url": reverse("admin:advanced_ceobriefing_statistics"),
            **(extra_context or {}),
        }
        return super().changelist_view(request, context)

    @admin.action(description="Mark selected briefings reviewed", permissions=["change"])
    def mark_reviewed(self, request: HttpRequest, queryset: QuerySet[CeoBriefing]) -> None:
        if not isinstance(request.user, User):
            raise PermissionDenied
        selected = queryset.count()
        stamped = briefings_mark_reviewed(briefings=queryset, reviewer=request.user)
        already = selected - stamped
        note = f"; {already} had been reviewed already and keep their reviewer" if already else ""
        self.message_user(request, f"Marked {stamped} briefing(s) reviewed{note}.", messages.SUCCESS)

    def get_urls(self) -> list[URLPattern]:
        statistics = path(
            "statistics/",
            self.admin_site.admin_view(self.statistics_view),
            name="advanced_ceobriefing_statistics",
        )
        return [statistics, *super().get_urls()]

    def statistics_view(self, request: HttpRequest) -> HttpResponse:
        """Ratings per generation model, over the briefings the changelist's filters select."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            changelist = self.get_changelist_instance(request)
        except IncorrectLookupParameters:
            return HttpResponseRedirect(request.path)
        rows = cast(CeoBriefingQuerySet, changelist.queryset).rating_statistics()
        filters = request.GET.copy()
        filters.pop("p", None)
        context = {
            **self.admin_site.each_context(request),
            "title": "Briefing ratings by generation model",
            "opts": self.model._meta,
            "rows": [
                {
                    "stats": row,
                    "bars": [
                        {"rating": rating, "count": count, "share": 100 * count / row.rated if row.rated else 0}
                        for rating, count in enumerate(row.distribution, start=1)
                    ],
                }
                for row in rows
            ],
            "filtered": bool(filters),
            "changelist_query": filters.urlencode(),
        }
        return TemplateResponse(request, "admin/advanced/ceobriefing/statistics.html", context)
