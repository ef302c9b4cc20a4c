"""CEO briefings: generated executive summaries with staff feedback."""

from __future__ import annotations

from typing import ClassVar

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q

from tenancy.db import choices_check, nonnegative_checks, range_checks
from tenancy.models import ShopScopedModel
from tenancy.tables import PolicyKind, Retention, TenantTable

from ..common import jsonb_type_is
from .querysets import CeoBriefingQuerySet


class BriefingType(models.TextChoices):
    DAILY = "daily", "Daily"
    WEEKLY = "weekly", "Weekly"
    MONTHLY = "monthly", "Monthly"
    QUARTERLY = "quarterly", "Quarterly"


class CeoBriefing(ShopScopedModel):
    """A generated executive summary of a shop's period, and staff feedback on its quality."""

    tenancy: ClassVar[TenantTable] = TenantTable(policy=PolicyKind.CEO, retention=Retention("period_end", days=365))

    briefing_type = models.CharField(max_length=16, choices=BriefingType.choices)
    period_start = models.DateField()
    period_end = models.DateField()
    executive_summary = models.TextField(max_length=20_000)
    key_metrics = models.JSONField(default=dict, help_text="Object of metric name -> figures.")
    insights = models.JSONField(default=list, help_text="Array of ranked insights.")
    generation_model = models.CharField(max_length=100, blank=True, default="")
    generation_tokens = models.PositiveIntegerField(null=True, blank=True)
    rating = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(5)]
    )
    feedback_notes = models.TextField(blank=True, default="")
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)

    objects = CeoBriefingQuerySet.as_manager()

    class Meta:
        db_table = "ceo_briefings"
        ordering = ["-period_end"]
        get_latest_by = "period_end"
        indexes = [
            models.Index(
                fields=["shop", "briefing_type", "-period_end"],
                name="ceo_briefings_recent_idx",
            ),
            models.Index(F("rating").desc(nulls_last=True), name="ceo_briefings_rating_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["shop", "briefing_type", "period_start", "period_end"],
                name="%(app_label)s_%(class)s_period_uniq",
            ),
            choices_check("briefing_type", BriefingType),
            *range_checks(1, 5, "rating"),
            *nonnegative_checks("generation_tokens"),
            models.CheckConstraint(
                condition=Q(period_end__gte=F("period_start")),
                name="%(app_label)s_%(class)s_end_after_start",
            ),
            models.CheckConstraint(
                condition=jsonb_type_is("key_metrics", "object"),
                name="%(app_label)s_%(class)s_key_metrics_is_object",
            ),
            models.CheckConstraint(
                condition=jsonb_type_is("insights", "array"),
                name="%(app_label)s_%(class)s_insights_is_array",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_briefing_type_display()} briefing {self.period_start}..{self.period_end}"
