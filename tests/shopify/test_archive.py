"""Shop export and import: the archive's shape, reading under the shop's policies, the
round trip export -> erase -> import -> export, and the owner-only download."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from shopify.archive import ArchiveError, shop_export_chunks, shop_export_write, shop_import
from shopify.archive import export as archive_module
from shopify.archive import importing as importing_module
from shopify.erasure import shop_erasure_run
from shopify.registry import shop_data_plan
from tenancy.factories import ShopMembershipFactory, UserFactory
from tenancy.models import Shop, ShopMembership
from tests.fixtures.api import assert_error, client_for
from tests.fixtures.tenants import SHOP_A, SHOP_B, Tenant

from .conftest import session_token, shop_rows

pytestmark = pytest.mark.django_db


def export_bytes(domain: str) -> bytes:
    target = io.BytesIO()
    shop_export_write(shop_domain=domain, target=target)
    return target.getvalue()


def read_archive(data: bytes) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        files = {
            entry["table"]: [json.loads(line) for line in archive.read(entry["file"]).splitlines()]
            for entry in manifest["tables"]
        }
    return manifest, files


def without_ids(files: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """Rows with their ids replaced by their position in their table's file, and references
    by the position of the row they name: what must survive a round trip."""
    references = {plan.table: plan.references for plan in shop_data_plan()}
    position = {table: {row["id"]: index for index, row in enumerate(rows)} for table, rows in files.items()}
    out: dict[str, list[dict[str, Any]]] = {}
    for table, rows in files.items():
        out[table] = []
        for row in rows:
            copy = {key: value for key, value in row.items() if key != "id"}
            for column, target in references.get(table, {}).items():
                if copy.get(column) is not None:
                    copy[column] = ("row", position[target][copy[column]])
            out[table].append(copy)
    return out


def test_the_archive_holds_every_table_with_counts_checksums_and_schema_version(filled: tuple[Tenant, Tenant]) -> None:
    manifest, files = read_archive(export_bytes(SHOP_A))
    rows = shop_rows(SHOP_A)
    assert manifest["format"] == "growth-shop-export"
    assert manifest["shop"]["domain"] == SHOP_A
    assert set(manifest["schema_version"]) >= {"growth", "onboarding", "advanced", "tenancy"}
    assert all(manifest["schema_version"].values())
    assert [entry["table"] for entry in manifest["tables"]] == [p.table for p in shop_data_plan()] + [
        "shop_memberships"
    ]
    for entry in manifest["tables"]:
        assert entry["rows"] == len(files[entry["table"]])
        if entry["table"] in rows:
            assert entry["rows"] == len(rows[entry["table"]]) > 0
    assert len(files["shop_memberships"]) == 2
    # Nothing of shop B, in any file.
    assert all(row["shop_domain"] == SHOP_A for table_rows in files.values() for row in table_rows)
    assert len(manifest["checksum"]) == 64


def test_every_users_onboarding_rows_are_exported_each_read_as_that_user(filled: tuple[Tenant, Tenant]) -> None:
    _, files = read_archive(export_bytes(SHOP_A))
    users = {row["user_id"] for row in files["onboarding_progress"]}
    assert len(users) == 2


def test_an_export_that_policies_would_cut_short_fails(
    filled: tuple[Tenant, Tenant], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Read as a member instead of an owner: the CEO briefings policy hides the briefings.
    real = archive_module.shop_scope
    monkeypatch.setattr(archive_module, "shop_scope", lambda **kwargs: real(**{**kwargs, "member_role": "member"}))
    with pytest.raises(ArchiveError, match="ceo_briefings: 0 rows read under the shop's policies, 1 rows"):
        export_bytes(SHOP_A)


def test_round_trip_export_erase_import_export_gives_the_same_archive_apart_from_ids(
    filled: tuple[Tenant, Tenant],
) -> None:
    before_b = shop_rows(SHOP_B)
    first = export_bytes(SHOP_A)
    shop_erasure_run(shop_domain=SHOP_A, reason="test")
    result = shop_import(source=io.BytesIO(first), shop_domain=SHOP_A)
    second = export_bytes(SHOP_A)

    manifest_1, files_1 = read_archive(first)
    manifest_2, files_2 = read_archive(second)
    data_1 = {entry["table"]: entry["rows"] for entry in manifest_1["tables"] if entry["table"] != "shop_memberships"}
    assert result.written == data_1
    assert result.memberships_not_imported == 2
    # The data comes back; the memberships do not (an import grants no one access).
    assert files_2.pop("shop_memberships") == [] and len(files_1.pop("shop_memberships")) == 2
    assert without_ids(files_2) == without_ids(files_1)
    ids_1 = {row["id"] for row in files_1["ad_campaigns"]}
    ids_2 = {row["id"] for row in files_2["ad_campaigns"]}
    assert ids_1.isdisjoint(ids_2), "imported rows get new ids"
    assert [e["rows"] for e in manifest_2["tables"]][:-1] == [e["rows"] for e in manifest_1["tables"]][:-1]
    assert shop_rows(SHOP_B) == before_b


def test_import_into_another_shop_rewrites_the_domain(filled: tuple[Tenant, Tenant]) -> None:
    data = export_bytes(SHOP_A)
    shop_import(source=io.BytesIO(data), shop_domain="copy.myshopify.com")
    _, original = read_archive(data)
    _, copy = read_archive(export_bytes("copy.myshopify.com"))
    assert all(row["shop_domain"] == "copy.myshopify.com" for rows in copy.values() for row in rows)
    strip = lambda files: {  # noqa: E731
        t: [{k: v for k, v in r.items() if k != "shop_domain"} for r in rows] for t, rows in without_ids(files).items()
    }
    assert copy.pop("shop_memberships") == [] and original.pop("shop_memberships")
    assert strip(copy) == strip(original)


def test_import_refuses_a_shop_that_holds_data_and_writes_nothing(filled: tuple[Tenant, Tenant]) -> None:
    data = export_bytes(SHOP_A)
    before = shop_rows(SHOP_B)
    with pytest.raises(ArchiveError, match="is not empty"):
        shop_import(source=io.BytesIO(data), shop_domain=SHOP_B)
    assert shop_rows(SHOP_B) == before


def test_import_refuses_a_damaged_archive_before_writing(filled: tuple[Tenant, Tenant]) -> None:
    data = export_bytes(SHOP_A)
    damaged = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(damaged, "w") as target:
        for item in source.infolist():
            content = source.read(item)
            if item.filename == "ad_campaigns.ndjson":
                content = content.replace(b'"daily_budget":', b'"daily_budget":1', 1)
            target.writestr(item, content)
    with pytest.raises(ArchiveError, match=r"ad_campaigns\.ndjson: rows or SHA-256 differ"):
        shop_import(source=io.BytesIO(damaged.getvalue()), shop_domain="new.myshopify.com")
    assert not Shop.objects.filter(domain="new.myshopify.com").exists()
    with pytest.raises(ArchiveError, match="not a zip"):
        shop_import(source=io.BytesIO(b"hello"), shop_domain="new.myshopify.com")


def test_import_refuses_another_schema_version(filled: tuple[Tenant, Tenant], monkeypatch: pytest.MonkeyPatch) -> None:
    data = export_bytes(SHOP_A)
    monkeypatch.setattr(importing_module, "schema_version", lambda using="default": {"growth": "9999_future"})
    with pytest.raises(ArchiveError, match="schema"):
        shop_import(source=io.BytesIO(data), shop_domain="new.myshopify.com")


def test_the_archive_comes_in_pieces(filled: tuple[Tenant, Tenant], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(archive_module, "CHUNK_BYTES", 512)
    monkeypatch.setattr(archive_module, "FETCH_ROWS", 2)
    pieces = list(shop_export_chunks(shop_domain=SHOP_A))
    assert len(pieces) > 3
    manifest, _ = read_archive(b"".join(pieces))
    assert manifest["shop"]["domain"] == SHOP_A


def test_commands_export_and_import(filled: tuple[Tenant, Tenant], tmp_path: Path) -> None:
    path = tmp_path / "a.zip"
    call_command("export_shop", SHOP_A, str(path), stderr=io.StringIO())
    assert not (tmp_path / "a.zip.partial").exists()
    out = io.StringIO()
    call_command("import_shop", str(path), "--shop", "restored.myshopify.com", stdout=out)
    assert "Imported" in out.getvalue()
    assert "shop_memberships: 2 in the archive, none imported" in out.getvalue()
    assert ShopMembership.objects.filter(shop_id="restored.myshopify.com").count() == 0
    with pytest.raises(CommandError, match=r"nothing imported: shop .restored\.myshopify\.com. is not empty"):
        call_command("import_shop", str(path), "--shop", "restored.myshopify.com", stdout=io.StringIO())
    with pytest.raises(CommandError, match="not a shop domain"):
        call_command("import_shop", str(path), "--shop", "Bad Domain", stdout=io.StringIO())
    with pytest.raises(CommandError, match="no shop"):
        call_command("export_shop", "nobody.myshopify.com", str(tmp_path / "b.zip"), stderr=io.StringIO())
    assert not (tmp_path / "b.zip").exists() and not (tmp_path / "b.zip.partial").exists()


def test_import_refuses_users_that_do_not_exist(filled: tuple[Tenant, Tenant]) -> None:
    data = export_bytes(SHOP_A)
    _, files = read_archive(data)
    shop_erasure_run(shop_domain=SHOP_A, reason="test")
    # The second member's account is gone since the export.
    second = next(row["user_id"] for row in files["shop_memberships"] if row["role"] == "member")
    from tenancy.models import User

    User.objects.filter(pk=second).delete()
    with pytest.raises(ArchiveError, match="users of the archive do not exist"):
        shop_import(source=io.BytesIO(data), shop_domain=SHOP_A)


# --- The API download ---------------------------------------------------------------------


def test_an_owner_downloads_the_archive_of_their_shop(filled: tuple[Tenant, Tenant]) -> None:
    tenant_a, _ = filled
    response = client_for(tenant_a.owner, SHOP_A).get("/api/v1/shop-export/")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"].startswith(f'attachment; filename="{SHOP_A}-')
    manifest, files = read_archive(b"".join(response.streaming_content))
    assert manifest["shop"]["domain"] == SHOP_A
    assert {row["shop_domain"] for rows in files.values() for row in rows} == {SHOP_A}


def test_a_session_token_owner_downloads_without_a_shop_header(
    filled: tuple[Tenant, Tenant], token_client: Any
) -> None:
    fresh = "fresh.myshopify.com"
    client = token_client(session_token(fresh, "1"))
    response = client.get("/api/v1/shop-export/")
    assert response.status_code == 200
    manifest, _ = read_archive(b"".join(response.streaming_content))
    assert manifest["shop"]["domain"] == fresh


@pytest.mark.parametrize("role", ["member", "viewer", "ceo"])
def test_only_owners_may_download(filled: tuple[Tenant, Tenant], role: str) -> None:
    tenant_a, _ = filled
    user = UserFactory(username=f"a-{role}")
    ShopMembershipFactory(user=user, shop=tenant_a.shop, role=role)
    response = client_for(user, SHOP_A).get("/api/v1/shop-export/")
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"


def test_an_owner_of_another_shop_cannot_download(filled: tuple[Tenant, Tenant]) -> None:
    _, tenant_b = filled
    response = client_for(tenant_b.owner, SHOP_A).get("/api/v1/shop-export/")
    # The JSON error, not a zip: no byte of shop A's archive reaches the other shop's owner.
    body = assert_error(response, 403, code="not_a_member")
    assert response["Content-Type"] == "application/json" and "Content-Disposition" not in response
    assert SHOP_A not in json.dumps(body["errors"])
    # Without a shop header the request names no shop: refused, and B's own archive is not sent.
    response = client_for(tenant_b.owner, None).get("/api/v1/shop-export/")
    assert_error(response, 400)
    assert "Content-Disposition" not in response
