"""A/B experiments and their daily results with the analysis' statistics."""

from __future__ import annotations

from decimal import Decimal
from typing import ClassVar

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q, Value

from tenancy.db import choices_check, nonnegative_checks, range_checks, ratio_field
from tenancy.models import ShopScopedModel
from tenancy.tables import PolicyKind, Retention, TenantTable

from ..common import jsonb_type_is
from . import stats
from .querysets import ExperimentQuerySet, ExperimentResultQuerySet

PROBABILITY_VALIDATORS = [MinValueValidator(0), MaxValueValidator(1)]


class ExperimentStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    RUNNING = "running", "Running"
    PAUSED = "paused", "Paused"
    COMPLETED = "completed", "Completed"
    ARCHIVED = "archived", "Archived"


# The values are the pure statistics' (advanced.experiments.stats, in the order of its ENGINES,
# CORRECTIONS and GUARDRAIL_METRICS); the model adds the labels.
class StatsEngine(models.TextChoices):
    # Sequential is the default of running experiments.
    SEQUENTIAL = stats.SEQUENTIAL, "Sequential (always-valid)"
    FIXED_HORIZON = stats.FIXED_HORIZON, "Fixed horizon (decides at the planned sample)"
    BAYESIAN = stats.BAYESIAN, "Bayesian (chance to win, expected loss)"


class MultipleTestingCorrection(models.TextChoices):
    HOLM = stats.HOLM, "Holm (family-wise error)"
    BENJAMINI_HOCHBERG = stats.BENJAMINI_HOCHBERG, "Benjamini-Hochberg (false discovery rate)"


class GuardrailMetric(models.TextChoices):
    REVENUE_PER_USER = stats.REVENUE_PER_USER, "Revenue per user"


def default_guardrails() -> list[str]:
    return [GuardrailMetric.REVENUE_PER_USER]


