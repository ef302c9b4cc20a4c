"""Demo data of the knowledge base (`manage.py seed_demo`, runner in tenancy/demo.py): a
versioned knowledge base embedded by the offline local model."""

from __future__ import annotations

from tenancy.demo import DemoStep, ShopContext

from .embeddings import LocalEmbeddingProvider, document_text
from .factories import KnowledgeDocumentFactory
from .models import DocumentType, KnowledgeDocument

# (key, type, title, tags)
DOCUMENTS = [
    ("shipping-policy", DocumentType.POLICY, "Shipping policy", ["shipping"]),
    ("returns-policy", DocumentType.POLICY, "Returns and exchanges", ["returns"]),
    ("size-guide", DocumentType.GUIDE, "Size guide", ["sizing"]),
    ("brand-voice", DocumentType.BRAND, "Brand voice and tone", ["brand"]),
    ("faq-payments", DocumentType.FAQ, "Payments FAQ", ["payments", "checkout"]),
    ("product-care", DocumentType.PRODUCT, "Caring for your products", ["care"]),
    ("ads-playbook", DocumentType.PLAYBOOK, "Paid search playbook", ["ads"]),
    ("seo-playbook", DocumentType.PLAYBOOK, "SEO playbook", ["seo"]),
    ("wholesale-faq", DocumentType.FAQ, "Wholesale FAQ", ["wholesale"]),
    ("q3-planning-notes", DocumentType.NOTE, "Q3 planning notes", ["planning"]),
]


def _seed_knowledge_base(ctx: ShopContext) -> None:
    if KnowledgeDocument.objects.filter(shop=ctx.shop).exists():
        return
    rng = ctx.rng("knowledge_base")
    revised = set(rng.sample([key for key, *_ in DOCUMENTS[:-1]], 3))
    # The newest note has not been through the embedding job yet.
    unembedded = DOCUMENTS[-1][0]

    # The offline local model, always: demo data must not depend on a network or a paid API,
    # and semantic search then finds these documents with the default EMBEDDING_PROVIDER.
    embedder = LocalEmbeddingProvider()

    def build(key: str, document_type: str, title: str, tags: list[str], version: int) -> KnowledgeDocument:
        embedded = key != unembedded
        document: KnowledgeDocument = KnowledgeDocumentFactory.build(
            shop=ctx.shop,
            document_key=key,
            title=title if version == 1 else f"{title} (updated)",
            document_type=document_type,
            tags=tags,
            version=version,
            is_current=version == 2 or key not in revised,
            embedding=None,
            embedding_model="",
            source_url=f"https://{ctx.shop.domain}/pages/{key}",
        )
        if embedded:
            document.embedding = embedder.embed([document_text(title=document.title, content=document.content)])[0]
            document.embedding_model = embedder.model
        return document

    first = [build(key, kind, title, tags, 1) for key, kind, title, tags in DOCUMENTS]
    # Old versions go in first: at most one current version per key, and v2 points at v1's id.
    KnowledgeDocument.objects.bulk_create(first)
    by_key = {document.document_key: document for document in first}
    second = []
    for key, kind, title, tags in DOCUMENTS:
        if key in revised:
            document = build(key, kind, title, tags, 2)
            document.previous_version = by_key[key]
            second.append(document)
    KnowledgeDocument.objects.bulk_create(second)


DEMO_STEPS = [DemoStep("knowledge base", _seed_knowledge_base)]
