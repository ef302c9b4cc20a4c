"""Admin for SEO audits and rankings, ad campaigns and their daily performance, social posts.

Campaign pages chart their spend, revenue and ROAS; each keyword's rankings have a position
chart (a view of its own, linked from every ranking row). The charts are server-rendered SVG
(`backoffice.charts`) fed by one queryset method each.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast
from urllib.parse import urlencode

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db import models
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from backoffice.bases import AUDIT_FIELDS, ReadOnlyTabularInline, ShopChildAdmin, ShopChildForm, ShopScopedAdmin
from backoffice.charts import Series, line_chart
from tenancy.admin import SHOP_FILTER

from .models import (
    AdCampaign,
    AdPerformance,
    SearchEngine,
    SeoAudit,
    SeoRanking,
    SocialAnalytics,
    SocialPost,
)
from .querysets import AdCampaignQuerySet, RankingPoint

AD_RATIOS = ("ctr", "cpc", "cpa", "roas")
# The list's totals cover the last 30 days, today included; the campaign's chart its last 90
# days of data.
RECENT_DAYS = 30
TREND_DAYS = 90
# Every money and measurement column of these tables is non-negative (CHECK constraints); the
# form says so next to the field instead of a generic "constraint violated" for the form.
NONNEGATIVE_DECIMALS: dict[type[models.Field[Any, Any]], dict[str, Any]] = {models.DecimalField: {"min_value": 0}}


def day_range(first: datetime.date, last: datetime.date) -> list[datetime.date]:
    return [first + datetime.timedelta(days=n) for n in range((last - first).days + 1)]


def money(value: Decimal | None) -> str:
    return "—" if value is None else f"{value:,.2f}"


def ratio(value: Decimal | None) -> str:
    return "—" if value is None else f"{value:,.2f}"


# --- SEO audits ----------------------------------------------------------------------------


class SeoAuditForm(forms.ModelForm):
    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        shop, crawled_at = cleaned.get("shop"), cleaned.get("crawled_at")
        if shop is not None and crawled_at is not None:
            clash = SeoAudit.objects.filter(shop=shop, crawled_at=crawled_at).exclude(pk=self.instance.pk)
            if clash.exists():
                self.add_error("crawled_at", f"{shop.pk} already has an audit crawled at this time.")
        return cleaned


@admin.register(SeoAudit)
class SeoAuditAdmin(ShopScopedAdmin):
    form = SeoAuditForm
    formfield_overrides = NONNEGATIVE_DECIMALS
    list_display = (
        "crawled_at",
        "shop",
        "pages_crawled",
        "technical_score",
        "content_score",
        "performance_score",
        "avg_lcp",
        "avg_fid",
        "avg_cls",
        "critical_issues",
        "high_priority_issues",
    )
    list_filter = (SHOP_FILTER,)
    search_fields = ("shop__domain",)
    date_hierarchy = "crawled_at"
    ordering = ("-crawled_at",)


# --- SEO rankings --------------------------------------------------------------------------


class SeoRankingForm(forms.ModelForm):
    """`tracked_on` is the UTC day of `tracked_at`: filled in when left empty, refused when it differs."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "tracked_on" in self.fields:
            self.fields["tracked_on"].required = False

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        tracked_at: datetime.datetime | None = cleaned.get("tracked_at")
        if tracked_at is None:
            return cleaned
        day = tracked_at.astimezone(datetime.UTC).date()
        given: datetime.date | None = cleaned.get("tracked_on")
        if given is None:
            cleaned["tracked_on"] = day
        elif given != day:
            self.add_error("tracked_on", f"Must be the UTC date of tracked at ({day.isoformat()}), or left empty.")
        return cleaned


def engine_location_label(search_engine: str, location: str) -> str:
    engine = SearchEngine(search_engine).label if search_engine in SearchEngine.values else search_engine
    return f"{engine} · {location or 'any location'}"


@dataclass(frozen=True)
class RankingLine:
    """The summary of one (search engine, location) line of a keyword's chart."""

    label: str
    days_measured: int
    first_position: int
    latest_position: int
    latest_day: datetime.date
    best: int
    worst: int

    @property
    def change(self) -> int:
        """Places gained since the first day shown (positive is better: a smaller position)."""
        return self.first_position - self.latest_position


