"""CEO briefings: read as a report (summary, metrics table, ranked insights) and rated."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied
from django.db.models import F, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse

from backoffice.bases import AUDIT_FIELDS
from backoffice.forms import ServiceFormAdmin, ServiceModelForm
from tenancy.admin import SHOP_FILTER
from tenancy.models import User

from ..common import EMPTY
from .models import CeoBriefing
from .querysets import CeoBriefingQuerySet
from .services.reviews import briefing_review, briefing_review_errors, briefings_mark_reviewed

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
