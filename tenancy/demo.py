"""Development demo data: every table filled with a few shops of realistic, consistent data.

`demo_data_seed` fills every table with a few shops' worth of realistic, internally consistent
data through the factories. It is idempotent: shops, accounts and memberships are looked up by
deterministic keys, and a table that already holds a demo shop's rows is left alone for that
shop, so a second run adds nothing. Randomness is seeded per shop and step, so the same shop
gets the same data on every machine.

This module keeps the accounts (the staff admin, the shops and their teams), the runner and the
seeded randomness. Each app seeds its own tables in its own `demo.py`: a `DEMO_STEPS` list of
`DemoStep`, found through the app registry and run in INSTALLED_APPS order, shop by shop.
"""

from __future__ import annotations

import datetime
import random
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from importlib import import_module
from typing import Any

import factory
import factory.random
import faker.generator
from django.apps import apps
from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.db import connection, models, transaction
from django.utils import timezone
from django.utils.module_loading import module_has_submodule

from .factories import ShopFactory, ShopMembershipFactory, UserFactory
from .models import MembershipRole, Shop, ShopMembership, User
from .scope import enter_scope, service_scope
from .tables import declared_tables

DEMO_ADMIN_USERNAME = "admin"
DEMO_SHOP_NAMES = [
    "Northwind Outfitters",
    "Blue Fern Goods",
    "Copper Kettle Coffee",
    "Little Harbor Ceramics",
    "Alpine Thread Co.",
]
# (username suffix, role); the owner comes first: it connects the shop's ad and social accounts.
DEMO_TEAM = [
    ("owner", MembershipRole.OWNER),
    ("ceo", MembershipRole.CEO),
    ("member1", MembershipRole.MEMBER),
    ("member2", MembershipRole.MEMBER),
]

# The accounts tables the seed writes first; then every declared tenant table (the summary).
ACCOUNT_MODELS: list[type[models.Model]] = [User, Shop, ShopMembership]

# Any constant works; it only has to be the same for every seeding process.
_SEED_LOCK_KEY = 7_305_202_611

SeedProgress = Callable[[str], None]


def demo_shop_domain(index: int) -> str:
    return f"demo-{index}.myshopify.com"


def demo_usernames(index: int) -> list[str]:
    return [f"demo-{index}-{suffix}" for suffix, _ in DEMO_TEAM]


@dataclass(frozen=True)
class ShopContext:
    """One demo shop being seeded: its team, the staff admin, and the period of its data."""

    index: int
    shop: Shop
    team: dict[str, User]
    admin: User
    start: datetime.date
    end: datetime.date
    now: datetime.datetime

    @property
    def days(self) -> list[datetime.date]:
        return [self.start + datetime.timedelta(days=k) for k in range((self.end - self.start).days + 1)]

    @property
    def prefix(self) -> str:
        return f"demo-{self.index}"

    def rng(self, step: str) -> random.Random:
        # A string seed is hashed with SHA-512, not Python's per-process hash: stable everywhere.
        return random.Random(f"{self.shop.domain}:{step}")


def at(day: datetime.date, hour: int, minute: int = 0) -> datetime.datetime:
    return datetime.datetime.combine(day, datetime.time(hour, minute), tzinfo=datetime.UTC)


def money(value: float) -> Decimal:
    return Decimal(str(round(value, 2)))


@contextmanager
def _seeded_randomness(seed: str) -> Iterator[None]:
    """Seed what the factories draw from (Python's `random`, Faker's and factory_boy's
    generators), and put the previous states back afterwards so that callers, tests in
    particular, do not see a suddenly repeatable sequence."""
    # factory_boy hangs a `state_set` flag (read by its fuzzy dates) on its Random instance.
    randgen: Any = factory.random.randgen
    states = (random.getstate(), faker.generator.random.getstate(), randgen.getstate(), randgen.state_set)
    numeric = zlib.crc32(seed.encode())
    random.seed(numeric)
    factory.random.reseed_random(numeric)
    try:
        yield
    finally:
        random.setstate(states[0])
        faker.generator.random.setstate(states[1])
        randgen.setstate(states[2])
        randgen.state_set = states[3]


# --- Accounts ------------------------------------------------------------------------------


def _seed_admin(*, password_hash: str) -> User:
    admin: User = UserFactory.create(
        username=DEMO_ADMIN_USERNAME,
        email="admin@example.com",
        first_name="Demo",
        last_name="Admin",
        is_staff=True,
        is_superuser=True,
        password=factory.Transformer.Force(password_hash),
    )
    return admin


