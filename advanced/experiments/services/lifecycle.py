"""A/B experiments: the rules of `variants`, the lifecycle, and the statistical analysis.

Lifecycle (`status`), one service per move:

    draft --start--> running --pause--> paused --resume--> running
    running/paused --complete--> completed --archive--> archived

`start` stamps started_at the first time and requires valid variants; `complete` stamps
ended_at and may record a winner. A paused experiment cannot be archived directly: it is
completed first, so every archived experiment has an end and a recorded decision. Archived is
final. An illegal move raises a `tenancy.errors.Refused` on `status` (code `invalid_transition`,
a 400 over the API) naming the current status and the moves allowed from it, and writes
nothing. Each move locks the experiment's row first, so concurrent moves apply one at a time.

Analysis (`experiment_analyze`): see `analysis`.
"""

from __future__ import annotations

import math
from typing import Any

from django.db import transaction
from django.utils import timezone

from tenancy.errors import Refused
from tenancy.services import row_update

from ..models import Experiment, ExperimentStatus, GuardrailMetric, StatsEngine

# Weights are shares of traffic: fractions summing to 1, or percentages summing to 100.
WEIGHT_TOTALS = (1.0, 100.0)
WEIGHT_TOLERANCE = 1e-9
# winning_variant and experiment_results.variant_key are varchar(100); a longer key could
# never be reported on.
VARIANT_KEY_MAX_LENGTH = 100
INVALID_TRANSITION = "invalid_transition"

# status -> {move: new status}
TRANSITIONS: dict[str, dict[str, str]] = {
    ExperimentStatus.DRAFT: {"start": ExperimentStatus.RUNNING},
    ExperimentStatus.RUNNING: {"pause": ExperimentStatus.PAUSED, "complete": ExperimentStatus.COMPLETED},
    ExperimentStatus.PAUSED: {"resume": ExperimentStatus.RUNNING, "complete": ExperimentStatus.COMPLETED},
    ExperimentStatus.COMPLETED: {"archive": ExperimentStatus.ARCHIVED},
    ExperimentStatus.ARCHIVED: {},
}
# Statuses in which a recorded winner is a decision the analysis must not overturn.
DECIDED_STATUSES = frozenset({ExperimentStatus.COMPLETED, ExperimentStatus.ARCHIVED})


# --- variants ----------------------------------------------------------------------------


