"""Demo data of the onboarding tables (`manage.py seed_demo`, runner in tenancy/demo.py): each
team member's progress through the onboarding steps, and the feature tours they were shown."""

from __future__ import annotations

import datetime

from tenancy.demo import DemoStep, ShopContext, at

from .factories import ONBOARDING_STEPS, TOUR_STEPS, FeatureTourFactory, OnboardingProgressFactory
from .models import FeatureTour, OnboardingProgress, StepStatus, TourStatus

# Steps only an owner can do; other members skip them.
OWNER_ONLY_STEPS = {"connect-store", "connect-google-ads", "connect-social"}


def _seed_onboarding(ctx: ShopContext) -> None:
    if OnboardingProgress.objects.filter(shop=ctx.shop).exists():
        return
    rng = ctx.rng("onboarding")
    rows: list[OnboardingProgress] = []
    # How many steps each person has got through: the owner is done, the others are on the way.
    reached = {
        "owner": len(ONBOARDING_STEPS),
        "ceo": rng.randint(1, 3),
        "member1": rng.randint(2, 5),
        "member2": rng.randint(0, 2),
    }
    for offset, (suffix, user) in enumerate(ctx.team.items()):
        # Everyone joins within the first days of the period; steps follow within hours.
        moment = at(ctx.days[min(offset, len(ctx.days) - 1)], 9 + offset, rng.randint(0, 59))
        for order, step in enumerate(ONBOARDING_STEPS):
            fields: dict[str, object] = {"status": StepStatus.NOT_STARTED}
            if order < reached[suffix] and suffix != "owner" and step in OWNER_ONLY_STEPS:
                fields = {"status": StepStatus.SKIPPED, "started_at": moment, "attempts": 0}
            elif order < reached[suffix]:
                spent = rng.randint(30, 900)
                fields = {
                    "status": StepStatus.COMPLETED,
                    "started_at": moment,
                    "completed_at": moment + datetime.timedelta(seconds=spent),
                    "attempts": rng.choice([1, 1, 1, 2]),
                    "time_spent_seconds": spent,
                }
                moment += datetime.timedelta(seconds=spent, minutes=rng.randint(2, 90))
            elif order == reached[suffix]:
                fields = {
                    "status": StepStatus.IN_PROGRESS,
                    "started_at": moment,
                    "attempts": 1,
                    "time_spent_seconds": rng.randint(10, 300),
                }
            rows.append(
                OnboardingProgressFactory.build(user=user, shop=ctx.shop, step_key=step, step_order=order, **fields)
            )
    OnboardingProgress.objects.bulk_create(rows)


TOURS = [
    ("dashboard-tour", "Dashboard tour"),
    ("campaigns-tour", "Campaigns tour"),
    ("experiments-tour", "Experiments"),
]


def _seed_feature_tours(ctx: ShopContext) -> None:
    users = list(ctx.team.values())
    if FeatureTour.objects.filter(user__in=users).exists():
        return
    rng = ctx.rng("feature_tours")
    last_step = len(TOUR_STEPS) - 1
    tours: list[FeatureTour] = []
    for user in users:
        for tour_key, tour_name in TOURS[: rng.choice([2, 3])]:
            shown = at(rng.choice(ctx.days), rng.randint(9, 18), rng.randint(0, 59))
            status = rng.choice(list(TourStatus))
            fields: dict[str, object] = {}
            if status == TourStatus.COMPLETED:
                fields = {
                    "current_step": last_step,
                    "times_shown": rng.randint(1, 3),
                    "interactions": len(TOUR_STEPS) + rng.randint(0, 4),
                    "last_shown_at": shown,
                    "completed_at": shown + datetime.timedelta(minutes=rng.randint(1, 5)),
                }
            elif status == TourStatus.ACTIVE:
                fields = {
                    "current_step": rng.randint(1, last_step),
                    "times_shown": rng.randint(1, 2),
                    "interactions": rng.randint(1, 3),
                    "last_shown_at": shown,
                }
            elif status == TourStatus.DISMISSED:
                fields = {
                    "current_step": rng.randint(0, 1),
                    "times_shown": rng.randint(1, 4),
                    "interactions": rng.randint(0, 2),
                    "last_shown_at": shown,
                    "dismissed_at": shown + datetime.timedelta(seconds=rng.randint(5, 60)),
                }
            tours.append(
                FeatureTourFactory.build(user=user, tour_key=tour_key, tour_name=tour_name, status=status, **fields)
            )
    FeatureTour.objects.bulk_create(tours)


DEMO_STEPS = [
    DemoStep("onboarding progress", _seed_onboarding),
    DemoStep("feature tours", _seed_feature_tours),
]
