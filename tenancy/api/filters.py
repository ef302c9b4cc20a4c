"""FilterSet base of every resource: datetimes in UTC, and ranges that must be in order."""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any

import django_filters
from django import forms
from django.db import models
from django.db.models import QuerySet
from django_filters.filterset import FILTER_FOR_DBFIELD_DEFAULTS
from django_filters.rest_framework import DjangoFilterBackend

if TYPE_CHECKING:
    from rest_framework.request import Request
    from rest_framework.views import APIView


class UTCDateTimeField(forms.DateTimeField):
    """A moment, converted to UTC.

    Python accepts UTC offsets up to +-23:59, PostgreSQL only up to +-15:59: passed on as
    given, `?crawled_from=...-22:56` would be a database error (a 500). In UTC it is the
    same instant, and always valid.
    """

    def to_python(self, value: Any) -> datetime.datetime | None:
        moment: datetime.datetime | None = super().to_python(value)
        if moment is None:
            return None
        try:
            return moment.astimezone(datetime.UTC)
        except OverflowError as exc:
            raise forms.ValidationError("Datetime value out of range.", code="overflow") from exc


class UTCDateTimeFilter(django_filters.DateTimeFilter):
    field_class = UTCDateTimeField


class OrderedRangesForm(forms.Form):
    """Refuses a range whose lower bound lies after its upper bound.

    Such a range can only be a client mistake (it always matches nothing), so it is a 400
    naming the upper bound rather than a silently empty page.
    """

    # (lower filter, upper filter) pairs, set per FilterSet by `TenantFilterSet`.
    ordered_ranges: tuple[tuple[str, str], ...] = ()

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        for low, high in self.ordered_ranges:
            start, end = cleaned.get(low), cleaned.get(high)
            if start is not None and end is not None and end < start:
                self.add_error(high, forms.ValidationError(f"Must not be before {low}.", code="range_order"))
        return cleaned


class TenantFilterSet(django_filters.FilterSet):
    """Datetime filters in UTC (see UTCDateTimeField); `ordered_ranges` checked by the form."""

    FILTER_DEFAULTS = {**FILTER_FOR_DBFIELD_DEFAULTS, models.DateTimeField: {"filter_class": UTCDateTimeFilter}}

    ordered_ranges: tuple[tuple[str, str], ...] = ()

    def get_form_class(self) -> type[forms.Form]:
        form_class: type[forms.Form] = super().get_form_class()
        return type(form_class.__name__, (form_class, OrderedRangesForm), {"ordered_ranges": self.ordered_ranges})


def _inert_without_data(filterset_class: type[django_filters.FilterSet]) -> bool:
    """Whether a FilterSet given no data of its own returns the queryset unchanged: no
    required filter, and only django-filter's own filtering, which skips empty values."""
    if filterset_class.filter_queryset is not django_filters.FilterSet.filter_queryset:
        return False
    return all(
        not filter_.extra.get("required") and type(filter_).filter.__module__ == django_filters.filters.__name__
        for filter_ in filterset_class.base_filters.values()
    )


class TenantFilterBackend(DjangoFilterBackend):
    """DjangoFilterBackend that does not build and validate a FilterSet form when the query
    names none of its filters (a plain list or next page): filtering nothing is the queryset."""

    def filter_queryset(self, request: Request, queryset: QuerySet[Any], view: APIView) -> QuerySet[Any]:
        filterset_class = self.get_filterset_class(view, queryset)
        if filterset_class is None:
            return queryset
        names = set(filterset_class.base_filters)
        if not any(key in names or key.startswith(tuple(names)) for key in request.query_params) and (
            _inert_without_data(filterset_class)
        ):
            return queryset
        return super().filter_queryset(request, queryset, view)