def _seed_shop_and_team(*, index: int, password_hash: str) -> tuple[Shop, dict[str, User]]:
    name = DEMO_SHOP_NAMES[(index - 1) % len(DEMO_SHOP_NAMES)]
    if index > len(DEMO_SHOP_NAMES):
        name = f"{name} {index}"
    shop: Shop = ShopFactory.create(domain=demo_shop_domain(index), name=name)
    team: dict[str, User] = {}
    for (suffix, role), username in zip(DEMO_TEAM, demo_usernames(index), strict=True):
        user: User = UserFactory.create(
            username=username,
            password=factory.Transformer.Force(password_hash),
        )
        ShopMembershipFactory.create(user=user, shop=shop, role=role)
        team[suffix] = user
    return shop, team


@dataclass(frozen=True)
class DemoStep:
    """One step of an app's demo data: `seed` fills its tables for one shop, and leaves a
    table that already holds the shop's rows alone (a second run adds nothing)."""

    label: str
    seed: Callable[[ShopContext], None]


def demo_steps() -> list[DemoStep]:
    """The `DEMO_STEPS` of every installed app's `demo` module, in INSTALLED_APPS order."""
    steps: list[DemoStep] = []
    for app_config in apps.get_app_configs():
        if app_config.name == __package__ or not module_has_submodule(app_config.module, "demo"):
            continue
        module = import_module(f"{app_config.name}.demo")
        steps += getattr(module, "DEMO_STEPS", [])
    return steps


def demo_seed_step_count(*, shops: int) -> int:
    """How many times `demo_data_seed` reports progress: the admin, then each shop's steps."""
    return 1 + shops * (1 + len(demo_steps()))


def demo_models() -> list[type[models.Model]]:
    """Every table the seed writes, in dependency order: the accounts, then every declared
    tenant table (tenancy/tables.py)."""
    return [*ACCOUNT_MODELS, *(declared.model for declared in declared_tables())]


def demo_row_counts() -> dict[str, int]:
    """Rows per table; call it in a scope that sees every shop."""
    return {model._meta.db_table: model._default_manager.count() for model in demo_models()}


@transaction.atomic
def demo_data_seed(*, shops: int, days: int, progress: SeedProgress | None = None) -> dict[str, int]:
    """Create (or complete) `shops` demo shops with `days` days of data, ending yesterday.

    Runs as `service_role` in one transaction: tables force row level security and only the
    service scope may write into any shop. Returns the row count of every table afterwards.
    """
    if shops < 1 or days < 1:
        raise ValueError("shops and days must be at least 1")
    report = progress or (lambda _label: None)
    steps = demo_steps()
    # Hashing is deliberately slow (~0.3 s); the demo accounts share one password, so they
    # share one hash instead of paying for it a dozen times.
    password_hash = make_password(settings.DEMO_PASSWORD)
    now = timezone.now().replace(microsecond=0)
    end = now.astimezone(datetime.UTC).date() - datetime.timedelta(days=1)
    start = end - datetime.timedelta(days=days - 1)
    with enter_scope(service_scope()):
        with connection.cursor() as cursor:
            # Two seeders at once would both find a shop empty and both fill it.
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_SEED_LOCK_KEY])
        admin = _seed_admin(password_hash=password_hash)
        report("admin account")
        for index in range(1, shops + 1):
            with _seeded_randomness(f"{demo_shop_domain(index)}:team"):
                shop, team = _seed_shop_and_team(index=index, password_hash=password_hash)
            report(f"{shop.domain}: shop and team")
            ctx = ShopContext(index=index, shop=shop, team=team, admin=admin, start=start, end=end, now=now)
            for step in steps:
                with _seeded_randomness(f"{shop.domain}:{step.label}"):
                    step.seed(ctx)
                report(f"{shop.domain}: {step.label}")
        # Accounts that already existed keep their rows but get today's demo password, so the
        # sign-in instructions the command prints are always true.
        usernames = [DEMO_ADMIN_USERNAME, *(name for index in range(1, shops + 1) for name in demo_usernames(index))]
        User.objects.filter(username__in=usernames).update(password=password_hash, is_active=True)
        User.objects.filter(username=DEMO_ADMIN_USERNAME).update(is_staff=True, is_superuser=True)
        return demo_row_counts()
