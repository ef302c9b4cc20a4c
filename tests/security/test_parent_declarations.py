"""A child table declares its parent once (`TenantTable.parent`); the API's bulk check and the
metrics importer both derive from it, and a key to another tenant table left undeclared fails
Django's system checks (tenancy.E005), so no child table goes unchecked."""

from __future__ import annotations

import dataclasses

import pytest

from advanced.models import ExperimentResult
from growth.models import AdPerformance, SocialAnalytics
from tenancy.checks import check_tenant_tables
from tenancy.tables import parent_key


def test_the_declared_tables_pass_the_checks() -> None:
    assert check_tenant_tables() == []


@pytest.mark.parametrize(
    ("model", "attname", "api", "imported"),
    [
        (AdPerformance, "campaign_id", "Campaign 7 does not exist in this shop.", "ad campaign"),
        (SocialAnalytics, "social_post_id", "Social post 7 does not exist in this shop.", "social post"),
        (ExperimentResult, "experiment_id", "Experiment 7 does not exist in this shop.", "experiment"),
    ],
)
def test_each_child_table_names_its_parent_in_the_words_the_api_and_the_importer_published(
    model: type, attname: str, api: str, imported: str
) -> None:
    parent = parent_key(model)
    assert parent is not None
    assert parent.attname == attname
    assert parent.api_message(7) == api
    assert parent.import_label == imported


def test_a_key_to_another_tenant_table_without_a_declared_parent_fails_the_checks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(AdPerformance, "tenancy", dataclasses.replace(AdPerformance.tenancy, parent=None))
    assert parent_key(AdPerformance) is None
    assert [(e.id, e.obj) for e in check_tenant_tables()] == [("tenancy.E005", AdPerformance)]
    assert "growth.AdPerformance.campaign" in check_tenant_tables()[0].msg


@pytest.mark.parametrize("name", ["date", "no_such_field"])
def test_a_parent_that_is_not_a_key_to_a_tenant_table_fails_the_checks(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setattr(AdPerformance, "tenancy", dataclasses.replace(AdPerformance.tenancy, parent=name))
    found = [(e.id, e.obj) for e in check_tenant_tables()]
    assert found == [("tenancy.E006", AdPerformance)]


def test_the_shop_key_is_no_parent(monkeypatch: pytest.MonkeyPatch) -> None:
    # `shops` is a directory table, not a declared tenant table: naming it fails like any other.
    monkeypatch.setattr(AdPerformance, "tenancy", dataclasses.replace(AdPerformance.tenancy, parent="shop"))
    assert [e.id for e in check_tenant_tables()] == ["tenancy.E006"]
