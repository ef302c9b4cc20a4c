"""`manage.py show_security`: the whole security model in one place, declared and installed."""

from __future__ import annotations

import json
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from growth.models import SeoAudit
from tenancy.tables import PolicyKind, TenantTable

pytestmark = pytest.mark.django_db

# Pinned from the schema document, not from the declarations under test.
EXPECTED = {
    "seo_audits": ("shop", "-", "-"),
    "seo_rankings": ("shop", "365 days by tracked_on", "monthly by tracked_on"),
    "ad_campaigns": ("shop", "-", "-"),
    "ad_performance": ("shop", "730 days by date", "monthly by date"),
    "social_posts": ("shop", "-", "-"),
    "social_analytics": ("shop", "365 days by measured_at", "monthly by measured_at"),
    "onboarding_progress": ("user+shop", "-", "-"),
    "feature_tours": ("user", "-", "-"),
    "experiments": ("shop", "-", "-"),
    "experiment_results": ("shop", "forever", "-"),
    "knowledge_base": ("shop", "forever", "-"),
    "ceo_briefings": ("ceo", "365 days by period_end", "-"),
    "users": ("directory", "-", "-"),
    "shops": ("directory", "-", "-"),
    "shop_memberships": ("directory", "-", "-"),
}


def _report(*args: str) -> list[dict[str, Any]]:
    out = StringIO()
    call_command("show_security", "--json", *args, stdout=out)
    rows: list[dict[str, Any]] = json.loads(out.getvalue())
    return rows


def test_every_table_is_shown_with_its_kind_retention_and_partitioning() -> None:
    # A table added later is shown too (its own app's tests pin its traits).
    rows = {row["table"]: row for row in _report()}
    assert set(EXPECTED) <= set(rows)
    for table, (kind, retention, partitioning) in EXPECTED.items():
        assert (rows[table]["kind"], rows[table]["retention"]) == (kind, retention)
        assert rows[table]["partitioning"].startswith(partitioning), rows[table]


def test_tenant_tables_force_rls_and_carry_the_declared_policies() -> None:
    for row in _report():
        if row["kind"] == "directory":
            assert (row["rls_enabled"], row["policies"]) == (False, [])
            continue
        table = row["table"]
        assert (row["rls_enabled"], row["rls_forced"], row["policies_in_step"]) == (True, True, True)
        assert sorted((p["name"], p["role"]) for p in row["policies"]) == [
            (f"{table}_back_office", "back_office"),
            (f"{table}_service", "service_role"),
            (f"{table}_tenant", "authenticated"),
        ]
        assert row["grants"]["authenticated"] == ["DELETE", "INSERT", "SELECT", "UPDATE"]
        assert "anon" not in row["grants"] and "PUBLIC" not in row["grants"]


def test_the_text_report_names_each_table_and_its_policies() -> None:
    out = StringIO()
    call_command("show_security", "--table", "ceo_briefings", stdout=out)
    text = out.getvalue()
    assert "ceo_briefings  (advanced.CeoBriefing)" in text
    assert "policy kind   ceo" in text
    assert "rls           enabled, forced" in text
    assert "ceo_briefings_tenant  to authenticated" in text
    assert "app.current_role" in text
    assert "seo_audits" not in text


def test_a_changed_declaration_is_reported_and_fails_the_check(monkeypatch: pytest.MonkeyPatch) -> None:
    call_command("show_security", "--check", stdout=StringIO())
    monkeypatch.setattr(SeoAudit, "tenancy", TenantTable(policy=PolicyKind.CEO))
    (row,) = _report("--table", "seo_audits")
    assert (row["kind"], row["migration_pending"], row["policies_in_step"]) == ("ceo", True, False)
    with pytest.raises(CommandError, match="seo_audits"):
        call_command("show_security", "--check", stdout=StringIO())


def test_an_unknown_table_is_refused() -> None:
    with pytest.raises(CommandError, match="no_such_table"):
        call_command("show_security", "--table", "no_such_table", stdout=StringIO())
