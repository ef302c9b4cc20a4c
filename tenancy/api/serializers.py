"""Serializer base for tenant tables: strict about unknown fields, audit columns read-only."""

from __future__ import annotations

import functools
from decimal import Decimal
from typing import Any

from django.core.validators import RegexValidator
from django.db import models
from rest_framework import serializers
from rest_framework.settings import api_settings

from tenancy.models import MembershipRole, ShopMembership, User

from .parsers import MAX_JSON_DEPTH, json_problem

AUDIT_FIELDS = ("created_by", "created_at", "updated_at")


class NulFreeJSONField(serializers.JSONField):
    """JSON that jsonb can store: PostgreSQL refuses U+0000 and lone surrogates, which would
    otherwise be a 500, and the nesting is bounded (MAX_JSON_DEPTH) whichever parser read it (a
    form-encoded body carries a JSON column as a string that this field decodes itself)."""

    def to_internal_value(self, data: Any) -> Any:
        try:
            value = super().to_internal_value(data)
        except RecursionError as exc:
            raise serializers.ValidationError(
                f"Nested deeper than {MAX_JSON_DEPTH} levels of arrays and objects.", code="too_deep"
            ) from exc
        problem = json_problem(value)
        if problem is not None:
            code, message = problem
            raise serializers.ValidationError(message, code=code)
        return value


