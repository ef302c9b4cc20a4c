"""Lists without model instances: `.values()` rows turned into JSON by per-field converters.

A page of 100 rows through a ModelSerializer costs far more than its query: a model instance
per row, then for every field `get_attribute`, the None check and `to_representation` through
several layers of generic code. For a list, a `RowPlan` reads the same serializer's fields once
(per serializer class) and keeps for each the dict key it reads and a converter that does what
that field's `to_representation` does. Rows come from `queryset.values(...)`, so Django's own
database converters still run (JSON decoded, UUIDs). Decimals stored at the field's scale and
timestamps are read as PostgreSQL's text: its numeric text is DRF's string, and parsing ISO
text costs less than loading the value through psycopg and Django.

Only serializers whose every readable field is a plain model column, rendered by a field class
whose representation the plan reproduces exactly, get a plan; any other (a method field, a
nested serializer, a dotted source, a serializer with its own `to_representation`) keeps the
ModelSerializer. tests/api/test_row_plans.py checks that both give the same JSON for every list
resource.
"""

from __future__ import annotations

import datetime
import decimal
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.db.models import QuerySet
from django.db.models.functions import Cast
from django.utils import timezone
from rest_framework import ISO_8601, fields, relations, serializers
from rest_framework.settings import api_settings

Converter = Callable[[Any], Any]
# Called once per list (not per row): what may change between requests (the active time zone,
# the decimal context) is read then, as DRF reads it on every call.
ConverterFactory = Callable[[], Converter | None]


def _same_code(field: fields.Field[Any, Any, Any, Any], base: type[fields.Field[Any, Any, Any, Any]]) -> bool:
    """Whether `field` reads and renders a value exactly as `base` does (no override)."""
    kind = type(field)
    return kind.to_representation is base.to_representation and kind.get_attribute is base.get_attribute


def _stored_at_scale(field: fields.DecimalField, column: models.Field[Any, Any]) -> bool:
    """Whether the column is numeric(max_digits, decimal_places) of the field: its values
    already have the scale, and at most the digits, that DRF's quantize() gives them."""
    stored = column.output_field if isinstance(column, models.GeneratedField) else column
    return (
        isinstance(stored, models.DecimalField)
        and not hasattr(stored, "from_db_value")
        and (stored.max_digits, stored.decimal_places) == (field.max_digits, field.decimal_places)
    )


def _decimal(field: fields.DecimalField, column: models.Field[Any, Any]) -> ConverterFactory | None:
    coerce = getattr(field, "coerce_to_string", api_settings.COERCE_DECIMAL_TO_STRING)
    if not coerce or field.localize or field.normalize_output:
        return None
    places, digits, rounding = field.decimal_places, field.max_digits, field.rounding
    already_quantized = _stored_at_scale(field, column)

    def factory() -> Converter:
        exponent = None if places is None else decimal.Decimal(".1") ** places
        context = decimal.getcontext().copy()
        if digits is not None:
            context.prec = digits

        def convert(value: Any) -> str:
            if not isinstance(value, decimal.Decimal):
                value = decimal.Decimal(str(value).strip())
            if exponent is not None:
                value = value.quantize(exponent, rounding=rounding, context=context)
            return f"{value:f}"

        if not already_quantized:
            return convert

        def stored_scale(value: Any) -> str:
            return f"{value:f}" if type(value) is decimal.Decimal else convert(value)

        return stored_scale

    return factory


def _datetime(field: fields.DateTimeField) -> ConverterFactory | None:
    if str(getattr(field, "format", api_settings.DATETIME_FORMAT)).lower() != ISO_8601:
        return None
    fixed = field.timezone if hasattr(field, "timezone") else fields.empty

    def factory() -> Converter:
        zone = fixed if fixed is not fields.empty else (timezone.get_current_timezone() if settings.USE_TZ else None)
        if zone is None:
            return field.to_representation

        def convert(value: Any) -> Any:
            if not isinstance(value, datetime.datetime) or value.tzinfo is None:
                # Naive or not a datetime: rare, DRF's own code decides.
                return field.to_representation(value)
            text = value.astimezone(zone).isoformat()
            return text[:-6] + "Z" if text.endswith("+00:00") else text

        return convert

    return factory


def _date(field: fields.DateField) -> ConverterFactory | None:
    if str(getattr(field, "format", api_settings.DATE_FORMAT)).lower() != ISO_8601:
        return None

    def convert(value: Any) -> Any:
        if type(value) is datetime.date:
            return value.isoformat()
        return field.to_representation(value)

    return lambda: convert


def _typed(kind: type) -> Converter:
    """The field's cast, skipped when the database already returned that type."""

    def convert(value: Any) -> Any:
        return value if type(value) is kind else kind(value)

    return convert


