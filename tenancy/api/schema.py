"""OpenAPI: every tenant-scoped operation documents the X-Shop-Domain header."""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema

from .scoping import OPTIONAL_SHOP_HEADER_PARAMETER, SHOP_HEADER_PARAMETER, TenantScopedViewMixin


class TenantAutoSchema(AutoSchema):
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
    "429": "Too many requests for this user.",
}


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