class StrictFieldsMixin:
    """Refuse fields the resource does not have, instead of silently dropping them."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            fields = self.fields  # type: ignore[attr-defined]
            unknown = sorted(str(key) for key in data if key not in fields)
            if unknown:
                raise serializers.ValidationError({key: ["Unknown field."] for key in unknown}, code="unknown_field")
            wrong: dict[str, Any] = {
                key: [message] if isinstance(message, str) else message
                for key, value in data.items()
                if (message := _wrong_type(fields[key], value))
            }
            if wrong:
                raise serializers.ValidationError(wrong, code="invalid")
        return super().to_internal_value(data)  # type: ignore[misc]


# Fields whose value DRF reads from an empty string as null (a habit of HTML forms).
_NOT_TEXT = (
    serializers.DecimalField,
    serializers.IntegerField,
    serializers.FloatField,
    serializers.DateField,
    serializers.DateTimeField,
)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _json_type_problem(field: serializers.Field[Any, Any, Any, Any], value: Any) -> str | None:
    """Why a (non-null) value is not of the JSON type the OpenAPI document gives the field.

    DRF coerces across types: a DecimalField reads a JSON number (`12.5`, as a binary float
    first), a BooleanField reads `0`, `1`, `"true"`, `"yes"`, `"on"`, an IntegerField reads
    `"42"` and `true` (as 1), a FloatField reads `"1.5"`, a primary key field reads `"7"` and
    `true`, a CharField turns a number into its text (`"tags": [42]` was the tag "42")."""
    if isinstance(field, serializers.CharField) and not isinstance(value, str):
        return "Not a valid string."
    if (
        isinstance(field, serializers.DecimalField)
        and not isinstance(value, str)
        and getattr(field, "coerce_to_string", api_settings.COERCE_DECIMAL_TO_STRING)
    ):
        # Documented as a string (COERCE_DECIMAL_TO_STRING): the pattern in the schema.
        return 'Send a decimal as a JSON string, e.g. "12.50" (a JSON number is a binary float).'
    if isinstance(field, serializers.BooleanField) and not isinstance(value, bool):
        return "Must be true or false."
    if isinstance(field, serializers.IntegerField) and (not isinstance(value, int) or isinstance(value, bool)):
        return "Must be a whole JSON number."
    if isinstance(field, serializers.FloatField) and not _is_number(value):
        return "Must be a JSON number."
    if isinstance(field, serializers.PrimaryKeyRelatedField) and (
        not isinstance(value, int) or isinstance(value, bool)
    ):
        queryset = field.get_queryset()
        if queryset is not None and isinstance(queryset.model._meta.pk, models.IntegerField):
            return "Must be the row's id, a whole JSON number."
    if (
        isinstance(field, serializers.ChoiceField)
        and not isinstance(value, str)
        and all(isinstance(key, str) for key in field.choices)
    ):
        return "Must be one of the choices, a string."
    return None


def _wrong_type(field: serializers.Field[Any, Any, Any, Any], value: Any) -> str | dict[int, list[str]] | None:
    """Why a value is not of the field's JSON type, where DRF would coerce it (see
    _json_type_problem), and a nullable number or date read `""` as null. The OpenAPI document
    allows none of it."""
    if field.read_only or value is None:
        return None
    if isinstance(field, _NOT_TEXT) and value == "":
        return "A value is required here; send null for none."
    problem = _json_type_problem(field, value)
    if problem is not None:
        return problem
    if isinstance(field, serializers.ListField) and isinstance(value, list):
        child = field.child
        if isinstance(child, serializers.CharField) and any(
            item is not None and not isinstance(item, str) for item in value
        ):
            return "Every item must be a string."
        if child is not None:
            items = {
                index: [problem]
                for index, item in enumerate(value)
                if item is not None and (problem := _json_type_problem(child, item))
            }
            if items:
                return items  # by index, as DRF's ListField reports its items
    return None


@functools.cache
def _check_conditions(model: type[models.Model]) -> tuple[tuple[str, str, Any], ...]:
    """(field, lookup, value) of every CHECK constraint made of ANDed plain lookups.

    Read once per model: a model's constraints do not change while the process runs, and a
    serializer builds its fields on every request (twice per field: bounds and patterns)."""
    out: list[tuple[str, str, Any]] = []
    for constraint in model._meta.constraints:
        condition = getattr(constraint, "condition", None)
        if not isinstance(condition, models.Q) or condition.connector != models.Q.AND or condition.negated:
            continue
        children = [c for c in condition.children if isinstance(c, tuple)]
        if len(children) != len(condition.children):
            continue
        for lookup, value in children:
            field, _, op = str(lookup).rpartition("__")
            out.append((field, op, value))
    return tuple(out)


def check_bounds(model: type[models.Model]) -> dict[str, dict[str, Any]]:
    """min_value/max_value per field, read from the model's CHECK constraints.

    `nonnegative_checks` and `range_checks` declare Q(field__gte=low[, field__lte=high]); the
    API validates the same bounds so that a bad value is a 400 naming the field, not a refusal
    from the database.
    """
    bounds: dict[str, dict[str, Any]] = {}
    for field, op, value in _check_conditions(model):
        if op in {"gte", "lte"} and isinstance(value, int | float | Decimal):
            bounds.setdefault(field, {})["min_value" if op == "gte" else "max_value"] = value
    return bounds


def check_patterns(model: type[models.Model]) -> dict[str, str]:
    """The regular expression per field of CHECK (field ~ 'regex') constraints (e.g. currency)."""
    return {field: value for field, op, value in _check_conditions(model) if op == "regex" and isinstance(value, str)}


class ConstraintBoundsMixin:
    """Give numeric serializer fields the bounds the database enforces."""

    def build_standard_field(self, field_name: str, model_field: models.Field[Any, Any]) -> tuple[Any, dict[str, Any]]:
        field_class, kwargs = super().build_standard_field(field_name, model_field)  # type: ignore[misc]
        limits = check_bounds(model_field.model).get(model_field.attname, {})
        if limits and issubclass(
            field_class, serializers.IntegerField | serializers.DecimalField | serializers.FloatField
        ):
            kwargs.update(limits)
        pattern = check_patterns(model_field.model).get(model_field.attname)
        if pattern is not None and issubclass(field_class, serializers.CharField):
            # Checked here (a 400 naming the field) and documented as the field's `pattern`.
            kwargs["validators"] = [*kwargs.get("validators", []), RegexValidator(pattern, f"Must match {pattern}.")]
        return field_class, kwargs

    def build_field(
        self, field_name: str, info: Any, model_class: type[models.Model], nested_depth: int
    ) -> tuple[Any, dict[str, Any]]:
        model_field = info.fields.get(field_name)
        if isinstance(model_field, models.GeneratedField) and isinstance(model_field.output_field, models.DecimalField):
            # Generated ratios render like every other decimal (a string), read-only.
            output = model_field.output_field
            return serializers.DecimalField, {
                "max_digits": output.max_digits,
                "decimal_places": output.decimal_places,
                "read_only": True,
                "allow_null": True,
                "help_text": model_field.help_text or None,
            }
        return super().build_field(field_name, info, model_class, nested_depth)  # type: ignore[misc]


class StrictModelSerializer(StrictFieldsMixin, ConstraintBoundsMixin, serializers.ModelSerializer[Any]):
    """Every model serializer of the API: unknown fields refused, the database's numeric
    bounds checked, JSON that jsonb can store, generated ratios rendered as decimals."""

    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.JSONField: NulFreeJSONField,
    }


class TenantModelSerializer(StrictModelSerializer):
    """`shop_domain` comes from the request's scope, never from the body."""

    shop_domain = serializers.CharField(source="shop_id", read_only=True)

    class Meta:
        read_only_fields: tuple[str, ...] = ("id", "shop_domain", *AUDIT_FIELDS)


class MembershipSerializer(serializers.ModelSerializer[ShopMembership]):
    shop_domain = serializers.CharField(source="shop_id")
    shop_name = serializers.CharField(source="shop.name")
    role = serializers.ChoiceField(choices=MembershipRole.choices)

    class Meta:
        model = ShopMembership
        fields = ("shop_domain", "shop_name", "role")


class MeSerializer(serializers.ModelSerializer[User]):
    shops = MembershipSerializer(source="memberships", many=True)

    class Meta:
        model = User
        fields = ("id", "username", "email", "first_name", "last_name", "shops")