def ranking_chart(rows: Sequence[RankingPoint], *, keyword: str) -> tuple[SafeString, list[RankingLine]]:
    """One series per (search engine, location) over every day between the first and last row."""
    by_line: dict[tuple[str, str], dict[datetime.date, int]] = {}
    for row in rows:
        by_line.setdefault((row["search_engine"], row["location"]), {})[row["tracked_on"]] = row["position"]
    days = day_range(min(r["tracked_on"] for r in rows), max(r["tracked_on"] for r in rows)) if rows else []
    series, lines = [], []
    for (engine, location), positions in sorted(by_line.items()):
        label = engine_location_label(engine, location)
        series.append(Series(label, [positions.get(day) for day in days]))
        measured = sorted(positions)
        lines.append(
            RankingLine(
                label=label,
                days_measured=len(measured),
                first_position=positions[measured[0]],
                latest_position=positions[measured[-1]],
                latest_day=measured[-1],
                best=min(positions.values()),
                worst=max(positions.values()),
            )
        )
    chart = line_chart(
        series=series,
        x_labels=[day.isoformat() for day in days],
        title=f"Position of “{keyword}”",
        y_label="position (1 is best)",
        invert_y=True,
        y_min=1,
        width=900,
        height=340,
    )
    return chart, lines


class RankingChartForm(forms.Form):
    shop = forms.CharField(max_length=255, help_text="The shop's domain, e.g. example.myshopify.com.")
    keyword = forms.CharField(max_length=500)
    days = forms.IntegerField(min_value=7, max_value=730, initial=TREND_DAYS, required=False)

    def clean_shop(self) -> str:
        return str(self.cleaned_data["shop"]).strip().lower()

    def clean_days(self) -> int:
        days = self.cleaned_data.get("days")
        return TREND_DAYS if days is None else int(days)


@admin.register(SeoRanking)
class SeoRankingAdmin(ShopScopedAdmin):
    form = SeoRankingForm
    list_display = (
        "tracked_on",
        "keyword",
        "shop",
        "position",
        "search_engine",
        "location",
        "featured_snippet",
        "search_volume",
        "history",
    )
    list_filter = ("search_engine", "featured_snippet", "location", SHOP_FILTER)
    search_fields = ("keyword", "url", "shop__domain")
    date_hierarchy = "tracked_on"
    ordering = ("-tracked_on", "keyword")

    def get_urls(self) -> list[URLPattern]:
        chart = path(
            "chart/",
            self.admin_site.admin_view(self.chart_view),
            name=f"{self.opts.app_label}_{self.opts.model_name}_chart",
        )
        return [chart, *super().get_urls()]

    @staticmethod
    def chart_url(*, shop: str, keyword: str) -> str:
        return reverse("admin:growth_seoranking_chart") + "?" + urlencode({"shop": shop, "keyword": keyword})

    @admin.display(description="history")
    def history(self, obj: SeoRanking) -> str:
        return format_html('<a href="{}">chart</a>', self.chart_url(shop=obj.shop_id, keyword=obj.keyword))

    def chart_view(self, request: HttpRequest) -> HttpResponse:
        """The keyword's position over time, one line per search engine and location."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        form = RankingChartForm(request.GET or None)
        context: dict[str, Any] = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Keyword position over time",
            "form": form,
        }
        if form.is_valid():
            shop, keyword, days = form.cleaned_data["shop"], form.cleaned_data["keyword"], form.cleaned_data["days"]
            # Row level security limits the rows to the staff user's shops: another shop's
            # keyword simply has no data here.
            rows = list(SeoRanking.objects.for_keyword(keyword).filter(shop_id=shop).position_history(days=days))
            chart, lines = ranking_chart(rows, keyword=keyword)
            changelist = reverse("admin:growth_seoranking_changelist")
            context.update(
                shop=shop,
                keyword=keyword,
                days=days,
                chart=chart,
                lines=lines,
                rows_url=changelist + "?" + urlencode({"shop__domain__exact": shop, "q": keyword}),
                subtitle=f"{keyword} · {shop}",
            )
        return TemplateResponse(request, "admin/growth/seoranking/chart.html", context)


# --- ad campaigns and performance ----------------------------------------------------------


class AdPerformanceInline(ReadOnlyTabularInline):
    model = AdPerformance
    fields = ("date", "impressions", "clicks", "conversions", "cost", "revenue", *AD_RATIOS)
    readonly_fields = fields
    ordering = ("-date",)
    verbose_name_plural = "daily performance (latest 30 days)"


class AdCampaignForm(forms.ModelForm):
    def clean_currency(self) -> str:
        currency = str(self.cleaned_data["currency"]).strip().upper()
        if not re.fullmatch(r"[A-Z]{3}", currency):
            raise forms.ValidationError("Use a three-letter ISO 4217 code, e.g. USD or EUR.")
        return currency

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        start, end = cleaned.get("start_date"), cleaned.get("end_date")
        if start is not None and end is not None and end < start:
            self.add_error("end_date", f"Must not be before the start date ({start.isoformat()}).")
        return cleaned


@dataclass(frozen=True)
class CampaignTrend:
    """The campaign page's charts and the totals they add up to."""

    money_chart: SafeString
    roas_chart: SafeString
    first_day: datetime.date | None
    last_day: datetime.date | None
    days_with_data: int
    total_cost: Decimal
    total_revenue: Decimal

    @property
    def roas(self) -> Decimal | None:
        return self.total_revenue / self.total_cost if self.total_cost else None


