"""factory_boy factories for experiments and their results."""

from __future__ import annotations

import datetime
import random

import factory
from django.utils import timezone

from tenancy.factories import ScopedFactory, ShopFactory

from .models import Experiment, ExperimentResult, ExperimentStatus


def two_variants() -> list[dict[str, object]]:
    return [
        {"key": "control", "name": "Current page", "weight": 0.5, "is_control": True},
        {"key": "treatment", "name": "New page", "weight": 0.5, "is_control": False},
    ]


class ExperimentFactory(ScopedFactory[Experiment]):
    class Meta:
        model = Experiment

    shop = factory.SubFactory(ShopFactory)
    experiment_key = factory.Sequence(lambda n: f"experiment-{n}")
    experiment_name = factory.Faker(
        "random_element",
        elements=["Free shipping banner", "Checkout button colour", "Product page layout", "Bundle discount"],
    )
    description = factory.Faker("sentence", nb_words=14)
    variants = factory.LazyFunction(two_variants)
    status = ExperimentStatus.RUNNING
    started_at = factory.LazyFunction(lambda: timezone.now().replace(microsecond=0) - datetime.timedelta(days=21))
    primary_metric = "conversion_rate"


class ExperimentResultFactory(ScopedFactory[ExperimentResult]):
    class Meta:
        model = ExperimentResult

    experiment = factory.SubFactory(ExperimentFactory)
    shop = factory.SelfAttribute("experiment.shop")
    variant_key = "control"
    snapshot_date = factory.LazyFunction(lambda: timezone.now().date())
    participants = factory.Faker("pyint", min_value=500, max_value=5000)
    conversions = factory.LazyAttribute(lambda o: int(o.participants * random.uniform(0.02, 0.06)))
