"""Knowledge documents: edited as new versions; history is read-only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.db import transaction
from django.db.models import BooleanField, ExpressionWrapper, Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.text import capfirst

from backoffice.bases import AUDIT_FIELDS
from backoffice.forms import ServiceFormAdmin, ServiceModelForm
from tenancy.admin import SHOP_FILTER
from tenancy.errors import DomainError

from ..common import EMPTY
from .embeddings import embedding_provider
from .expressions import refined_current
from .models import KnowledgeDocument
from .services import (
    knowledge_document_delete,
    knowledge_document_revise,
    knowledge_document_save,
    knowledge_reembed,
)

DOCUMENT_FIELDS = ("title", "content", "document_type", "tags", "source_url")


class KnowledgeDocumentAddForm(ServiceModelForm):
    """Version 1 of a new document, embedded by the configured provider."""

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        shop, key = cleaned.get("shop"), cleaned.get("document_key")
        if shop is not None and key:
            current = KnowledgeDocument.objects.filter(shop=shop, document_key=key).order_by("-version").first()
            if current is not None:
                self.add_error(
                    "document_key",
                    f"{shop} already has a document {key!r} (version {current.version}); edit its current version "
                    "to add a new one.",
                )
        return cleaned

    def perform(self) -> KnowledgeDocument:
        data = self.cleaned_data
        return knowledge_document_save(
            shop_id=data["shop"].pk,
            document_key=data["document_key"],
            **{name: data[name] for name in DOCUMENT_FIELDS},
            actor=None if self.actor is None else str(self.actor.pk),
        )


class KnowledgeDocumentReviseForm(ServiceModelForm):
    """The edit of a current version, saved as the next version (history is never edited)."""

    def perform(self) -> KnowledgeDocument | None:
        # The form has already copied the edits onto self.instance: compare with the stored
        # version (the service also decides from it whether the text, so the embedding, changed).
        stored = KnowledgeDocument.objects.defer("embedding").get(pk=self.instance.pk)
        changes = {
            name: self.cleaned_data[name]
            for name in DOCUMENT_FIELDS
            if name in self.cleaned_data and self.cleaned_data[name] != getattr(stored, name)
        }
        if not changes:
            return None
        return knowledge_document_revise(
            document=stored, changes=changes, actor=None if self.actor is None else str(self.actor.pk)
        )


@dataclass(frozen=True)
class VersionRow:
    pk: int
    version: int
    is_current: bool
    title: str
    created_at: Any
    created_by: str | None
    previous_version_id: int | None
    url: str


def document_versions(document: KnowledgeDocument) -> list[VersionRow]:
    """Every version of the document's key, newest first (one query, never the embedding)."""
    cached: list[VersionRow] | None = getattr(document, "_admin_versions", None)
    if cached is not None:
        return cached
    rows = (
        KnowledgeDocument.objects.versions_of(document.document_key)
        .for_shop(document.shop_id)
        .values("pk", "version", "is_current", "title", "created_at", "created_by", "previous_version_id")
    )
    versions = [
        VersionRow(**row, url=reverse("admin:advanced_knowledgedocument_change", args=[row["pk"]])) for row in rows
    ]
    document._admin_versions = versions  # type: ignore[attr-defined]
    return versions


