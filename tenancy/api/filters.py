"""FilterSet base of every resource: datetimes in UTC, and ranges that must be in order."""

from __future__ import annotations

import datetime
import re
from typing import TYPE_CHECKING, Any

import django_filters
from django import forms
from django.db import models
from django.db.models import QuerySet
from django_filters.filterset import FILTER_FOR_DBFIELD_DEFAULTS
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework.exceptions import ValidationError

if TYPE_CHECKING:
    from rest_framework.request import Request
    from rest_framework.views import APIView


# RFC 3339, the `date` and `date-time` formats of the OpenAPI document. Django's form fields
# read far more (`01/02/2024`, `Jan 2 2024`, `20240102`, a moment without an offset), which
# a client would then rely on; a value the contract does not name is a 400.
RFC3339_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
RFC3339_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,6})?([Zz]|[+-]\d{2}:\d{2})")


class RFC3339DateField(forms.DateField):
    def to_python(self, value: Any) -> datetime.date | None:
        if isinstance(value, str) and value and not RFC3339_DATE.fullmatch(value.strip()):
            raise forms.ValidationError("Enter a date as YYYY-MM-DD.", code="invalid")
        return super().to_python(value)


class UTCDateTimeField(forms.DateTimeField):
    """A moment in RFC 3339 (with its offset), converted to UTC.

    Python accepts UTC offsets up to +-23:59, PostgreSQL only up to +-15:59: passed on as
    given, `?crawled_from=...-22:56` would be a database error (a 500). In UTC it is the
    same instant, and always valid.
    """

    def to_python(self, value: Any) -> datetime.datetime | None:
        if isinstance(value, str) and value and not RFC3339_DATETIME.fullmatch(value.strip()):
            raise forms.ValidationError(
                "Enter a date and time as YYYY-MM-DDThh:mm:ss[.ffffff] with Z or an offset (+hh:mm).", code="invalid"
            )
        moment: datetime.datetime | None = super().to_python(value)
        if moment is None:
            return None
        try:
            return moment.astimezone(datetime.UTC)
        except OverflowError as exc:
            raise forms.ValidationError("Datetime value out of range.", code="overflow") from exc


class UTCDateTimeFilter(django_filters.DateTimeFilter):
    field_class = UTCDateTimeField


class StrictBooleanField(forms.Field):
    """`true` or `false`, as OpenAPI serialises a boolean query parameter; django-filter's own
    field reads anything else as "no filter", so `?featured_snippet=yes` silently listed every
    row, and `1`/`0`/`True` were accepted although the document does not say so."""

    VALUES = {"true": True, "false": False}

    def to_python(self, value: Any) -> bool | None:
        if value in (None, ""):
            return None
        if isinstance(value, bool):
            return value
        if str(value) not in self.VALUES:
            raise forms.ValidationError("Enter true or false.", code="invalid")
        return self.VALUES[str(value)]


class RepeatableCSVWidget(django_filters.widgets.BaseCSVWidget, forms.TextInput):
    """A list filter's values in either form: `?status__in=a,b` (what the OpenAPI document
    declares: `style: form, explode: false`) or `?status__in=a&status__in=b` (what generated
    clients send, whatever `explode` says). django-filter's widget read only the last of
    repeated values, so the second form silently answered for `b` alone."""

    def value_from_datadict(self, data: Any, files: Any, name: str) -> list[str] | None:
        values: list[str] = data.getlist(name) if hasattr(data, "getlist") else ([data[name]] if name in data else [])
        if not values:
            return None
        if values == [""]:
            return []  # django-filter's reading of an empty list
        return [item for value in values for item in str(value).split(",")]


def list_parameters(filterset_class: type[django_filters.FilterSet] | None) -> frozenset[str]:
    """The query parameters of a FilterSet that take a list (every other may be given once)."""
    if filterset_class is None:
        return frozenset()
    return frozenset(
        name
        for name, filter_ in filterset_class.base_filters.items()
        if isinstance(filter_, django_filters.BaseCSVFilter)
    )


def refuse_repeated_parameters(request: Request, view: APIView) -> None:
    """A 400 naming every query parameter given more than once that is not a list.

    Django's QueryDict, DRF and django-filter all read the last of repeated values, so
    `?campaign_status=active&campaign_status=paused` answered for `paused` alone, a silent wrong
    answer; only list filters (`..__in`, `tags`) take several values, in either form."""
    lists = list_parameters(getattr(view, "filterset_class", None))
    repeated = sorted(
        (name, len(values)) for name, values in request.query_params.lists() if len(values) > 1 and name not in lists
    )
    if repeated:
        also = f" (lists: {', '.join(sorted(lists))})" if lists else ""
        raise ValidationError(
            {name: [f"Given {count} times; this parameter takes one value{also}."] for name, count in repeated},
            code="repeated",
        )


# Field classes that replace django-filter's defaults in every TenantFilterSet (see __init__).
STRICT_FIELDS: dict[type[django_filters.Filter], type[forms.Field]] = {
    django_filters.BooleanFilter: StrictBooleanField,
    django_filters.DateFilter: RFC3339DateField,
    django_filters.DateTimeFilter: UTCDateTimeField,
}


