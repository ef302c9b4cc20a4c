"""OpenAPI: every tenant-scoped operation documents the X-Shop-Domain header."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.openapi import AutoSchema
from rest_framework import serializers

from .scoping import OPTIONAL_SHOP_HEADER_PARAMETER, SHOP_HEADER_PARAMETER, TenantScopedViewMixin


def decimal_pattern(field: serializers.DecimalField) -> str:
    """The strings a DecimalField accepts, strictly: drf-spectacular's own pattern allows ``""``
    and ``"."`` (refused) and a sign where the column's CHECK has a lower bound of 0."""
    places = field.decimal_places or 0
    whole = (field.max_digits - places) if field.max_digits is not None else None
    digits = f"\\d{{1,{whole}}}" if whole else ("0" if whole == 0 else "\\d+")
    sign = "" if field.min_value is not None and field.min_value >= 0 else "-?"
    fraction = f"(?:\\.\\d{{1,{places}}})?" if places else ""
    return f"^{sign}{digits}{fraction}$"


class TenantAutoSchema(AutoSchema):
    def get_request_serializer(self) -> Any:
        # A bulk batch is an array of the resource's rows (1 to API_BULK_MAX_ROWS), each validated
        # by the view's row serializer: document exactly that, not "a list of any objects".
        if getattr(self.view, "action", None) == "bulk" and hasattr(self.view, "bulk_serializer_class"):
            return serializers.ListSerializer(
                child=self.view.bulk_serializer_class(), min_length=1, max_length=settings.API_BULK_MAX_ROWS
            )
        return super().get_request_serializer()

    def _map_serializer_field(self, field: Any, direction: str, bypass_extensions: bool = False) -> dict[str, Any]:
        result: dict[str, Any] = super()._map_serializer_field(field, direction, bypass_extensions)
        # A decimal rendered as a string is documented by a pattern that allows a sign; with a
        # lower bound of 0 (the database's CHECK) a negative value is refused, so say so.
        if isinstance(field, serializers.DecimalField) and "pattern" in result:
            result["pattern"] = decimal_pattern(field)
        return result

    def get_override_parameters(self) -> list[Any]:
        parameters = list(super().get_override_parameters())
        if isinstance(self.view, TenantScopedViewMixin):
            required = getattr(self.view, "shop_required", True)
            parameters.append(SHOP_HEADER_PARAMETER if required else OPTIONAL_SHOP_HEADER_PARAMETER)
        return parameters


ERROR_SCHEMA = {
    "type": "object",
    "required": ["status", "code", "detail", "errors"],
    "properties": {
        "status": {"type": "integer"},
        "code": {"type": "string"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "code", "message"],
                "properties": {
                    "index": {"type": "integer", "description": "Row of a bulk batch."},
                    "field": {"type": "string", "nullable": True, "description": "Dotted path; null: the whole row."},
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                },
            },
        },
    },
}
ERROR_RESPONSES = {
    "400": "Invalid input, or the X-Shop-Domain header is missing or malformed. Nothing was written.",
    "401": "No valid bearer token.",
    "403": "Not a member of the shop, or the member's role may not do this.",
    "404": "No such row in this shop (rows of other shops are not found either), or an invalid page.",
    "429": (
        "Too many requests for this user, or too many failed authentications from this address; "
        "Retry-After says when to try again."
    ),
    "503": "The database connection was lost or refused (`database_unavailable`); retry after `Retry-After` seconds.",
}


# JSON Schema (ECMA 262 regex) for "no U+0000": text and jsonb columns refuse it, so does the API.
NUL_FREE_PATTERN = "^[^\\u0000]*$"


# Text that is not blank once trimmed (DRF strips whitespace, then refuses an empty value).
NUL_FREE_NOT_BLANK_PATTERN = "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$"


def _refuse_nul(schema: dict[str, Any]) -> None:
    if schema.get("type") == "string" and "format" not in schema and "enum" not in schema and "pattern" not in schema:
        schema["pattern"] = NUL_FREE_NOT_BLANK_PATTERN if schema.get("minLength", 0) >= 1 else NUL_FREE_PATTERN


def _list_items_enums(parameters: list[dict[str, Any]]) -> None:
    """`x__in` takes values of `x`: its items get `x`'s enum (the filter checks them against the
    column's choices; drf-spectacular documents the items as any string)."""
    enums = {
        p["name"]: p["schema"]["enum"]
        for p in parameters
        if p.get("in") == "query" and isinstance(p.get("schema"), dict) and "enum" in p["schema"]
    }
    for parameter in parameters:
        name, schema = parameter.get("name", ""), parameter.get("schema")
        if parameter.get("in") == "query" and isinstance(schema, dict) and schema.get("type") == "array":
            enum = enums.get(name.removesuffix("__in")) if name.endswith("__in") else None
            if enum is not None and isinstance(schema.get("items"), dict):
                schema["items"] = {"type": "string", "enum": list(enum)}


def document_request_rules(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """Postprocessing hook: what every request body and query refuses, said in the schema.

    Request bodies refuse unknown fields (`additionalProperties: false`, see
    StrictFieldsMixin), and text may not hold U+0000 (a pattern on every free string field and
    string query parameter). Components named `...Request` are the request halves
    (COMPONENT_SPLIT_REQUEST).
    """
    for name, component in result.get("components", {}).get("schemas", {}).items():
        if not name.endswith("Request") or component.get("type") != "object":
            continue
        component["additionalProperties"] = False
        for prop in component.get("properties", {}).values():
            _refuse_nul(prop)
            if prop.get("type") == "array" and isinstance(prop.get("items"), dict):
                _refuse_nul(prop["items"])
    for path, operations in result.get("paths", {}).items():
        for operation in operations.values():
            body = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
            if path.endswith("/bulk/") and body.get("type") == "array":
                body.update(minItems=1, maxItems=settings.API_BULK_MAX_ROWS)
            _list_items_enums(operation.get("parameters", []))
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "query" and isinstance(parameter.get("schema"), dict):
                    _refuse_nul(parameter["schema"])
                    if isinstance(parameter["schema"].get("items"), dict):  # `status__in=a,b`
                        _refuse_nul(parameter["schema"]["items"])
    return result


def document_errors(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """Postprocessing hook: every operation may answer with the shared error shape."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            for status, description in ERROR_RESPONSES.items():
                responses.setdefault(
                    status,
                    {
                        "description": description,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                    },
                )
    return result
