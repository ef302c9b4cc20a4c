"""factory_boy factories for shops, users and memberships (tests and demo data)."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

import factory
from django.db import models, transaction
from factory.django import DjangoModelFactory

from .models import MembershipRole, Shop, ShopMembership, User
from .scope import SERVICE_ROLE, active_scope, enter_scope, service_scope

_M = TypeVar("_M", bound=models.Model)


class ScopedFactory(DjangoModelFactory[_M], Generic[_M]):
    """Creates rows as `service_role`, the only scope allowed to write into any shop.

    Tables force row level security, so even the table owner cannot insert outside a scope.
    The factory enters the privileged scope around its own insert and restores the caller's
    scope afterwards, so a test's assertions still run in the scope under test.
    """

    class Meta:
        abstract = True

    @classmethod
    def _create(cls, model_class: type[_M], *args: Any, **kwargs: Any) -> _M:
        scope = active_scope()
        if scope is not None and scope.role == SERVICE_ROLE:
            return super()._create(model_class, *args, **kwargs)
        with transaction.atomic(), enter_scope(service_scope()):
            return super()._create(model_class, *args, **kwargs)


class UserFactory(ScopedFactory[User]):
    class Meta:
        model = User
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.com")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    password = factory.django.Password("password-123")


class ShopFactory(ScopedFactory[Shop]):
    class Meta:
        model = Shop
        django_get_or_create = ("domain",)

    domain = factory.Sequence(lambda n: f"shop-{n}.myshopify.com")
    name = factory.LazyAttribute(lambda o: o.domain.split(".")[0].replace("-", " ").title())


class ShopMembershipFactory(ScopedFactory[ShopMembership]):
    class Meta:
        model = ShopMembership
        django_get_or_create = ("user", "shop")

    user = factory.SubFactory(UserFactory)
    shop = factory.SubFactory(ShopFactory)
    role = MembershipRole.MEMBER
