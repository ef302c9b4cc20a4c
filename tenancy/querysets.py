"""Read filters shared by every shop-scoped table."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, TypeVar

from django.db import models

if TYPE_CHECKING:
    # Named in a string type argument below, which ruff does not count as a use.
    from .models import ShopMembership  # noqa: F401

_M = TypeVar("_M", bound=models.Model)


class ShopQuerySet(models.QuerySet[_M]):
    """Filters every shop-scoped table understands."""

    def for_shop(self, shop_domain: str) -> ShopQuerySet[_M]:
        # Row level security already limits rows to the scope's shop; this is for the
        # cross-shop scopes (back office, service jobs) that choose a shop explicitly.
        return self.filter(shop_id=shop_domain)


class MembershipQuerySet(models.QuerySet["ShopMembership"]):
    def shop_domains_of(self, user_id: uuid.UUID | str) -> tuple[str, ...]:
        return tuple(self.filter(user_id=user_id).order_by("shop_id").values_list("shop_id", flat=True))
