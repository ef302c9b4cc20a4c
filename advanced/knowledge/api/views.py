"""The knowledge base: versioned documents and their search."""

from __future__ import annotations

from typing import Any, cast

from django.db.models import BooleanField, ExpressionWrapper, Q, QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer

from tenancy.api.viewsets import TenantViewSet

from ..filters import KnowledgeDocumentFilterSet
from ..models import KnowledgeDocument
from ..querysets import KnowledgeDocumentQuerySet
from ..services import (
    knowledge_document_delete,
    knowledge_document_revise,
    knowledge_document_save,
    knowledge_search,
)
from .serializers import (
    KnowledgeDocumentSerializer,
    KnowledgeSearchResponseSerializer,
    KnowledgeSearchSerializer,
)

INCLUDE_EMBEDDING = OpenApiParameter(
    name="include",
    type=OpenApiTypes.STR,
    location=OpenApiParameter.QUERY,
    enum=["embedding"],
    description="`embedding` adds the 1536-float vector to the response.",
)
_ERROR_REF = {"$ref": "#/components/schemas/Error"}
NOT_CURRENT = OpenApiResponse(
    response=_ERROR_REF, description="The id is an older version (history is immutable) or the document moved on."
)
EMBEDDING_FAILED = OpenApiResponse(
    response=_ERROR_REF, description="The embedding provider failed (`embedding_failed`); nothing was written."
)


class KnowledgeDocumentViewSet(TenantViewSet):
    """Documents the shop's AI agents retrieve, versioned by `document_key`; lists show current
    versions and no vectors. A stored version is never edited: POST, PUT and PATCH each add a
    version, and DELETE (of the current version) removes the document with its history."""

    # The vector is ~20 kB of text per row: never loaded for lists, only flagged.
    queryset = KnowledgeDocument.objects.defer("embedding").annotate(
        embedding_present=ExpressionWrapper(Q(embedding__isnull=False), output_field=BooleanField())
    )
    serializer_class = KnowledgeDocumentSerializer
    filterset_class = KnowledgeDocumentFilterSet
    ordering_fields = ["document_key", "title", "document_type", "updated_at", "created_at"]
    ordering = ["document_key", "-version"]

    # Search is a read sent as POST (its body may carry 1536 floats): viewers may search.
    read_actions = ("search",)

    def filter_queryset(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        queryset = super().filter_queryset(queryset)
        # Only lists default to current versions: an older version stays reachable by its id.
        if self.action == "list" and "is_current" not in self.request.query_params:
            queryset = queryset.filter(is_current=True)
        return queryset

    def get_serializer_context(self) -> dict[str, Any]:
        context = super().get_serializer_context()
        include = self.request.query_params.get("include")
        if self.action == "retrieve" and include not in (None, "embedding"):
            # The contract names one value; anything else was silently ignored.
            raise exceptions.ValidationError({"include": ["Only `embedding` may be included."]}, code="invalid")
        context["include_embedding"] = self.action == "retrieve" and include == "embedding"
        return context

    @extend_schema(parameters=[INCLUDE_EMBEDDING])
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().retrieve(request, *args, **kwargs)

    @extend_schema(responses={201: KnowledgeDocumentSerializer, 502: EMBEDDING_FAILED})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """A new document (version 1) or, when `document_key` exists, its next version (201 either way)."""
        return super().create(request, *args, **kwargs)

    @extend_schema(responses={200: KnowledgeDocumentSerializer, 409: NOT_CURRENT, 502: EMBEDDING_FAILED})
    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """A new version from the current one with the body applied; the answer is the new version (new id).
        Fields left out keep their current values. 409 when this id is not the current version."""
        return super().update(request, *args, **kwargs)

    @extend_schema(responses={200: KnowledgeDocumentSerializer, 409: NOT_CURRENT, 502: EMBEDDING_FAILED})
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """A new version from the current one with the given fields changed; the answer is the new version.
        409 when this id is not the current version."""
        return super().partial_update(request, *args, **kwargs)

    @extend_schema(responses={204: None, 409: NOT_CURRENT})
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Delete the document with every version, through its current version (409 for an older one)."""
        return super().destroy(request, *args, **kwargs)

    def perform_create(self, serializer: BaseSerializer[Any]) -> None:
        serializer.instance = knowledge_document_save(
            shop_id=self.tenant.required_shop,
            actor=str(self.request.user.pk),
            **serializer.validated_data,
        )

    def perform_update(self, serializer: BaseSerializer[Any]) -> None:
        assert serializer.instance is not None
        serializer.instance = knowledge_document_revise(
            document=serializer.instance,
            changes=dict(serializer.validated_data),
            actor=str(self.request.user.pk),
            partial=serializer.partial,
        )

    def perform_destroy(self, instance: KnowledgeDocument) -> None:
        knowledge_document_delete(document=instance)

    @extend_schema(
        responses=KnowledgeDocumentSerializer(many=True),
        filters=False,
        parameters=[
            OpenApiParameter(
                "document_key",
                OpenApiTypes.STR,
                OpenApiParameter.PATH,
                pattern=r"^[-a-zA-Z0-9_]+$",
                description="The document's key (a slug).",
            )
        ],
    )
    @action(detail=False, methods=["get"], url_path=r"history/(?P<document_key>[-a-zA-Z0-9_]+)")
    def history(self, request: Request, document_key: str) -> Response:
        """Every version of one document, newest first (404 when the shop has no such key)."""
        versions = cast(KnowledgeDocumentQuerySet, self.get_queryset()).versions_of(document_key)
        if not versions.exists():
            raise exceptions.NotFound(f"No document with key {document_key!r} in this shop.")
        page = self.paginate_queryset(versions)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(
        request=KnowledgeSearchSerializer,
        responses={200: KnowledgeSearchResponseSerializer, 502: EMBEDDING_FAILED},
        filters=False,
    )
    @action(detail=False, methods=["post"])
    def search(self, request: Request) -> Response:
        """The k best current documents for a text `query` or a `vector`, best first, filtered by tags
        and type: semantic (cosine distance), keyword (full text) or hybrid (both, reciprocal rank
        fusion; the default for text), always min(k, matching documents) results. Viewers may search."""
        body = KnowledgeSearchSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        result = knowledge_search(**body.validated_data)
        answer = {
            "count": len(result.documents),
            "mode": result.mode,
            "embedding_model": result.embedding_model,
            "scan": result.scan,
            "query_truncated": result.query_truncated,
            "query_tokens": result.query_tokens,
            "refined_model": result.refined_model,
            "refined_scan": result.refined_scan,
            "results": result.documents,
        }
        return Response(KnowledgeSearchResponseSerializer(answer).data)