def _is_nonempty_string(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _is_number(value: Any) -> bool:
    # JSON true/false are ints to Python; a weight of `true` is a mistake, not 1.
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def variant_errors(variants: Any, *, check_weight_total: bool = True) -> list[str]:
    """Every problem of an experiment's `variants`, each naming the variant and the rule:
    at least two objects, unique non-empty keys, positive weights summing to 1 or 100, and
    exactly one control. `check_weight_total=False` lets the analysis read rows whose weights
    were rounded (1/3 stored as 0.3333): it normalises them anyway."""
    if not isinstance(variants, list):
        return ["Must be a JSON array of variant objects."]
    if len(variants) < 2:
        return [f"An experiment needs at least two variants; got {len(variants)}."]
    errors: list[str] = []
    seen: dict[str, int] = {}
    controls: list[int] = []
    total = 0.0
    for position, variant in enumerate(variants):
        where = f"variants[{position}]"
        if not isinstance(variant, dict):
            errors.append(f"{where} must be an object, not {type(variant).__name__}.")
            continue
        key: Any = variant.get("key")
        if not _is_nonempty_string(key):
            errors.append(f"{where}.key must be a non-empty string.")
        elif len(key) > VARIANT_KEY_MAX_LENGTH:
            errors.append(f"{where}.key must be at most {VARIANT_KEY_MAX_LENGTH} characters.")
        elif key in seen:
            errors.append(f"{where}.key {key!r} is already the key of variants[{seen[key]}]; keys must be unique.")
        else:
            seen[key] = position
        weight: Any = variant.get("weight")
        if not _is_number(weight) or weight <= 0:
            errors.append(f"{where}.weight must be a number greater than 0; got {weight!r}.")
        else:
            total += weight
        is_control: Any = variant.get("is_control", False)
        if not isinstance(is_control, bool):
            errors.append(f"{where}.is_control must be true or false; got {is_control!r}.")
        elif is_control:
            controls.append(position)
    if (
        check_weight_total
        and not errors
        and not any(math.isclose(total, goal, rel_tol=WEIGHT_TOLERANCE) for goal in WEIGHT_TOTALS)
    ):
        errors.append(f"Variant weights must sum to 1 or to 100; they sum to {total:g}.")
    if len(controls) != 1:
        which = f" (variants {', '.join(map(str, controls))})" if controls else ""
        errors.append(f"Exactly one variant must have is_control: true; {len(controls)} do{which}.")
    return errors


def variant_keys(variants: Any) -> list[str]:
    """The keys of stored variants (tolerant of rows written before validation existed)."""
    if not isinstance(variants, list):
        return []
    return [v["key"] for v in variants if isinstance(v, dict) and isinstance(v.get("key"), str)]


def variants_change_error(*, experiment: Experiment, variants: Any) -> str | None:
    """Why `experiment`'s variants may not become `variants`, or None. Variants are the design
    traffic is split by: they change only while the experiment is a draft (the admin shows them
    read-only after that, the API refuses the change)."""
    if experiment.status == ExperimentStatus.DRAFT or variants == experiment.variants:
        return None
    return (
        f"Variants can only change while the experiment is a draft; it is {experiment.status}. "
        "Create a new experiment to test another design."
    )


# --- analysis design ---------------------------------------------------------------------

# How the analysis decides: fixed once traffic is split, so that no one can pick, after
# looking, the engine or plan that declares the winner they want.
DESIGN_FIELDS = (
    "stats_engine",
    "multiple_testing_correction",
    "sequential_tuning",
    "planned_sample_size",
    "planned_end_date",
    "prior_mean",
    "prior_variance",
    "risk_threshold",
    "guardrail_metrics",
)


def design_errors(values: dict[str, Any]) -> dict[str, str]:
    """Rules across the design fields (field -> reason): a prior needs both its mean and its
    variance; a fixed-horizon test needs its plan (a planned sample or an end date)."""
    errors: dict[str, str] = {}
    mean, variance = values.get("prior_mean"), values.get("prior_variance")
    if mean is not None and variance is None:
        errors["prior_variance"] = "Required with prior_mean: a normal prior needs its variance."
    if variance is not None and mean is None:
        errors["prior_mean"] = "Required with prior_variance: a normal prior needs its mean."
    if (
        values.get("stats_engine") == StatsEngine.FIXED_HORIZON
        and values.get("planned_sample_size") is None
        and values.get("planned_end_date") is None
    ):
        errors["stats_engine"] = (
            "fixed_horizon needs planned_sample_size or planned_end_date: a fixed-horizon test is valid at one "
            "planned look only. Use sequential to look at any time."
        )
    guardrails = values.get("guardrail_metrics")
    known = [metric.value for metric in GuardrailMetric]
    if guardrails is not None and (
        not isinstance(guardrails, list) or not all(isinstance(m, str) and m in known for m in guardrails)
    ):
        errors["guardrail_metrics"] = (
            f"Must be a list of guardrail metrics among: {', '.join(known)}; got {guardrails!r}."
        )
    elif guardrails and len(set(guardrails)) != len(guardrails):
        errors["guardrail_metrics"] = "Name each guardrail metric once."
    return errors


def design_change_errors(*, experiment: Experiment, values: dict[str, Any]) -> dict[str, str]:
    """Design fields `values` would change on an experiment that is no longer a draft."""
    if experiment.status == ExperimentStatus.DRAFT:
        return {}
    return {
        name: (
            f"The analysis design can only change while the experiment is a draft; it is {experiment.status}. "
            "Choosing the engine or plan after seeing data would void its error rate."
        )
        for name in DESIGN_FIELDS
        if name in values and values[name] != getattr(experiment, name)
    }


# --- lifecycle ---------------------------------------------------------------------------


def _locked(experiment: Experiment) -> Experiment:
    """The experiment's current state, locked until the transaction ends."""
    return Experiment.objects.select_for_update().get(pk=experiment.pk)


def _transition_error(status: str, move: str) -> Refused:
    allowed = TRANSITIONS.get(status, {})
    moves = ", ".join(f"{name} (to {target})" for name, target in allowed.items()) or "none (archived is final)"
    message = f"Cannot {move} an experiment that is {status}. Allowed from {status}: {moves}."
    return Refused({"status": [message]}, code=INVALID_TRANSITION)


def _apply(locked: Experiment, move: str, **changes: Any) -> Experiment:
    """Make `move` on a locked experiment, or refuse it if its status does not allow it."""
    target = TRANSITIONS.get(locked.status, {}).get(move)
    if target is None:
        raise _transition_error(locked.status, move)
    return row_update(instance=locked, data={"status": target, **changes})


@transaction.atomic
def experiment_start(*, experiment: Experiment) -> Experiment:
    """draft -> running; started_at is stamped the first time. The variants must be valid."""
    locked = _locked(experiment)
    if "start" not in TRANSITIONS.get(locked.status, {}):
        raise _transition_error(locked.status, "start")
    errors = variant_errors(locked.variants)
    if errors:
        raise Refused({"variants": errors})
    return _apply(locked, "start", started_at=locked.started_at or timezone.now())


@transaction.atomic
def experiment_pause(*, experiment: Experiment) -> Experiment:
    """running -> paused."""
    return _apply(_locked(experiment), "pause")


@transaction.atomic
def experiment_resume(*, experiment: Experiment) -> Experiment:
    """paused -> running."""
    return _apply(_locked(experiment), "resume")


@transaction.atomic
def experiment_complete(*, experiment: Experiment, winner: str | None) -> Experiment:
    """running or paused -> completed; ended_at is stamped.

    `winner`, when given, must be a variant key and becomes winning_variant; confidence_level
    is kept only if the analysis had declared that same winner (it measures the analysis'
    confidence, which a person's choice does not have). With no `winner`, whatever the
    latest analysis declared (possibly nothing) stays the result.
    """
    locked = _locked(experiment)
    if "complete" not in TRANSITIONS.get(locked.status, {}):
        raise _transition_error(locked.status, "complete")
    changes: dict[str, Any] = {"ended_at": timezone.now()}
    if winner is not None:
        keys = variant_keys(locked.variants)
        if winner not in keys:
            message = f"{winner!r} is not a variant of this experiment (keys: {', '.join(keys) or 'none'})."
            raise Refused({"winner": [message]}, code="invalid_choice")
        changes["winning_variant"] = winner
        if winner != locked.winning_variant:
            changes["confidence_level"] = None
    return _apply(locked, "complete", **changes)


@transaction.atomic
def experiment_archive(*, experiment: Experiment) -> Experiment:
    """completed -> archived (final)."""
    return _apply(_locked(experiment), "archive")