@admin.register(KnowledgeDocument)
class KnowledgeDocumentAdmin(ServiceFormAdmin):
    list_display = (
        "title",
        "document_key",
        "version",
        "is_current",
        "shop",
        "document_type",
        "has_embedding",
        "embedding_model",
        "is_refined",
        "updated_at",
    )
    list_filter = ("document_type", "is_current", "embedding_model", SHOP_FILTER)
    search_fields = ("title", "document_key", "shop__domain")
    date_hierarchy = "created_at"
    ordering = ("shop__domain", "document_key", "-version")
    # A vector(1536) is ~20 kB of text per row: neither the list nor the form loads it, and a
    # form without the field leaves the stored embedding alone.
    exclude = ("embedding", "search_language", "refined_embedding")
    actions = ("reembed_shop",)

    @admin.action(description="Re-embed this shop's documents with the current model", permissions=["change"])
    def reembed_shop(self, request: HttpRequest, queryset: QuerySet[KnowledgeDocument]) -> None:
        """Every current version of the selected documents' shop (one shop at a time) moved to
        the configured embedding model and search language, in the admin's own scope."""
        shops = sorted(set(queryset.values_list("shop_id", flat=True)))
        if len(shops) != 1:
            self.message_user(
                request,
                f"Select documents of exactly one shop to re-embed it; the selection spans {len(shops)}.",
                messages.ERROR,
            )
            return
        try:
            moved = sum(batch.updated for batch in knowledge_reembed(shop_id=shops[0]))
        except DomainError as exc:
            self.message_user(request, f"Not re-embedded: {exc}", messages.ERROR)
            return
        model = embedding_provider().model
        self.message_user(request, f"Re-embedded {moved} document(s) of {shops[0]} with {model}.", messages.SUCCESS)

    def get_queryset(self, request: HttpRequest) -> QuerySet[KnowledgeDocument]:
        return (
            super()
            .get_queryset(request)
            .defer("embedding", "refined_embedding")
            .annotate(
                embedding_present=ExpressionWrapper(Q(embedding__isnull=False), output_field=BooleanField()),
                refined_present=ExpressionWrapper(refined_current(), output_field=BooleanField()),
            )
        )

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        if obj is None:
            kwargs["form"] = KnowledgeDocumentAddForm
        elif obj.is_current:
            kwargs["form"] = KnowledgeDocumentReviseForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fieldsets(self, request: HttpRequest, obj: KnowledgeDocument | None = None) -> Any:
        if obj is None:
            return [
                (
                    None,
                    {
                        "fields": ("shop", "document_key", *DOCUMENT_FIELDS),
                        "description": "Saved as version 1; its embedding is computed when you save.",
                    },
                )
            ]
        note = (
            "Saving stores your edit as a new version; this one stays in the history unchanged."
            if obj.is_current
            else "An earlier version: history is read-only. Edit the current version to change the document."
        )
        return [
            ("Document", {"fields": ("shop", "document_key", *DOCUMENT_FIELDS), "description": note}),
            ("Versions", {"fields": ("version", "is_current", "version_links", "version_history")}),
            (
                "Embedding",
                {"fields": ("has_embedding", "embedding_model", "is_refined", "refined_model", "refined_at")},
            ),
            ("Audit", {"classes": ("collapse",), "fields": AUDIT_FIELDS}),
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: KnowledgeDocument | None = None) -> tuple[str, ...]:
        shown = (
            "version",
            "is_current",
            "version_links",
            "version_history",
            "has_embedding",
            "embedding_model",
            "is_refined",
            "refined_model",
            "refined_at",
            *AUDIT_FIELDS,
        )
        if obj is None:
            return shown
        if not obj.is_current:
            return ("shop", "document_key", *DOCUMENT_FIELDS, *shown)
        return ("shop", "document_key", *shown)

    def has_change_permission(self, request: HttpRequest, obj: KnowledgeDocument | None = None) -> bool:
        # History is read-only: an earlier version's page is a view, with no save buttons.
        if obj is not None and not obj.is_current:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: KnowledgeDocument | None = None) -> bool:
        # A document is deleted with its whole history, through its current version.
        if obj is not None and not obj.is_current:
            return False
        return super().has_delete_permission(request, obj)

    def delete_model(self, request: HttpRequest, obj: KnowledgeDocument) -> None:
        knowledge_document_delete(document=obj)

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> Any:
        # "Delete selected" removes whole documents, through their current versions (see
        # delete_queryset): the confirmation lists every version that goes, and only those.
        # History versions are not passed to Django's collector, whose per-object permission
        # check would refuse them (they cannot be deleted on their own).
        currents = [obj for obj in objs if obj.is_current]
        deleted, counts, perms_needed, protected = super().get_deleted_objects(currents, request)
        documents = Q(pk__in=[])
        for obj in currents:
            documents |= Q(shop_id=obj.shop_id, document_key=obj.document_key)
        history = list(KnowledgeDocument.objects.filter(documents, is_current=False).defer("embedding"))
        label = capfirst(str(KnowledgeDocument._meta.verbose_name))
        deleted = [*deleted, *(f"{label}: {obj} (an earlier version, deleted with its document)" for obj in history)]
        if history:
            plural = str(KnowledgeDocument._meta.verbose_name_plural)
            counts[plural] = counts.get(plural, 0) + len(history)
        return deleted, counts, perms_needed, protected

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[KnowledgeDocument]) -> None:
        """The bulk "delete selected": each selected current version deletes its document with
        its whole history (as the single delete does); selected history versions are kept."""
        selected = list(queryset.defer("embedding"))
        deleting = {(obj.shop_id, obj.document_key) for obj in selected if obj.is_current}
        kept = [obj for obj in selected if (obj.shop_id, obj.document_key) not in deleting]
        with transaction.atomic():
            for obj in selected:
                if obj.is_current:
                    knowledge_document_delete(document=obj)
        if kept:
            self.message_user(
                request,
                f"Not deleted: {len(kept)} earlier version(s) selected without their document's current "
                "version. A document is deleted with its whole history, through its current version.",
                messages.WARNING,
            )

    def response_change(self, request: HttpRequest, obj: KnowledgeDocument) -> HttpResponse:
        response = super().response_change(request, obj)
        page = reverse("admin:advanced_knowledgedocument_change", args=[obj.pk])
        if request.path != page:
            # The edit was saved as a new version: say so, and continue on that version's page.
            self.message_user(
                request,
                f"Saved as version {obj.version}; version {obj.version - 1} stays in the history unchanged.",
                messages.INFO,
            )
            if "_continue" in request.POST:
                return HttpResponseRedirect(page)
        return response

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if request.method == "POST":
            document = self.get_object(request, unquote(object_id))
            if document is not None and not document.is_current:
                # The page was opened while this version was current; someone saved a newer one since.
                current = next((v for v in document_versions(document) if v.is_current), None)
                newer = f"version {current.version} is" if current else "no version is"
                self.message_user(
                    request,
                    f"Not saved: version {document.version} of {document.document_key!r} is no longer current "
                    f"({newer}). Edit the current version.",
                    messages.ERROR,
                )
                return HttpResponseRedirect(current.url if current else request.path)
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.display(description="has embedding", boolean=True, ordering="embedding_present")
    def has_embedding(self, obj: KnowledgeDocument) -> bool:
        # Rows that did not come from get_queryset (the add page's empty instance) have no flag.
        return bool(getattr(obj, "embedding_present", False))

    @admin.display(description="refined", boolean=True, ordering="refined_present")
    def is_refined(self, obj: KnowledgeDocument) -> bool:
        """Whether search uses its refined vector: present, of the refined model and of this text
        (the refine job, docs/operations.md, fills it about a minute after a save)."""
        return bool(getattr(obj, "refined_present", False))

    @admin.display(description="previous / next")
    def version_links(self, obj: KnowledgeDocument) -> str:
        if obj.pk is None:
            return EMPTY
        versions = document_versions(obj)
        previous = next((v for v in versions if v.pk == obj.previous_version_id), None)
        if previous is None:
            previous = next((v for v in versions if v.version == obj.version - 1), None)
        following = next((v for v in versions if v.previous_version_id == obj.pk), None)
        if following is None:
            following = next((v for v in versions if v.version == obj.version + 1), None)
        return render_to_string(
            "admin/advanced/knowledgedocument/version_links.html", {"previous": previous, "next": following}
        )

    @admin.display(description="version history")
    def version_history(self, obj: KnowledgeDocument) -> str:
        if obj.pk is None:
            return EMPTY
        return render_to_string(
            "admin/advanced/knowledgedocument/version_history.html",
            {"versions": document_versions(obj), "shown": obj.pk},
        )