def campaign_trend(campaign: AdCampaign, *, days: int = TREND_DAYS) -> CampaignTrend:
    """Daily spend and revenue, and ROAS, over the campaign's last `days` days of data.

    Every calendar day between the first and the last row is on the x axis; a day without a
    row is a gap in the lines, not a zero (no report is not the same as no spend).
    """
    rows = list(AdPerformance.objects.filter(campaign=campaign).daily_totals(days=days))
    by_day = {row["date"]: row for row in rows}
    axis = day_range(rows[0]["date"], rows[-1]["date"]) if rows else []
    labels = [day.isoformat() for day in axis]

    def column(name: str) -> list[Decimal | None]:
        return [by_day[day][name] if day in by_day else None for day in axis]

    currency = campaign.currency
    return CampaignTrend(
        money_chart=line_chart(
            series=[
                Series(f"Spend ({currency})", column("total_cost")),
                Series(f"Revenue ({currency})", column("total_revenue")),
            ],
            x_labels=labels,
            title=f"Daily spend and revenue, last {days} days of data",
            y_label=currency,
            width=900,
            height=300,
        ),
        roas_chart=line_chart(
            series=[Series("ROAS (revenue / spend)", column("total_roas"))],
            x_labels=labels,
            title="Daily ROAS",
            y_label="ROAS",
            width=900,
            height=200,
        ),
        first_day=axis[0] if axis else None,
        last_day=axis[-1] if axis else None,
        days_with_data=len(rows),
        total_cost=sum((row["total_cost"] for row in rows), Decimal(0)),
        total_revenue=sum((row["total_revenue"] for row in rows), Decimal(0)),
    )


@admin.register(AdCampaign)
class AdCampaignAdmin(ShopScopedAdmin):
    form = AdCampaignForm
    formfield_overrides = NONNEGATIVE_DECIMALS
    change_form_template = "admin/growth/adcampaign/change_form.html"
    list_display = (
        "campaign_name",
        "shop",
        "platform",
        "platform_campaign_id",
        "campaign_status",
        "bid_strategy",
        "daily_budget",
        "total_budget",
        "currency",
        "spend_recent",
        "revenue_recent",
        "roas_recent",
        "start_date",
        "end_date",
    )
    list_filter = ("campaign_status", "platform", "bid_strategy", "currency", SHOP_FILTER)
    search_fields = ("campaign_name", "=platform_campaign_id", "shop__domain")
    date_hierarchy = "start_date"
    ordering = ("shop__domain", "campaign_name")
    inlines = (AdPerformanceInline,)

    def get_queryset(self, request: HttpRequest) -> AdCampaignQuerySet:
        since = timezone.localdate() - datetime.timedelta(days=RECENT_DAYS - 1)
        return cast(AdCampaignQuerySet, super().get_queryset(request)).with_totals_since(since)

    @admin.display(description=f"spend ({RECENT_DAYS} d)", ordering="spend_since")
    def spend_recent(self, obj: AdCampaign) -> str:
        return money(getattr(obj, "spend_since", None))

    @admin.display(description=f"revenue ({RECENT_DAYS} d)", ordering="revenue_since")
    def revenue_recent(self, obj: AdCampaign) -> str:
        return money(getattr(obj, "revenue_since", None))

    @admin.display(description=f"ROAS ({RECENT_DAYS} d)", ordering="roas_since")
    def roas_recent(self, obj: AdCampaign) -> str:
        return ratio(getattr(obj, "roas_since", None))

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: AdCampaign | None = None,
    ) -> HttpResponse:
        # Here rather than in change_view: the object is already loaded (and permission-checked).
        if obj is not None and obj.pk is not None:
            context["trend"] = campaign_trend(obj)
        return super().render_change_form(request, context, add, change, form_url, obj)


