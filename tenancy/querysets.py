"""Read filters shared by every shop-scoped table."""

from __future__ import annotations

from typing import TypeVar

from django.db import models

_M = TypeVar("_M", bound=models.Model)


class ShopQuerySet(models.QuerySet[_M]):
    """Filters every shop-scoped table understands."""

    def for_shop(self, shop_domain: str) -> ShopQuerySet[_M]:
        # Row level security already limits rows to the scope's shop; this is for the
        # cross-shop scopes (back office, service jobs) that choose a shop explicitly.
        return self.filter(shop_id=shop_domain)
