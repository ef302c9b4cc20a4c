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