class OrderedRangesForm(forms.Form):
    """Refuses a range whose lower bound lies after its upper bound.

    Such a range can only be a client mistake (it always matches nothing), so it is a 400
    naming the upper bound rather than a silently empty page.
    """

    # (lower filter, upper filter) pairs, set per FilterSet by `TenantFilterSet`.
    ordered_ranges: tuple[tuple[str, str], ...] = ()
    # Typed filters whose empty value means something (set per FilterSet).
    blank_allowed: tuple[str, ...] = ()

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        for name, field in self.fields.items():
            # An empty value of a typed filter is a client mistake, not "no filter": refused,
            # as the OpenAPI document's types say (text filters may be empty).
            if (
                self.data.get(name) == ""
                and not isinstance(field, forms.CharField)
                and name not in self.blank_allowed
                and name not in self.errors
            ):
                self.add_error(name, forms.ValidationError("Give a value, or leave the parameter out.", code="blank"))
        for low, high in self.ordered_ranges:
            start, end = cleaned.get(low), cleaned.get(high)
            if start is not None and end is not None and end < start:
                self.add_error(high, forms.ValidationError(f"Must not be before {low}.", code="range_order"))
        return cleaned


def _column_choices(model: type[models.Model] | None, filter_: django_filters.Filter) -> tuple[str, ...]:
    try:
        field = model._meta.get_field(filter_.field_name) if model is not None else None
    except Exception:  # a path across a relation, or an annotation
        return ()
    return tuple(str(value) for value, _ in (getattr(field, "choices", None) or ()))


def _items_in(choices: tuple[str, ...]) -> Any:
    """A validator of one item of a list filter (django-filter cleans the items one by one)."""

    def validate(value: Any) -> None:
        if value not in choices:
            raise forms.ValidationError(
                f"Select a valid choice. {value!r} is not one of {', '.join(choices)}.", code="invalid_choice"
            )

    return validate


def _is_integer_column(model: type[models.Model] | None, filter_: django_filters.Filter) -> bool:
    try:
        field = model._meta.get_field(filter_.field_name) if model is not None else None
    except Exception:  # a path across a relation, or an annotation
        return False
    return isinstance(field, models.IntegerField)


class TenantFilterSet(django_filters.FilterSet):
    """Datetime filters in UTC (see UTCDateTimeField); `ordered_ranges` checked by the form."""

    FILTER_DEFAULTS = {**FILTER_FOR_DBFIELD_DEFAULTS, models.DateTimeField: {"filter_class": UTCDateTimeFilter}}

    ordered_ranges: tuple[tuple[str, str], ...] = ()
    blank_allowed: tuple[str, ...] = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for filter_ in self.filters.values():
            if isinstance(filter_, django_filters.BaseCSVFilter):
                filter_.extra["widget"] = RepeatableCSVWidget
                choices = _column_choices(self._meta.model, filter_)
                if choices:
                    # django-filter builds `..__in` of a column with choices as a list of any
                    # text (`?status__in=nope` listed nothing); the OpenAPI items are the enum.
                    filter_.extra["validators"] = [_items_in(choices)]
                filter_.__dict__.pop("_field", None)
                continue
            strict = next((field for kind, field in STRICT_FIELDS.items() if isinstance(filter_, kind)), None)
            if isinstance(filter_, django_filters.NumberFilter) and _is_integer_column(self._meta.model, filter_):
                # django-filter reads every number as a decimal, so `?max_score=2.5` was accepted
                # (and compared) although the column and the OpenAPI document say integer.
                strict = forms.IntegerField
            if strict is None:
                continue
            filter_.field_class = strict
            if strict is StrictBooleanField:
                # django-filter's boolean widgets turn any other text into None before the field sees it.
                filter_.extra["widget"] = forms.TextInput
            filter_.__dict__.pop("_field", None)

    def get_form_class(self) -> type[forms.Form]:
        form_class: type[forms.Form] = super().get_form_class()
        return type(
            form_class.__name__,
            (form_class, OrderedRangesForm),
            {"ordered_ranges": self.ordered_ranges, "blank_allowed": self.blank_allowed},
        )


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
        # First of the filter backends: a NUL in any parameter (search, a text filter) would
        # reach psycopg, which refuses it while running the query (a 500), not a 400.
        bad = sorted({key for key, values in request.query_params.lists() if "\x00" in key + "".join(values)})
        if bad:
            raise ValidationError(
                {key: ["Null characters (\\u0000) are not allowed."] for key in bad}, code="null_characters"
            )
        filterset_class = self.get_filterset_class(view, queryset)
        if filterset_class is None:
            return queryset
        names = set(filterset_class.base_filters)
        if not any(key in names or key.startswith(tuple(names)) for key in request.query_params) and (
            _inert_without_data(filterset_class)
        ):
            return queryset
        return super().filter_queryset(request, queryset, view)
