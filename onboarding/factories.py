"""factory_boy factories for onboarding progress and feature tours."""

from __future__ import annotations

import datetime
import random

import factory
from django.utils import timezone

from tenancy.factories import ScopedFactory, ShopFactory, UserFactory

from .models import FeatureTour, OnboardingProgress, StepStatus, TourStatus
from .steps import ONBOARDING_STEPS


class OnboardingProgressFactory(ScopedFactory[OnboardingProgress]):
    class Meta:
        model = OnboardingProgress

    user = factory.SubFactory(UserFactory)
    shop = factory.SubFactory(ShopFactory)
    step_key = factory.Iterator(ONBOARDING_STEPS)
    step_order = factory.LazyAttribute(
        lambda o: ONBOARDING_STEPS.index(o.step_key) if o.step_key in ONBOARDING_STEPS else 0
    )
    status = StepStatus.NOT_STARTED
    attempts = 0
    time_spent_seconds = 0

    class Params:
        completed = factory.Trait(
            status=StepStatus.COMPLETED,
            started_at=factory.LazyFunction(lambda: timezone.now() - datetime.timedelta(minutes=random.randint(2, 60))),
            completed_at=factory.LazyFunction(timezone.now),
            attempts=1,
            time_spent_seconds=factory.Faker("pyint", min_value=20, max_value=900),
        )


TOUR_STEPS = [
    {"title": "Your dashboard", "body": "Revenue, spend and ROAS at a glance.", "target": "#dashboard"},
    {"title": "Campaigns", "body": "Every ad campaign with its daily performance.", "target": "#campaigns"},
    {"title": "Experiments", "body": "Run A/B tests and see when a winner is significant.", "target": "#experiments"},
]


class FeatureTourFactory(ScopedFactory[FeatureTour]):
    class Meta:
        model = FeatureTour

    user = factory.SubFactory(UserFactory)
    tour_key = factory.Sequence(lambda n: f"tour-{n}")
    tour_name = factory.LazyAttribute(lambda o: o.tour_key.replace("-", " ").title())
    steps = factory.LazyFunction(lambda: [dict(step) for step in TOUR_STEPS])
    status = TourStatus.PENDING
    current_step = 0
    times_shown = 0
    interactions = 0