class AdPerformanceForm(ShopChildForm):
    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        campaign, day = cleaned.get("campaign"), cleaned.get("date")
        if campaign is not None and day is not None and "campaign" not in self.errors:
            clash = AdPerformance.objects.filter(campaign=campaign, date=day).exclude(pk=self.instance.pk)
            if clash.exists():
                self.add_error("date", f"“{campaign}” already has a performance row for {day.isoformat()}.")
        return cleaned


@admin.register(AdPerformance)
class AdPerformanceAdmin(ShopChildAdmin):
    form = AdPerformanceForm
    formfield_overrides = NONNEGATIVE_DECIMALS
    parent_field = "campaign"
    list_display = (
        "date",
        "campaign",
        "shop",
        "impressions",
        "clicks",
        "conversions",
        "cost",
        "revenue",
        *AD_RATIOS,
    )
    list_select_related = ("campaign", "shop")
    list_filter = ("campaign__platform", SHOP_FILTER)
    search_fields = ("campaign__campaign_name", "=campaign__platform_campaign_id", "shop__domain")
    date_hierarchy = "date"
    ordering = ("-date", "campaign__campaign_name")
    autocomplete_fields = ("campaign",)
    readonly_fields = ("shop", *AD_RATIOS, *AUDIT_FIELDS)


# --- social posts and analytics ------------------------------------------------------------


class SocialAnalyticsInline(ReadOnlyTabularInline):
    model = SocialAnalytics
    fields = ("measured_at", "views", "likes", "comments", "shares", "reach", "impressions", "engagement_rate")
    readonly_fields = fields
    ordering = ("-measured_at",)
    verbose_name_plural = "analytics snapshots (latest 30)"


@admin.register(SocialPost)
class SocialPostAdmin(ShopScopedAdmin):
    list_display = ("published_at", "shop", "platform", "platform_post_id", "short_caption")
    list_filter = ("platform", SHOP_FILTER)
    search_fields = ("caption", "=platform_post_id", "shop__domain")
    date_hierarchy = "published_at"
    ordering = ("-published_at",)
    inlines = (SocialAnalyticsInline,)

    @admin.display(description="caption")
    def short_caption(self, obj: SocialPost) -> str:
        return obj.caption if len(obj.caption) <= 80 else obj.caption[:79] + "…"


class SocialAnalyticsForm(ShopChildForm):
    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        post, measured_at = cleaned.get("social_post"), cleaned.get("measured_at")
        if post is not None and measured_at is not None and "social_post" not in self.errors:
            clash = SocialAnalytics.objects.filter(social_post=post, measured_at=measured_at).exclude(
                pk=self.instance.pk
            )
            if clash.exists():
                self.add_error("measured_at", f"{post} already has a snapshot measured at this time.")
        return cleaned


@admin.register(SocialAnalytics)
class SocialAnalyticsAdmin(ShopChildAdmin):
    form = SocialAnalyticsForm
    parent_field = "social_post"
    # The composite key covers the platform too: (social_post_id, shop_domain, platform).
    copied_from_parent = ("shop_id", "platform")
    list_display = (
        "measured_at",
        "social_post",
        "shop",
        "platform",
        "views",
        "likes",
        "comments",
        "shares",
        "reach",
        "impressions",
        "engagement_rate",
    )
    list_select_related = ("social_post", "shop")
    list_filter = ("platform", SHOP_FILTER)
    search_fields = ("=social_post__platform_post_id", "shop__domain")
    date_hierarchy = "measured_at"
    ordering = ("-measured_at",)
    autocomplete_fields = ("social_post",)
    readonly_fields = ("shop", "platform", "engagement_rate", *AUDIT_FIELDS)
