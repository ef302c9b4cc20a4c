"""FilterSet of the knowledge documents: the columns the schema indexes."""

from __future__ import annotations

import django_filters

from tenancy.api.filters import TenantFilterSet

from .models import KnowledgeDocument


class CharListFilter(django_filters.BaseCSVFilter, django_filters.CharFilter):
    """A comma-separated list of strings (`tags=a,b`), passed to the lookup as a list."""


class KnowledgeDocumentFilterSet(TenantFilterSet):
    # Both use the GIN index on tags: `@>` (has every tag) and `&&` (has any of them).
    tags = CharListFilter(field_name="tags", lookup_expr="contains", help_text="Documents having ALL these tags.")
    tags_any = CharListFilter(field_name="tags", lookup_expr="overlap", help_text="Documents having ANY of these tags.")
    is_current = django_filters.BooleanFilter(
        field_name="is_current",
        help_text="Lists show only current versions unless this is given; empty (`?is_current=`): every version.",
    )
    # `?is_current=` (empty) is how a list asks for every version (see the view).
    blank_allowed = ("is_current",)

    class Meta:
        model = KnowledgeDocument
        fields = {"document_type": ["exact", "in"], "document_key": ["exact"]}