class Experiment(ShopScopedModel):
    """An A/B test a shop runs: its variants, lifecycle and, once decided, the winner."""

    tenancy: ClassVar[TenantTable] = TenantTable(policy=PolicyKind.SHOP)

    experiment_key = models.SlugField(max_length=100, db_index=False)
    experiment_name = models.CharField(max_length=200)
    # Free-text limits (max_length on a TextField is checked by the API and the admin forms, not
    # by the database): far above real use, far below a body that ties up a worker.
    description = models.TextField(blank=True, default="", max_length=10_000)
    variants = models.JSONField(
        default=list,
        help_text="Array of {key, name, weight, is_control}; weights sum to 1 (or 100).",
    )
    status = models.CharField(max_length=16, choices=ExperimentStatus.choices, default=ExperimentStatus.DRAFT)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    primary_metric = models.CharField(max_length=100, default="conversion_rate")
    confidence_threshold = models.DecimalField(
        max_digits=5,
        decimal_places=4,
        default=0.95,
        validators=PROBABILITY_VALIDATORS,
        help_text="Confidence required before a winner is declared.",
    )
    min_sample_size = models.PositiveIntegerField(default=100, help_text="Participants needed per variant.")
    winning_variant = models.CharField(max_length=100, null=True, blank=True)
    confidence_level = models.DecimalField(
        max_digits=5,
        decimal_places=4,
        null=True,
        blank=True,
        validators=PROBABILITY_VALIDATORS,
    )
    # How the analysis decides (docs/experiments.md). db_default too: rows written by SQL
    # (demo data, bulk loads) get the same defaults as rows written by Django.
    stats_engine = models.CharField(
        max_length=16,
        choices=StatsEngine.choices,
        default=StatsEngine.SEQUENTIAL,
        db_default=StatsEngine.SEQUENTIAL,
        help_text="sequential: valid at every look; fixed_horizon: decides at the planned sample or end date "
        "only; bayesian: chance to win and expected loss.",
    )
    multiple_testing_correction = models.CharField(
        max_length=20,
        choices=MultipleTestingCorrection.choices,
        default=MultipleTestingCorrection.HOLM,
        db_default=MultipleTestingCorrection.HOLM,
        help_text="How the treatments' p-values are corrected for their number.",
    )
    sequential_tuning = models.PositiveIntegerField(
        default=5000,
        db_default=5000,
        validators=[MinValueValidator(1)],
        help_text="Sequential engine: participants (both variants) at which the confidence sequence is tightest.",
    )
    planned_sample_size = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)], help_text="Participants planned per variant."
    )
    planned_end_date = models.DateField(null=True, blank=True, help_text="Day the experiment is planned to end.")
    target_mde = models.DecimalField(
        max_digits=8,
        decimal_places=6,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0.000001")), MaxValueValidator(10)],
        help_text="Relative lift to detect at 80% power (0.1 = +10%); gives the sample size needed.",
    )
    prior_mean = models.DecimalField(
        max_digits=10,
        decimal_places=6,
        null=True,
        blank=True,
        validators=[MinValueValidator(-10), MaxValueValidator(10)],
        help_text="Bayesian: mean of the normal prior on the relative lift (with prior_variance).",
    )
    prior_variance = models.DecimalField(
        max_digits=10,
        decimal_places=6,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0.000001")), MaxValueValidator(100)],
        help_text="Bayesian: variance of the normal prior on the relative lift (with prior_mean).",
    )
    risk_threshold = models.DecimalField(
        max_digits=7,
        decimal_places=6,
        default=0.0025,
        db_default=0.0025,
        validators=PROBABILITY_VALIDATORS,
        help_text="Bayesian: the largest expected loss (relative lift) a winner may carry.",
    )
    # jsonb, not text[]: the API's row plans render JSON columns directly (an array column
    # would send experiment lists back through the serializer), and CHECKs keep it a list of
    # known metrics.
    guardrail_metrics = models.JSONField(
        default=default_guardrails,
        db_default=Value([stats.REVENUE_PER_USER], output_field=models.JSONField()),
        blank=True,
        help_text="Metrics a winner must not make significantly worse: a list of revenue_per_user.",
    )

    objects = ExperimentQuerySet.as_manager()

    class Meta:
        db_table = "experiments"
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["shop", "status"], name="experiments_shop_status_idx"),
            models.Index(fields=["experiment_key"], name="experiments_key_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["shop", "experiment_key"],
                name="%(app_label)s_%(class)s_key_uniq",
            ),
            # Target of the composite foreign key from experiment_results.
            models.UniqueConstraint(fields=["id", "shop"], name="%(app_label)s_%(class)s_id_shop_uniq"),
            choices_check("status", ExperimentStatus),
            choices_check("stats_engine", StatsEngine),
            choices_check("multiple_testing_correction", MultipleTestingCorrection),
            *range_checks(0, 1, "confidence_level", "confidence_threshold", "risk_threshold"),
            models.CheckConstraint(
                condition=Q(prior_mean__gte=-10) & Q(prior_mean__lte=10),
                name="%(app_label)s_%(class)s_prior_mean_range",
            ),
            models.CheckConstraint(
                condition=Q(prior_variance__gt=0) & Q(prior_variance__lte=100) | Q(prior_variance__isnull=True),
                name="%(app_label)s_%(class)s_prior_variance_range",
            ),
            models.CheckConstraint(
                condition=(Q(prior_mean__isnull=True) & Q(prior_variance__isnull=True))
                | (Q(prior_mean__isnull=False) & Q(prior_variance__isnull=False)),
                name="%(app_label)s_%(class)s_prior_complete",
            ),
            # A fixed-horizon test is valid at one planned look: it needs the plan.
            models.CheckConstraint(
                condition=~Q(stats_engine=StatsEngine.FIXED_HORIZON)
                | Q(planned_sample_size__isnull=False)
                | Q(planned_end_date__isnull=False),
                name="%(app_label)s_%(class)s_fixed_horizon_planned",
            ),
            models.CheckConstraint(
                condition=Q(target_mde__gt=0) | Q(target_mde__isnull=True),
                name="%(app_label)s_%(class)s_target_mde_positive",
            ),
            models.CheckConstraint(
                condition=Q(sequential_tuning__gte=1), name="%(app_label)s_%(class)s_sequential_tuning_positive"
            ),
            models.CheckConstraint(
                condition=Q(planned_sample_size__gte=1) | Q(planned_sample_size__isnull=True),
                name="%(app_label)s_%(class)s_planned_sample_positive",
            ),
            models.CheckConstraint(
                condition=jsonb_type_is("guardrail_metrics", "array")
                & Q(guardrail_metrics__contained_by=[m.value for m in GuardrailMetric]),
                name="%(app_label)s_%(class)s_guardrails_known",
            ),
            models.CheckConstraint(
                condition=jsonb_type_is("variants", "array"),
                name="%(app_label)s_%(class)s_variants_is_array",
            ),
            models.CheckConstraint(
                condition=Q(ended_at__isnull=True) | Q(started_at__isnull=True) | Q(ended_at__gte=F("started_at")),
                name="%(app_label)s_%(class)s_end_after_start",
            ),
        ]

    def __str__(self) -> str:
        return self.experiment_name


