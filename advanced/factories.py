"""factory_boy factories for experiments, knowledge documents and CEO briefings."""

from __future__ import annotations

import datetime
import random

import factory
from django.utils import timezone

from tenancy.factories import ScopedFactory, ShopFactory

from .models import (
    EMBEDDING_DIMENSIONS,
    BriefingType,
    CeoBriefing,
    DocumentType,
    Experiment,
    ExperimentResult,
    ExperimentStatus,
    KnowledgeDocument,
)


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


def unit_vector(seed: int) -> list[float]:
    """A deterministic L2-normalised vector, for documents with no real embedding."""
    rng = random.Random(seed)
    values = [rng.gauss(0.0, 1.0) for _ in range(EMBEDDING_DIMENSIONS)]
    norm = sum(v * v for v in values) ** 0.5
    return [v / norm for v in values]


class KnowledgeDocumentFactory(ScopedFactory[KnowledgeDocument]):
    class Meta:
        model = KnowledgeDocument

    shop = factory.SubFactory(ShopFactory)
    document_key = factory.Sequence(lambda n: f"doc-{n}")
    title = factory.Faker("sentence", nb_words=6)
    content = factory.Faker("paragraph", nb_sentences=6)
    document_type = factory.Iterator(DocumentType.values)
    embedding = factory.Sequence(unit_vector)
    embedding_model = "synthetic-gaussian"
    version = 1
    is_current = True
    tags = factory.LazyFunction(lambda: random.sample(["shipping", "returns", "sizing", "brand", "ads", "seo"], 2))


class CeoBriefingFactory(ScopedFactory[CeoBriefing]):
    class Meta:
        model = CeoBriefing

    shop = factory.SubFactory(ShopFactory)
    briefing_type = BriefingType.WEEKLY
    period_end = factory.Sequence(lambda n: timezone.now().date() - datetime.timedelta(days=7 * n + 1))
    period_start = factory.LazyAttribute(lambda o: o.period_end - datetime.timedelta(days=6))
    executive_summary = factory.Faker("paragraph", nb_sentences=4)
    # The shape generate_briefings writes (advanced/services/briefings/), with made-up figures.
    key_metrics = factory.LazyFunction(
        lambda: {
            "ads": {
                "spend": {
                    "current": f"{random.uniform(500, 5000):.2f}",
                    "change_pct": round(random.uniform(-20, 20), 1),
                },
                "revenue": {
                    "current": f"{random.uniform(2000, 30000):.2f}",
                    "change_pct": round(random.uniform(-20, 30), 1),
                },
                "roas": {"current": round(random.uniform(1.5, 6), 2), "change_pct": round(random.uniform(-15, 15), 1)},
            }
        }
    )
    insights = factory.LazyFunction(
        lambda: [
            {"rank": 1, "title": "Revenue grew faster than spend", "detail": "ROAS improved week over week."},
            {"rank": 2, "title": "Two keywords entered the top 10", "detail": "Organic traffic should follow."},
        ]
    )
    generation_model = "template-v1"
    generation_tokens = None
