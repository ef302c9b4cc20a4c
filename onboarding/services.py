"""Onboarding and feature-tour workflows: every move a user makes, with its rules.

Each move locks its row (`SELECT ... FOR UPDATE`) before reading the counters it changes, so
two requests for the same step or tour (two tabs, a double click) are applied one after the
other and no increment is lost. An illegal move raises a `tenancy.errors.Refused` naming the
field and the reason (a 400), and writes nothing.

Steps: not_started -> in_progress (start) -> completed (complete); a step that is not
completed may be skipped; a completed or skipped step goes back to in_progress with retry.
Tours: pending -> active (show) -> completed (complete); a pending or active tour may be
dismissed; a completed or dismissed tour accepts no further move.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from tenancy.errors import Forbidden, NotFound, Refused
from tenancy.models import User
from tenancy.scope import AUTHENTICATED, active_scope

from .models import FeatureTour, OnboardingProgress, StepStatus, TourStatus
from .steps import ONBOARDING_STEPS, onboarding_step_position

# The columns are PostgreSQL integers; a sum past this would be a database error, not a 400.
MAX_COUNTER = 2_147_483_647
INVALID_TRANSITION = "invalid_transition"


def _transition_error(field: str, message: str) -> Refused:
    return Refused({field: [message]}, code=INVALID_TRANSITION)


def _writer() -> str | None:
    """Subject id of whoever is acting (the audit column `created_by`); None for system jobs."""
    scope = active_scope()
    return scope.subject if scope is not None and scope.subject else None


def _ensure_own(*, user_id: uuid.UUID | str, shop_domain: str | None) -> None:
    """A tenant may only move their own steps and tours.

    Row level security already hides other users' rows from the `authenticated` role; this
    check makes the rule hold in the service itself, whatever the caller passes. Staff
    (back_office) and system jobs (service_role) act on behalf of users on purpose.
    """
    scope = active_scope()
    if scope is None or scope.role != AUTHENTICATED:
        return
    if scope.subject != str(user_id) or (shop_domain is not None and scope.shop != shop_domain):
        raise Forbidden("You may only change your own onboarding progress and feature tours.")


def _check_step_key(step_key: str) -> int:
    position = onboarding_step_position(step_key)
    if position is None:
        raise Refused(
            {"step_key": [f"Unknown onboarding step {step_key!r}; expected one of: {', '.join(ONBOARDING_STEPS)}."]},
            code="invalid_choice",
        )
    return position


def _add(current: int, extra: int, field: str) -> int:
    total = current + extra
    if total > MAX_COUNTER:
        raise Refused({field: [f"The total would exceed {MAX_COUNTER}."]}, code="max_value")
    return total


# --- onboarding steps --------------------------------------------------------------------


def _progress_locked(progress: OnboardingProgress) -> OnboardingProgress:
    """The current state of `progress`, locked until the transaction ends."""
    try:
        locked = OnboardingProgress.objects.select_for_update().get(pk=progress.pk)
    except OnboardingProgress.DoesNotExist as exc:
        raise NotFound("No such onboarding progress.") from exc
    _ensure_own(user_id=locked.user_id, shop_domain=locked.shop_id)
    return locked


@transaction.atomic
def onboarding_progress_ensure(
    *, user: User, shop_domain: str, step_key: str, step_order: int | None = None
) -> OnboardingProgress:
    """The user's progress row for a canonical step, created (not started) if missing; locked.

    `INSERT ... ON CONFLICT DO NOTHING` then `SELECT ... FOR UPDATE`: two concurrent first
    moves on a step cannot both insert (the second waits for the first and finds its row).
    """
    _ensure_own(user_id=user.pk, shop_domain=shop_domain)
    position = _check_step_key(step_key)
    if step_order is not None and step_order < 0:
        raise Refused({"step_order": ["Must be 0 or more."]}, code="min_value")
    OnboardingProgress.objects.bulk_create(
        [
            OnboardingProgress(
                user=user,
                shop_id=shop_domain,
                step_key=step_key,
                step_order=position if step_order is None else step_order,
                created_by=_writer(),
            )
        ],
        ignore_conflicts=True,
    )
    return OnboardingProgress.objects.select_for_update().get(user=user, shop_id=shop_domain, step_key=step_key)


@transaction.atomic
def onboarding_step_start(
    *, user: User, shop_domain: str, step_key: str, step_order: int | None = None
) -> OnboardingProgress:
    """Begin (or resume) a step: in_progress, one more attempt, started_at set the first time.

    Starting a step that is already in progress counts as another attempt (the user came back
    to it). A completed or skipped step is reopened with retry, not start.
    """
    progress = onboarding_progress_ensure(user=user, shop_domain=shop_domain, step_key=step_key, step_order=step_order)
    if progress.status in (StepStatus.COMPLETED, StepStatus.SKIPPED):
        raise _transition_error("status", f"Step {step_key!r} is {progress.status}; use retry to work on it again.")
    now = timezone.now()
    progress.status = StepStatus.IN_PROGRESS
    progress.attempts = _add(progress.attempts, 1, "attempts")
    progress.started_at = progress.started_at or now
    progress.save(update_fields=["status", "attempts", "started_at", "updated_at"])
    return progress


@transaction.atomic
def onboarding_step_complete(*, progress: OnboardingProgress, time_spent_seconds: int) -> OnboardingProgress:
    """Finish a step in progress; the time of this attempt is added to the step's total."""
    if time_spent_seconds < 0:
        raise Refused({"time_spent_seconds": ["Must be 0 or more."]}, code="min_value")
    progress = _progress_locked(progress)
    if progress.status != StepStatus.IN_PROGRESS:
        hint = {
            StepStatus.NOT_STARTED: "start it first",
            StepStatus.SKIPPED: "it was skipped; retry it first",
            StepStatus.COMPLETED: "it is already completed",
        }[StepStatus(progress.status)]
        raise _transition_error("status", f"Step {progress.step_key!r} cannot be completed: {hint}.")
    progress.time_spent_seconds = _add(progress.time_spent_seconds, time_spent_seconds, "time_spent_seconds")
    progress.status = StepStatus.COMPLETED
    progress.completed_at = timezone.now()
    progress.save(update_fields=["status", "completed_at", "time_spent_seconds", "updated_at"])
    return progress


