"""Shops, the people who act for them, and the columns every tenant table shares."""

from __future__ import annotations

import uuid

from django.contrib.auth.models import AbstractUser
from django.core.validators import RegexValidator
from django.db import models
from django.db.models.functions import Now

from .querysets import MembershipQuerySet

# A lowercase DNS host name: labels of letters, digits and inner hyphens, at least one dot.
SHOP_DOMAIN_REGEX = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$"
shop_domain_validator = RegexValidator(
    SHOP_DOMAIN_REGEX,
    message="Enter a lowercase host name such as example.myshopify.com.",
    code="invalid_shop_domain",
)


class User(AbstractUser):
    """A person or agent who signs in; `id` is the JWT subject (a UUID, as in Supabase)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)

    class Meta:
        db_table = "users"
        verbose_name = "user"
        verbose_name_plural = "users"

    @property
    def subject(self) -> str:
        return str(self.id)


# The permission that grants staff every shop in the back office (see Shop.Meta).
VIEW_ALL_SHOPS = "tenancy.view_all_shops"


class Shop(models.Model):
    """A Shopify store; its domain is the tenant key of every other table."""

    domain = models.CharField(
        primary_key=True,
        max_length=253,
        validators=[shop_domain_validator],
        db_column="shop_domain",
    )
    name = models.CharField(max_length=200)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(db_default=Now(), editable=False)
    updated_at = models.DateTimeField(auto_now=True, db_default=Now())

    class Meta:
        db_table = "shops"
        ordering = ["domain"]
        # The explicit grant of every shop in the back office (superusers have it implicitly).
        # Staff without it see only the shops they are members of (docs/security.md).
        permissions = [("view_all_shops", "Can see every shop in the back office")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(domain__regex=SHOP_DOMAIN_REGEX),
                name="%(app_label)s_%(class)s_domain_is_hostname",
            ),
        ]

    def __str__(self) -> str:
        return self.domain


class MembershipRole(models.TextChoices):
    OWNER = "owner", "Owner"
    CEO = "ceo", "CEO"
    MEMBER = "member", "Member"
    VIEWER = "viewer", "Viewer"


class ShopMembership(models.Model):
    """A user's role in one shop; the role decides what the user may see (CEO briefings)."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    shop = models.ForeignKey(
        Shop,
        on_delete=models.CASCADE,
        related_name="memberships",
        db_column="shop_domain",
    )
    role = models.CharField(max_length=16, choices=MembershipRole.choices, default=MembershipRole.MEMBER)
    created_at = models.DateTimeField(db_default=Now(), editable=False)
    updated_at = models.DateTimeField(auto_now=True, db_default=Now())

    objects = MembershipQuerySet.as_manager()

    class Meta:
        db_table = "shop_memberships"
        ordering = ["shop_id", "user__username"]
        constraints = [
            models.UniqueConstraint(fields=["user", "shop"], name="%(app_label)s_%(class)s_user_shop_uniq"),
            models.CheckConstraint(
                condition=models.Q(role__in=MembershipRole.values),
                name="%(app_label)s_%(class)s_role_valid",
            ),
        ]
        indexes = [models.Index(fields=["shop", "role"], name="shop_memberships_shop_role_idx")]

    def __str__(self) -> str:
        return f"{self.user} @ {self.shop_id} ({self.role})"


class AuditedModel(models.Model):
    """Who wrote a row and when: every table of the schema carries these."""

    created_by = models.TextField(
        null=True,
        blank=True,
        editable=False,
        help_text="Subject id of the writer; empty for system jobs.",
    )
    created_at = models.DateTimeField(db_default=Now(), editable=False)
    updated_at = models.DateTimeField(auto_now=True, db_default=Now(), editable=False)

    class Meta:
        abstract = True


class ShopScopedModel(AuditedModel):
    """A row that belongs to exactly one shop; `shop_domain` is what the RLS policies compare."""

    shop = models.ForeignKey(
        Shop,
        on_delete=models.CASCADE,
        db_column="shop_domain",
        related_name="+",
        # Every table leads a composite index with shop_domain, which serves this key too.
        db_index=False,
    )

    class Meta:
        abstract = True

    @property
    def shop_domain(self) -> str:
        return self.shop_id


def shop_key_without_constraint() -> models.ForeignKey[Shop, Shop]:
    """`shop` for a child row whose composite foreign key to its parent (campaign, post)
    includes `shop_domain`: the parent's own key to `shops` already proves the shop exists, so
    the database keeps no second constraint. That one was deferred, a queued check a row run at
    commit: a quarter of an import's time (bench: import_metrics 37,000 -> 50,000 rows/s)."""
    return models.ForeignKey(
        Shop,
        on_delete=models.CASCADE,
        db_column="shop_domain",
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
