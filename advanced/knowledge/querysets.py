"""Chainable read filters for knowledge documents."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pgvector.django import CosineDistance

from tenancy.querysets import ShopQuerySet

from .expressions import exact_distance

if TYPE_CHECKING:
    # Named in string type arguments below, which ruff does not count as uses.
    from .models import KnowledgeDocument  # noqa: F401


class KnowledgeDocumentQuerySet(ShopQuerySet["KnowledgeDocument"]):
    def current(self) -> KnowledgeDocumentQuerySet:
        return self.filter(is_current=True)

    def with_tags(self, tags: list[str]) -> KnowledgeDocumentQuerySet:
        """Documents carrying every tag given (GIN `@>`)."""
        return self.filter(tags__contains=tags)

    def with_any_tags(self, tags: list[str]) -> KnowledgeDocumentQuerySet:
        """Documents carrying at least one of the tags given (GIN `&&`)."""
        return self.filter(tags__overlap=tags)

    def versions_of(self, document_key: str) -> KnowledgeDocumentQuerySet:
        """Every version of one document, newest first."""
        return self.filter(document_key=document_key).order_by("-version")

    def searchable(
        self,
        *,
        tags: Sequence[str] = (),
        tags_mode: str = "all",
        document_type: str | None = None,
        embedding_model: str | None = None,
    ) -> KnowledgeDocumentQuerySet:
        """Current versions with an embedding that pass a search's filters (no tags: no filter)."""
        queryset = self.current().filter(embedding__isnull=False)
        if tags:
            queryset = queryset.with_any_tags(list(tags)) if tags_mode == "any" else queryset.with_tags(list(tags))
        if document_type:
            queryset = queryset.filter(document_type=document_type)
        if embedding_model is not None:
            queryset = queryset.filter(embedding_model=embedding_model)
        return queryset

    def nearest(self, vector: Sequence[float], *, exact: bool) -> KnowledgeDocumentQuerySet:
        """Annotated with cosine `distance` to `vector`, nearest first.

        `exact=False` orders by the bare `embedding <=> vector`, the one shape the IVFFlat
        index can serve. `exact=True` annotates and orders by `(embedding <=> vector) + 0`: an
        expression no index matches, so the planner must compute every candidate's distance
        and sort them (an exact search), whatever its cost estimates say. The ORDER BY names
        the selected expression, so each distance is computed once; `id` breaks ties.
        """
        distance = CosineDistance("embedding", list(vector))
        if exact:
            annotated = self.annotate(distance=exact_distance(distance))
            return annotated.order_by("distance", "id")
        return self.annotate(distance=distance).order_by("distance")