@transaction.atomic
def onboarding_step_skip(*, progress: OnboardingProgress) -> OnboardingProgress:
    """Skip a step that is not started or in progress (a completed step stays completed)."""
    progress = _progress_locked(progress)
    if progress.status in (StepStatus.COMPLETED, StepStatus.SKIPPED):
        raise _transition_error("status", f"Step {progress.step_key!r} is already {progress.status}.")
    progress.status = StepStatus.SKIPPED
    progress.save(update_fields=["status", "updated_at"])
    return progress


@transaction.atomic
def onboarding_step_retry(*, progress: OnboardingProgress) -> OnboardingProgress:
    """Reopen a completed or skipped step: in_progress again, one more attempt.

    completed_at is cleared (the step is no longer done); started_at keeps the first start,
    and time_spent_seconds keeps accumulating across attempts.
    """
    progress = _progress_locked(progress)
    if progress.status not in (StepStatus.COMPLETED, StepStatus.SKIPPED):
        raise _transition_error(
            "status", f"Step {progress.step_key!r} is {progress.status}; only a completed or skipped step is retried."
        )
    progress.status = StepStatus.IN_PROGRESS
    progress.attempts = _add(progress.attempts, 1, "attempts")
    progress.completed_at = None
    progress.started_at = progress.started_at or timezone.now()
    progress.save(update_fields=["status", "attempts", "completed_at", "started_at", "updated_at"])
    return progress


@dataclass(frozen=True)
class Summary:
    """Where a user stands on a shop's canonical onboarding steps."""

    total_steps: int
    completed: int
    skipped: int
    in_progress: int
    not_started: int
    percent_complete: float
    next_step: str | None


def onboarding_summary(*, user: User, shop_domain: str) -> Summary:
    """Counts by status over the canonical steps (a step without a row is not started).

    percent_complete is completed / total steps (skipped steps are not complete), to one
    decimal; next_step is the first step, by step_order, neither completed nor skipped.
    Rows for steps outside the canonical list are not counted.
    """
    rows = {
        key: (status, order)
        for key, status, order in OnboardingProgress.objects.for_user(user.pk)
        .for_shop(shop_domain)
        .filter(step_key__in=ONBOARDING_STEPS)
        .values_list("step_key", "status", "step_order")
    }
    counts = dict.fromkeys(StepStatus.values, 0)
    for key in ONBOARDING_STEPS:
        counts[rows.get(key, (StepStatus.NOT_STARTED, 0))[0]] += 1
    open_steps = sorted(
        (rows[key][1] if key in rows else position, position, key)
        for position, key in enumerate(ONBOARDING_STEPS)
        if key not in rows or rows[key][0] not in (StepStatus.COMPLETED, StepStatus.SKIPPED)
    )
    total = len(ONBOARDING_STEPS)
    return Summary(
        total_steps=total,
        completed=counts[StepStatus.COMPLETED],
        skipped=counts[StepStatus.SKIPPED],
        in_progress=counts[StepStatus.IN_PROGRESS],
        not_started=counts[StepStatus.NOT_STARTED],
        percent_complete=round(100 * counts[StepStatus.COMPLETED] / total, 1) if total else 0.0,
        next_step=open_steps[0][2] if open_steps else None,
    )


