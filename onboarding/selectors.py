"""Reads of the onboarding tables that other apps build on (CEO briefings), for one shop and
one span of UTC days (tenancy/spans.py). The shop is filtered on explicitly: briefings run as
`service_role`, whose policies show every shop."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, Q

from tenancy.spans import Span

from .models import OnboardingProgress, StepStatus


@dataclass(frozen=True)
class OnboardingCounts:
    steps_total: int
    steps_completed: int
    completed_in_span: int


def onboarding_counts(*, shop_id: str, span: Span) -> OnboardingCounts:
    """The shop's (user, step) onboarding rows: all of them, those completed by the span's
    end, and those completed within it."""
    completed = Q(status=StepStatus.COMPLETED, completed_at__lt=span.ends_before)
    counts = OnboardingProgress.objects.for_shop(shop_id).aggregate(
        total=Count("id"),
        completed=Count("id", filter=completed),
        in_span=Count("id", filter=completed & Q(completed_at__gte=span.starts_at)),
    )
    return OnboardingCounts(
        steps_total=counts["total"],
        steps_completed=counts["completed"],
        completed_in_span=counts["in_span"],
    )