# Not in the type stubs (DRF 3.18 added it).
_BIG_INTEGER: type[fields.IntegerField] = fields.BigIntegerField  # type: ignore[attr-defined]
# Fields whose to_representation depends on the value alone (no request, no context).
_SELF_CONTAINED: tuple[type[fields.Field[Any, Any, Any, Any]], ...] = (
    fields.BooleanField,
    fields.ChoiceField,
    fields.UUIDField,
    fields.FloatField,
    fields.TimeField,
    fields.DurationField,
)
_IDENTITY: ConverterFactory = lambda: None  # noqa: E731
_STR = _typed(str)
_INT = _typed(int)
_AS_STR: ConverterFactory = lambda: _STR  # noqa: E731
_AS_INT: ConverterFactory = lambda: _INT  # noqa: E731
_CASTS: dict[ConverterFactory, type] = {_AS_INT: int, _AS_STR: str}


def _converter(field: fields.Field[Any, Any, Any, Any], column: models.Field[Any, Any]) -> ConverterFactory | None:
    """How to render `field`'s non-null value, or None when only the field itself can."""
    if isinstance(field, relations.PrimaryKeyRelatedField):
        # The row holds the foreign key column (attname): the pk DRF would render.
        return _IDENTITY if field.pk_field is None and _same_code(field, relations.PrimaryKeyRelatedField) else None
    if isinstance(field, fields.DecimalField):
        return _decimal(field, column) if _same_code(field, fields.DecimalField) else None
    if isinstance(field, fields.DateTimeField):
        return _datetime(field) if _same_code(field, fields.DateTimeField) else None
    if isinstance(field, fields.DateField):
        return _date(field) if _same_code(field, fields.DateField) else None
    if isinstance(field, fields.JSONField):
        return _IDENTITY if not field.binary and _same_code(field, fields.JSONField) else None
    if isinstance(field, fields.ReadOnlyField):
        return _IDENTITY if _same_code(field, fields.ReadOnlyField) else None
    if isinstance(field, _BIG_INTEGER):
        if not _same_code(field, _BIG_INTEGER):
            return None
        return _AS_STR if getattr(field, "coerce_to_string", api_settings.COERCE_BIGINT_TO_STRING) else _AS_INT
    if isinstance(field, fields.IntegerField):
        return _AS_INT if _same_code(field, fields.IntegerField) else None
    if isinstance(field, fields.CharField):
        return _AS_STR if _same_code(field, fields.CharField) else None
    for base in _SELF_CONTAINED:
        if isinstance(field, base):
            # The field's own to_representation: cheap, and it reads nothing but the value.
            return (lambda: field.to_representation) if _same_code(field, base) else None
    return None


def _from_text(
    field: fields.Field[Any, Any, Any, Any], column: models.Field[Any, Any], factory: ConverterFactory
) -> ConverterFactory | None:
    """A converter of the column's text, for columns cheaper to read as PostgreSQL's text than
    as Python objects (psycopg's Decimal, Django's timestamptz loader), or None."""
    if isinstance(field, fields.DecimalField) and factory is not None and _stored_at_scale(field, column):
        # numeric(p, s) prints exactly s decimals and never an exponent: DRF's string.
        return _IDENTITY
    if isinstance(field, fields.DateTimeField) and type(column) is models.DateTimeField:
        # ISO text (DateStyle ISO, which psycopg's own loader requires too) with its offset.
        def parsed() -> Converter | None:
            convert = factory()
            if convert is None:
                return None
            if _renders_in_utc(field):
                return lambda text: _utc_text(text) or convert(datetime.datetime.fromisoformat(text))
            return lambda text: convert(datetime.datetime.fromisoformat(text))

        return parsed
    return None


def _renders_in_utc(field: fields.DateTimeField) -> bool:
    """Whether DRF renders this field's datetimes in UTC now (the active time zone, or the
    field's own)."""
    fixed = getattr(field, "timezone", None)
    zone = fixed if fixed is not None else (timezone.get_current_timezone() if settings.USE_TZ else None)
    return zone is not None and str(zone) == "UTC"


def _utc_text(text: str) -> str | None:
    """PostgreSQL's text of a timestamptz in UTC ("2026-12-02 08:00:00.12+00", the session's
    time zone, which Django sets to UTC) as DRF renders it ("2026-12-02T08:00:00.120000Z"),
    by moving characters: parsing and formatting a datetime per value cost 1.5 us, ~150 values a
    page. None for any other shape (another offset, BC, a year past 9999): parsed instead."""
    if len(text) < 22 or text[10] != " " or not text.endswith("+00") or text[4] != "-" or text[13] != ":":
        return None
    clock = text[11:-3]
    if len(clock) > 8:
        clock = clock.ljust(15, "0")  # PostgreSQL drops a fraction's trailing zeros; Python prints 6 digits
    return f"{text[:10]}T{clock}Z"


