"""factory_boy factories for knowledge documents."""

from __future__ import annotations

import random

import factory

from tenancy.factories import ScopedFactory, ShopFactory

from .models import EMBEDDING_DIMENSIONS, DocumentType, KnowledgeDocument


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
