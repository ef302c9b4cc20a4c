"""factory_boy factories for shops, users and memberships (tests and demo data)."""

from __future__ import annotations

import factory
from factory.django import DjangoModelFactory

from .models import MembershipRole, Shop, ShopMembership, User


class UserFactory(DjangoModelFactory[User]):
    class Meta:
        model = User
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.com")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    password = factory.django.Password("password-123")


class ShopFactory(DjangoModelFactory[Shop]):
    class Meta:
        model = Shop
        django_get_or_create = ("domain",)

    domain = factory.Sequence(lambda n: f"shop-{n}.myshopify.com")
    name = factory.LazyAttribute(lambda o: o.domain.split(".")[0].replace("-", " ").title())


class ShopMembershipFactory(DjangoModelFactory[ShopMembership]):
    class Meta:
        model = ShopMembership
        django_get_or_create = ("user", "shop")

    user = factory.SubFactory(UserFactory)
    shop = factory.SubFactory(ShopFactory)
    role = MembershipRole.MEMBER