def _column(model: type[models.Model], field: fields.Field[Any, Any, Any, Any]) -> models.Field[Any, Any] | None:
    """The model column `field` reads (its attname is the `.values()` key), or None."""
    if len(field.source_attrs) != 1:
        return None
    source = field.source_attrs[0]
    by_attname = {f.attname: f for f in model._meta.concrete_fields}
    if source in by_attname:
        # The column itself (`shop_id`): what the instance's attribute holds too.
        return by_attname[source]
    try:
        model_field = model._meta.get_field(source)
    except FieldDoesNotExist:
        return None
    if not isinstance(model_field, models.Field) or not model_field.concrete or model_field.many_to_many:
        return None
    if model_field.is_relation and not isinstance(field, relations.PrimaryKeyRelatedField):
        # Another field on a relation would render the related object itself.
        return None
    return model_field


def _loads_as(model_field: models.Field[Any, Any]) -> type | None:
    """The Python type the database driver returns for the column, when it is certain."""
    target: models.Field[Any, Any] | None = model_field
    if isinstance(model_field, models.ForeignKey):
        target = model_field.target_field
    if isinstance(target, models.GeneratedField):
        target = target.output_field
    if hasattr(target, "from_db_value"):
        # A custom field converts what the driver returns.
        return None
    if isinstance(target, models.IntegerField | models.AutoField):
        return int
    if isinstance(target, models.CharField | models.TextField) and not isinstance(target, models.UUIDField):
        return str
    return None


# Suffix of the `.values()` key of a column read as text.
_TEXT = "_as_text"


@dataclass(frozen=True)
class RowPlan:
    """What a list reads (`columns`, and `texts` as PostgreSQL's text) and how it turns each
    `.values()` row into JSON."""

    columns: tuple[str, ...]
    # {key: the column cast to text}. Made once: an expression caches what the ORM asks of it
    # (its identity goes through inspect.signature), and querysets copy it before use.
    texts: dict[str, Cast]
    fields: tuple[tuple[str, str, ConverterFactory], ...]

    def select(self, queryset: QuerySet[Any], *, also: Sequence[str] = ()) -> QuerySet[Any]:
        """`queryset` as the rows `represent` reads, with the columns `also` besides (a
        paginator's sort key)."""
        extra = [name for name in also if name not in self.columns and name not in self.texts]
        return queryset.values(*self.columns, *extra, **self.texts)

    def represent(self, rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        plan = [(name, column, factory()) for name, column, factory in self.fields]
        result = []
        for row in rows:
            item: dict[str, Any] = {}
            for name, column, convert in plan:
                value = row[column]
                # DRF's Serializer renders None as null without asking the field.
                item[name] = value if value is None or convert is None else convert(value)
            result.append(item)
        return result


_PLANS: dict[type[serializers.BaseSerializer[Any]], RowPlan | None] = {}


def row_plan(serializer_class: type[serializers.BaseSerializer[Any]]) -> RowPlan | None:
    """The plan for `serializer_class`, or None when it must render rows itself.

    Made once per class: the fields of a ModelSerializer depend on its class only (none of
    the API's serializers builds fields from the request).
    """
    if serializer_class not in _PLANS:
        _PLANS[serializer_class] = _plan(serializer_class)
    return _PLANS[serializer_class]


def _plan(serializer_class: type[serializers.BaseSerializer[Any]]) -> RowPlan | None:
    if not issubclass(serializer_class, serializers.ModelSerializer):
        return None
    if (
        serializer_class.to_representation is not serializers.Serializer.to_representation
        or serializer_class.get_fields is not serializers.ModelSerializer.get_fields
        or serializer_class.__init__ is not serializers.BaseSerializer.__init__
    ):
        return None
    model: type[models.Model] | None = getattr(getattr(serializer_class, "Meta", None), "model", None)
    if model is None:
        return None
    names = {f.name for f in model._meta.get_fields()} | {f.attname for f in model._meta.concrete_fields}
    planned: list[tuple[str, str, ConverterFactory]] = []
    columns: list[str] = []
    texts: list[str] = []
    for field in serializer_class()._readable_fields:
        column = _column(model, field)
        factory = None if column is None else _converter(field, column)
        if column is None or factory is None:
            return None
        if factory in (_AS_INT, _AS_STR) and _loads_as(column) is _CASTS[factory]:
            # int(value) / str(value) of what already is an int / a str.
            factory = _IDENTITY
        from_text = _from_text(field, column, factory)
        if from_text is not None and column.attname + _TEXT not in names:
            texts.append(column.attname)
            planned.append((str(field.field_name), column.attname + _TEXT, from_text))
        else:
            columns.append(column.attname)
            planned.append((str(field.field_name), column.attname, factory))
    return RowPlan(
        columns=tuple(dict.fromkeys(columns)),
        texts={name + _TEXT: Cast(name, models.TextField()) for name in dict.fromkeys(texts)},
        fields=tuple(planned),
    )
