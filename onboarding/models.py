"""Onboarding: each user's progress through setup steps, and feature tours."""

from __future__ import annotations

from typing import ClassVar

from django.conf import settings
from django.db import models
from django.db.models import Case, F, Func, Q, Value, When
from django.db.models.lookups import Exact, LessThan

from tenancy.db import choices_check, nonnegative_checks
from tenancy.models import AuditedModel, ShopScopedModel
from tenancy.tables import PolicyKind, TenantTable

from .querysets import FeatureTourQuerySet, OnboardingProgressQuerySet


class StepStatus(models.TextChoices):
    NOT_STARTED = "not_started", "Not started"
    IN_PROGRESS = "in_progress", "In progress"
    COMPLETED = "completed", "Completed"
    SKIPPED = "skipped", "Skipped"


class OnboardingProgress(ShopScopedModel):
    """Where one user stands on one onboarding step for one shop."""

    tenancy: ClassVar[TenantTable] = TenantTable(policy=PolicyKind.USER_SHOP)

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="onboarding_progress",
        db_index=False,
    )
    step_key = models.SlugField(max_length=100, db_index=False)
    step_order = models.PositiveSmallIntegerField(default=0)
    status = models.CharField(max_length=16, choices=StepStatus.choices, default=StepStatus.NOT_STARTED)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    time_spent_seconds = models.PositiveIntegerField(default=0)

    objects = OnboardingProgressQuerySet.as_manager()

    class Meta:
        db_table = "onboarding_progress"
        ordering = ["step_order", "step_key"]
        verbose_name_plural = "onboarding progress"
        indexes = [
            models.Index(
                fields=["user", "shop", "step_order"],
                name="onboarding_user_progress_idx",
            ),
            models.Index(fields=["status"], name="onboarding_status_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "shop", "step_key"],
                name="%(app_label)s_%(class)s_step_uniq",
            ),
            choices_check("status", StepStatus),
            *nonnegative_checks("step_order", "attempts", "time_spent_seconds"),
            models.CheckConstraint(
                condition=~Q(status=StepStatus.COMPLETED) | Q(completed_at__isnull=False),
                name="%(app_label)s_%(class)s_completed_has_time",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.step_key}: {self.status}"


class TourStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    ACTIVE = "active", "Active"
    COMPLETED = "completed", "Completed"
    DISMISSED = "dismissed", "Dismissed"


def _steps_is_array() -> Exact:
    return Exact(Func(F("steps"), function="jsonb_typeof", output_field=models.TextField()), "array")


def _steps_count() -> Func:
    return Func(F("steps"), function="jsonb_array_length", output_field=models.IntegerField())


class FeatureTour(AuditedModel):
    """An interactive walkthrough of a feature, and how far one user has got through it."""

    tenancy: ClassVar[TenantTable] = TenantTable(policy=PolicyKind.USER)

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="feature_tours",
        db_index=False,
    )
    tour_key = models.SlugField(max_length=100, db_index=False)
    tour_name = models.CharField(max_length=200)
    steps = models.JSONField(default=list, help_text="Array of step definitions: {title, body, target}.")
    status = models.CharField(max_length=16, choices=TourStatus.choices, default=TourStatus.PENDING)
    current_step = models.PositiveSmallIntegerField(default=0, help_text="Index into steps.")
    times_shown = models.PositiveIntegerField(default=0)
    interactions = models.PositiveIntegerField(default=0)
    last_shown_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    dismissed_at = models.DateTimeField(null=True, blank=True)

    objects = FeatureTourQuerySet.as_manager()

    class Meta:
        db_table = "feature_tours"
        ordering = ["tour_key"]
        indexes = [
            models.Index(fields=["user", "status"], name="feature_tours_user_status_idx"),
            models.Index(fields=["tour_key"], name="feature_tours_tour_key_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "tour_key"],
                name="%(app_label)s_%(class)s_user_tour_uniq",
            ),
            choices_check("status", TourStatus),
            *nonnegative_checks("current_step", "times_shown", "interactions"),
            models.CheckConstraint(
                condition=Exact(
                    Func(
                        F("steps"),
                        function="jsonb_typeof",
                        output_field=models.TextField(),
                    ),
                    "array",
                ),
                name="%(app_label)s_%(class)s_steps_is_array",
            ),
            models.CheckConstraint(
                # jsonb_array_length() raises on a non-array; the CASE guards it so such a
                # row is refused by steps_is_array instead of crashing the check.
                condition=Q(current_step=0)
                | Q(
                    Case(
                        When(_steps_is_array(), then=LessThan(F("current_step"), _steps_count())),
                        default=Value(True),
                        output_field=models.BooleanField(),
                    )
                ),
                name="%(app_label)s_%(class)s_current_step_in_steps",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.tour_name} ({self.status})"
