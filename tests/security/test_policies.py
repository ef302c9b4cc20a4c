"""The catalog agrees with the declared policies (tenancy.rls): RLS forced everywhere, policies as declared, no
privileged functions or views of ours, and the roles that scope by user and by CEO role."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.apps import apps
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from advanced.briefings.factories import CeoBriefingFactory
from advanced.models import CeoBriefing
from growth.models import SeoAudit
from onboarding.factories import FeatureTourFactory, OnboardingProgressFactory
from onboarding.models import FeatureTour, OnboardingProgress
from tenancy import rls
from tenancy.factories import ShopMembershipFactory, UserFactory
from tenancy.management.commands.makepolicymigrations import pending_operations
from tenancy.scope import Scope, shop_scope
from tenancy.tables import PolicyKind, TenantTable
from tests.fixtures.tenants import Tenant

pytestmark = pytest.mark.django_db

# Directory tables: they name shops and users but hold no tenant data; the API resolves
# memberships from them before any scope exists (docs/security.md).
DIRECTORY_TABLES = {"shops", "shop_memberships"}
# Lifecycle records (shopify/models.py): webhook deliveries and erasures name a shop but are
# not its data. They are written before any scope exists, must outlive the shop's erasure,
# and `authenticated` has no privilege on them; the admin limits staff like the directory.
LIFECYCLE_RECORD_TABLES = {"shopify_webhook_deliveries", "shopify_shop_erasures"}
# Every table of this project's models (Django's own tables are not tenant data).
OUR_TABLES = {
    model._meta.db_table
    for label in ("tenancy", "growth", "onboarding", "advanced", "shopify")
    for model in apps.get_app_config(label).get_models()
}


def _fetch(sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])
        return list(cursor.fetchall())


def test_django_connects_as_app_owner_without_superuser_or_bypassrls() -> None:
    assert _fetch("SELECT current_user, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user") == [
        ("app_owner", False, False)
    ]


def test_every_table_with_a_tenant_column_forces_row_level_security() -> None:
    tables = {
        name
        for (name,) in _fetch(
            """
            SELECT DISTINCT c.relname FROM pg_class c
            JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
            JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname IN ('shop_domain', 'user_id') AND NOT a.attisdropped
            WHERE c.relkind IN ('r', 'p') AND c.relname = ANY(%s)
            """,
            [sorted(OUR_TABLES)],
        )
    }
    tenant_tables = tables - DIRECTORY_TABLES - LIFECYCLE_RECORD_TABLES
    assert tenant_tables == set(rls.tenant_policies()), "a tenant table declares no `tenancy = TenantTable(...)`"
    flags = {
        name: (enabled, forced)
        for name, enabled, forced in _fetch(
            "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class WHERE relname = ANY(%s)",
            [sorted(tenant_tables)],
        )
    }
    assert flags == dict.fromkeys(tenant_tables, (True, True))


def test_installed_policies_match_the_declared_ones() -> None:
    installed = {
        (table, name, tuple(roles), cmd)
        for table, name, roles, cmd in _fetch(
            "SELECT tablename, policyname, roles, cmd FROM pg_policies WHERE schemaname = 'public'"
        )
    }
    declared = {
        (table, policy.name, (policy.role,), "ALL")
        for table, policies in rls.tenant_policies().items()
        for policy in policies
    }
    assert installed == declared


def test_every_write_policy_has_using_and_with_check() -> None:
    missing = _fetch("SELECT tablename, policyname FROM pg_policies WHERE qual IS NULL OR with_check IS NULL")
    assert missing == []


def test_anon_has_no_privilege_on_any_tenant_table() -> None:
    granted = _fetch(
        "SELECT table_name, privilege_type FROM information_schema.role_table_grants "
        "WHERE grantee IN ('anon', 'PUBLIC') AND table_name = ANY(%s)",
        [sorted(rls.tenant_policies())],
    )
    assert granted == []


def test_policy_migrations_are_in_step_with_the_declared_policies() -> None:
    call_command("makepolicymigrations", "--check")


def test_a_changed_policy_without_migration_is_detected(monkeypatch: pytest.MonkeyPatch) -> None:
    # The model's own declaration is the only place a policy kind is written down.
    monkeypatch.setattr(SeoAudit, "tenancy", TenantTable(policy=PolicyKind.CEO))
    pending = pending_operations()
    assert [op.table for ops in pending.values() for op in ops] == ["seo_audits"]
    operation = pending["growth"][0]
    assert operation.previous == [p.as_dict() for p in rls.shop_policies("seo_audits")]
    with pytest.raises(CommandError, match="seo_audits"):
        call_command("makepolicymigrations", "--check")


def test_no_view_without_security_invoker() -> None:
    views = _fetch(
        """
        SELECT c.relname, c.reloptions FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('v', 'm') AND pg_get_userbyid(c.relowner) = current_user
        """
    )
    assert [name for name, options in views if "security_invoker=true" not in (options or [])] == []


def test_no_security_definer_or_leakproof_function_of_ours() -> None:
    ours = _fetch(
        "SELECT n.nspname || '.' || p.proname, p.prosecdef, p.proleakproof FROM pg_proc p "
        "JOIN pg_namespace n ON n.oid = p.pronamespace WHERE pg_get_userbyid(p.proowner) = current_user"
    )
    assert ("auth.uid", False, False) in ours
    assert [name for name, definer, leakproof in ours if definer or leakproof] == []


def test_user_tables_show_only_the_subjects_rows(tenant_a: Tenant, in_scope: Callable[[Scope], Any]) -> None:
    colleague = UserFactory(username="alpha-colleague")
    ShopMembershipFactory(user=colleague, shop=tenant_a.shop, role="member")
    mine = OnboardingProgressFactory(shop=tenant_a.shop, user=tenant_a.owner, step_key="connect-store")
    OnboardingProgressFactory(shop=tenant_a.shop, user=colleague, step_key="connect-store")
    my_tour = FeatureTourFactory(user=tenant_a.owner)
    FeatureTourFactory(user=colleague)
    with in_scope(tenant_a.scope()):
        assert list(OnboardingProgress.objects.values_list("pk", flat=True)) == [mine.pk]
        assert list(FeatureTour.objects.values_list("pk", flat=True)) == [my_tour.pk]
    without_subject = shop_scope(shop=tenant_a.shop.domain, subject=None, member_role="owner")
    with in_scope(without_subject):
        assert OnboardingProgress.objects.count() == 0
        assert FeatureTour.objects.count() == 0


def test_user_cannot_write_progress_for_another_user(tenant_a: Tenant, in_scope: Callable[[Scope], Any]) -> None:
    colleague = UserFactory(username="alpha-colleague")
    row = OnboardingProgressFactory.build(shop=tenant_a.shop, user=colleague, step_key="connect-store")
    from django.db import DatabaseError, transaction

    with in_scope(tenant_a.scope()), pytest.raises(DatabaseError, match="row-level security"), transaction.atomic():
        row.save(force_insert=True)


@pytest.mark.parametrize(
    ("member_role", "visible"), [("owner", True), ("ceo", True), ("member", False), ("viewer", False), ("", False)]
)
def test_ceo_briefings_visible_to_ceo_and_owner_only(
    member_role: str, visible: bool, tenant_a: Tenant, in_scope: Callable[[Scope], Any]
) -> None:
    briefing = CeoBriefingFactory(shop=tenant_a.shop)
    with in_scope(tenant_a.scope(member_role=member_role)):
        expected = [briefing.pk] if visible else []
        assert list(CeoBriefing.objects.values_list("pk", flat=True)) == expected