# --- feature tours -----------------------------------------------------------------------

# The moves of an active tour; a pending tour must be shown first.
_ACTIVE_ONLY = "advance", "back", "interact", "complete"


def _tour_locked(tour: FeatureTour, move: str) -> FeatureTour:
    """The current state of `tour`, locked, after checking that `move` is allowed in it."""
    try:
        locked = FeatureTour.objects.select_for_update().get(pk=tour.pk)
    except FeatureTour.DoesNotExist as exc:
        raise NotFound("No such feature tour.") from exc
    _ensure_own(user_id=locked.user_id, shop_domain=None)
    if locked.status in (TourStatus.COMPLETED, TourStatus.DISMISSED):
        raise _transition_error("status", f"The tour is {locked.status}; it accepts no further moves ({move}).")
    if move in _ACTIVE_ONLY and locked.status == TourStatus.PENDING:
        raise _transition_error("status", f"The tour is pending; show it before it can {move}.")
    return locked


@transaction.atomic
def tour_show(*, tour: FeatureTour) -> FeatureTour:
    """The tour was displayed: one more showing, stamped now; a pending tour becomes active."""
    tour = _tour_locked(tour, "show")
    tour.times_shown = _add(tour.times_shown, 1, "times_shown")
    tour.last_shown_at = timezone.now()
    tour.status = TourStatus.ACTIVE
    tour.save(update_fields=["times_shown", "last_shown_at", "status", "updated_at"])
    return tour


@transaction.atomic
def tour_advance(*, tour: FeatureTour) -> FeatureTour:
    """Move to the next step. At the last step this is an error: finishing is `tour_complete`,
    an explicit move, so that a double "next" cannot complete a tour by accident."""
    tour = _tour_locked(tour, "advance")
    last = len(tour.steps) - 1
    if tour.current_step >= last:
        reason = "The tour has no steps." if last < 0 else f"Already at the last step ({last}); complete the tour."
        raise _transition_error("current_step", reason)
    tour.current_step += 1
    tour.save(update_fields=["current_step", "updated_at"])
    return tour


@transaction.atomic
def tour_back(*, tour: FeatureTour) -> FeatureTour:
    """Move to the previous step; at step 0 this is an error."""
    tour = _tour_locked(tour, "back")
    if tour.current_step <= 0:
        raise _transition_error("current_step", "Already at the first step (0).")
    tour.current_step -= 1
    tour.save(update_fields=["current_step", "updated_at"])
    return tour


@transaction.atomic
def tour_interact(*, tour: FeatureTour) -> FeatureTour:
    """The user interacted with the tour (clicked a target, opened a link)."""
    tour = _tour_locked(tour, "interact")
    tour.interactions = _add(tour.interactions, 1, "interactions")
    tour.save(update_fields=["interactions", "updated_at"])
    return tour


@transaction.atomic
def tour_complete(*, tour: FeatureTour) -> FeatureTour:
    """The user finished an active tour (from any step: the last step's "done" or a "finish")."""
    tour = _tour_locked(tour, "complete")
    tour.status = TourStatus.COMPLETED
    tour.completed_at = timezone.now()
    tour.save(update_fields=["status", "completed_at", "updated_at"])
    return tour


@transaction.atomic
def tour_dismiss(*, tour: FeatureTour) -> FeatureTour:
    """The user closed the tour for good; a pending tour may be dismissed before it is shown."""
    tour = _tour_locked(tour, "dismiss")
    tour.status = TourStatus.DISMISSED
    tour.dismissed_at = timezone.now()
    tour.save(update_fields=["status", "dismissed_at", "updated_at"])
    return tour