class ExperimentResult(ShopScopedModel):
    """One variant's cumulative figures and statistics against control on one day."""

    tenancy: ClassVar[TenantTable] = TenantTable(
        policy=PolicyKind.SHOP, retention=Retention.forever(), parent="experiment"
    )

    experiment = models.ForeignKey(
        Experiment,
        on_delete=models.CASCADE,
        related_name="results",
        # The database enforces (experiment_id, shop_domain) -> experiments instead (migration).
        db_constraint=False,
        db_index=False,
    )
    variant_key = models.CharField(max_length=100)
    snapshot_date = models.DateField(help_text="Day the cumulative figures were taken.")
    participants = models.PositiveIntegerField(default=0)
    conversions = models.PositiveIntegerField(default=0)
    conversion_rate = ratio_field("conversions", "participants", max_digits=20, decimal_places=8)
    avg_order_value = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    revenue_per_user = models.DecimalField(max_digits=12, decimal_places=4, null=True, blank=True)
    revenue_per_user_stddev = models.DecimalField(
        max_digits=14,
        decimal_places=4,
        null=True,
        blank=True,
        help_text="Per-user standard deviation, for Welch's t-test.",
    )
    p_value = models.DecimalField(
        max_digits=12,
        decimal_places=10,
        null=True,
        blank=True,
        validators=PROBABILITY_VALIDATORS,
    )
    confidence_interval_lower = models.DecimalField(max_digits=12, decimal_places=8, null=True, blank=True)
    confidence_interval_upper = models.DecimalField(max_digits=12, decimal_places=8, null=True, blank=True)
    # CUPED: a pre-exposure covariate over the same participants (e.g. orders in the 28 days
    # before exposure): its sum, sum of squares, and sum of products with the conversion (0/1).
    covariate_sum = models.DecimalField(
        max_digits=20, decimal_places=4, null=True, blank=True, help_text="CUPED: Σx over the participants."
    )
    covariate_sum_squares = models.DecimalField(
        max_digits=28, decimal_places=4, null=True, blank=True, help_text="CUPED: Σx² over the participants."
    )
    covariate_cross_sum = models.DecimalField(
        max_digits=20,
        decimal_places=4,
        null=True,
        blank=True,
        help_text="CUPED: Σx·y, y = 1 for a participant who converted, else 0.",
    )
    # Written by the Bayesian engine.
    chance_to_win = models.DecimalField(
        max_digits=12, decimal_places=10, null=True, blank=True, validators=PROBABILITY_VALIDATORS
    )
    expected_loss = models.DecimalField(max_digits=16, decimal_places=10, null=True, blank=True)

    objects = ExperimentResultQuerySet.as_manager()

    class Meta:
        db_table = "experiment_results"
        ordering = ["experiment_id", "variant_key", "-snapshot_date"]
        get_latest_by = "snapshot_date"
        indexes = [
            models.Index(
                fields=["experiment", "variant_key"],
                name="experiment_results_variant_idx",
            ),
            models.Index(
                F("conversion_rate").desc(nulls_last=True),
                name="experiment_results_rate_idx",
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["experiment", "variant_key", "snapshot_date"],
                name="%(app_label)s_%(class)s_daily_uniq",
            ),
            *nonnegative_checks(
                "participants",
                "conversions",
                "avg_order_value",
                "revenue_per_user",
                "revenue_per_user_stddev",
                "covariate_sum",
                "covariate_sum_squares",
                "covariate_cross_sum",
                "expected_loss",
            ),
            *range_checks(0, 1, "p_value", "chance_to_win"),
            models.CheckConstraint(
                condition=(
                    Q(covariate_sum__isnull=True)
                    & Q(covariate_sum_squares__isnull=True)
                    & Q(covariate_cross_sum__isnull=True)
                )
                | (
                    Q(covariate_sum__isnull=False)
                    & Q(covariate_sum_squares__isnull=False)
                    & Q(covariate_cross_sum__isnull=False)
                ),
                name="%(app_label)s_%(class)s_covariate_complete",
            ),
            models.CheckConstraint(
                condition=Q(conversions__lte=F("participants")),
                name="%(app_label)s_%(class)s_conversions_lte_participants",
            ),
            models.CheckConstraint(
                condition=Q(confidence_interval_lower__isnull=True)
                | Q(confidence_interval_upper__isnull=True)
                | Q(confidence_interval_lower__lte=F("confidence_interval_upper")),
                name="%(app_label)s_%(class)s_interval_ordered",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.variant_key} on {self.snapshot_date}"
