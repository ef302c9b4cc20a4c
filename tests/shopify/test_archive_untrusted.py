"""`import_shop` treats an archive as untrusted input: lines and the
uncompressed size are capped and read in pieces, the bytes imported are the bytes checked,
an import grants no one access, and every malformed archive is one clear error with nothing
imported."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import tracemalloc
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from shopify.archive import shop_export_write
from tenancy.factories import UserFactory
from tenancy.models import Shop, ShopMembership
from tests.fixtures.tenants import SHOP_A, Tenant

from .conftest import shop_rows

pytestmark = pytest.mark.django_db

TARGET = "restored.myshopify.com"
MiB = 1024 * 1024


def export_bytes(domain: str) -> bytes:
    target = io.BytesIO()
    shop_export_write(shop_domain=domain, target=target)
    return target.getvalue()


def checksum(entries: Any) -> str:
    return hashlib.sha256(json.dumps(entries, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def rezip(
    data: bytes,
    *,
    files: dict[str, Iterable[bytes]] | None = None,
    extra: dict[str, bytes] | None = None,
    edit: Callable[[dict[str, Any]], Any] | None = None,
    manifest_bytes: bytes | None = None,
    compression: int = zipfile.ZIP_DEFLATED,
) -> bytes:
    """The export `data` with `files` replaced (their manifest rows and SHA-256 and the
    checksum recomputed, so that only what a test breaks is wrong), `extra` files added, then
    the manifest passed through `edit` (or replaced by `manifest_bytes`)."""
    files, extra = files or {}, extra or {}
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w", compression=compression) as target:
        manifest = json.loads(source.read("manifest.json"))
        by_file = {entry["file"]: entry for entry in manifest["tables"]}
        for info in source.infolist():
            if info.filename == "manifest.json":
                continue
            pieces = files.get(info.filename, [source.read(info)])
            digest, rows, last = hashlib.sha256(), 0, b"\n"
            with target.open(info.filename, "w", force_zip64=True) as member:
                for piece in pieces:
                    member.write(piece)
                    digest.update(piece)
                    rows += piece.count(b"\n")
                    last = piece[-1:] or last
            if info.filename in files:
                by_file[info.filename].update(rows=rows + (last != b"\n"), sha256=digest.hexdigest())
        for name, content in extra.items():
            target.writestr(name, content)
        manifest["checksum"] = checksum(manifest["tables"])
        if edit is not None:
            manifest = edit(manifest)
        target.writestr("manifest.json", manifest_bytes if manifest_bytes is not None else json.dumps(manifest))
    return out.getvalue()


def lines_of(data: bytes, name: str) -> list[dict[str, Any]]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return [json.loads(line) for line in archive.read(name).splitlines()]


def ndjson(rows: list[dict[str, Any]]) -> list[bytes]:
    return [b"".join(json.dumps(row).encode() + b"\n" for row in rows)]


def import_file(tmp_path: Path, data: bytes, *options: str) -> str:
    path = tmp_path / "archive.zip"
    path.write_bytes(data)
    out = io.StringIO()
    call_command("import_shop", str(path), "--shop", TARGET, *options, stdout=out)
    return out.getvalue()


def assert_nothing_imported() -> None:
    assert not Shop.objects.filter(domain=TARGET).exists()
    assert not ShopMembership.objects.filter(shop_id=TARGET).exists()
    assert not any(shop_rows(TARGET).values())


# --- (a) caps -------------------------------------------------------------------------------


def huge_line(size: int) -> Iterable[bytes]:
    """One row whose `name` is `size` bytes of one letter: deflate makes it about a thousand
    times smaller, the shape of the 453 KB archive that held a 400 MB line."""
    yield b'{"id": 1, "shop_domain": "alpha.myshopify.com", "name": "'
    for _ in range(size // MiB):
        yield b"a" * MiB
    yield b'"}\n'


def test_a_line_longer_than_the_cap_is_refused_while_reading_in_bounded_memory(
    filled: tuple[Tenant, Tenant], tmp_path: Path
) -> None:
    data = rezip(export_bytes(SHOP_A), files={"ad_campaigns.ndjson": huge_line(64 * MiB)})
    assert len(data) < MiB  # 64 MiB of line in a small zip
    tracemalloc.start()
    try:
        with pytest.raises(CommandError, match=r"ad_campaigns\.ndjson line 1 is longer than the 8388608 bytes a line"):
            import_file(tmp_path, data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The line is refused once the cap is passed, not read whole: Python's allocations stay
    # near the cap (8 MiB), far below the line (64 MiB), which reading line by line held whole.
    assert peak < 24 * MiB, f"peak {peak / MiB:.0f} MiB"
    assert_nothing_imported()


def test_the_line_cap_is_an_option_of_the_command(filled: tuple[Tenant, Tenant], tmp_path: Path) -> None:
    data = export_bytes(SHOP_A)
    with pytest.raises(CommandError, match=r"longer than the 100 bytes a line may hold \(max_line_bytes"):
        import_file(tmp_path, data, "--max-line-bytes", "100")
    assert_nothing_imported()
    with pytest.raises(CommandError, match="--max-line-bytes must be between 1 and"):
        import_file(tmp_path, data, "--max-line-bytes", "0")


def test_an_archive_that_expands_beyond_the_total_cap_is_refused_before_reading(
    filled: tuple[Tenant, Tenant], tmp_path: Path
) -> None:
    with pytest.raises(CommandError, match=r"expands to \d+ bytes, more than the 5000 bytes an import reads"):
        import_file(tmp_path, export_bytes(SHOP_A), "--max-total-bytes", "5000")
    assert_nothing_imported()


# --- (b) the bytes that are read are the bytes checked --------------------------------------


def test_a_manifest_that_checks_a_decoy_instead_of_the_imported_file_is_refused(
    filled: tuple[Tenant, Tenant], tmp_path: Path
) -> None:
    original = export_bytes(SHOP_A)
    with zipfile.ZipFile(io.BytesIO(original)) as archive:
        genuine = archive.read("ad_campaigns.ndjson")
    edited = [{**row, "daily_budget": "99999.00"} for row in lines_of(original, "ad_campaigns.ndjson")]

    def point_at_decoy(manifest: dict[str, Any]) -> dict[str, Any]:
        # The entry keeps the genuine file's rows and SHA-256 but names the decoy, which holds
        # the genuine bytes; the imported `ad_campaigns.ndjson` is the edited one.
        entry = next(e for e in manifest["tables"] if e["table"] == "ad_campaigns")
        entry.update(file="decoy.ndjson", sha256=hashlib.sha256(genuine).hexdigest(), rows=genuine.count(b"\n"))
        manifest["checksum"] = checksum(manifest["tables"])
        return manifest

    data = rezip(
        original, files={"ad_campaigns.ndjson": ndjson(edited)}, extra={"decoy.ndjson": genuine}, edit=point_at_decoy
    )
    with pytest.raises(CommandError, match=r"tables\[\d+\]\.file is 'decoy\.ndjson'"):
        import_file(tmp_path, data)
    assert_nothing_imported()


def test_an_archive_edited_after_it_was_checked_is_refused_and_rolled_back(
    filled: tuple[Tenant, Tenant], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Stored (not compressed), so that an edit in place keeps every offset: the file on disk
    # changes between the check and the insert, as a concurrent writer would change it.
    data = rezip(export_bytes(SHOP_A), compression=zipfile.ZIP_STORED)
    path = tmp_path / "archive.zip"
    path.write_bytes(data)
    position = data.index(b'"daily_budget":')
    from shopify.archive import importing as archive_module

    real = archive_module.archive_manifest

    def check_then_edit(*args: Any, **kwargs: Any) -> Any:
        manifest = real(*args, **kwargs)
        with open(path, "r+b") as file:
            file.seek(position)
            file.write(b'"daily_budgeX":')
        return manifest

    monkeypatch.setattr(archive_module, "archive_manifest", check_then_edit)
    with pytest.raises(CommandError, match=r"nothing imported: ad_campaigns\.ndjson (is damaged|: rows or SHA-256)"):
        call_command("import_shop", str(path), "--shop", TARGET, stdout=io.StringIO())
    assert_nothing_imported()


# --- (c) an import grants no one access ------------------------------------------------------


def test_an_import_grants_no_one_access_whatever_memberships_and_created_by_the_archive_holds(
    filled: tuple[Tenant, Tenant], tmp_path: Path
) -> None:
    admin = UserFactory(username="root", is_superuser=True, is_staff=True)
    original = export_bytes(SHOP_A)
    memberships = lines_of(original, "shop_memberships.ndjson")
    forged_member = {**memberships[0], "id": 999_999, "user_id": str(admin.pk), "role": "owner"}
    briefings = [{**row, "created_by": str(admin.pk)} for row in lines_of(original, "ceo_briefings.ndjson")]
    data = rezip(
        original,
        files={
            "shop_memberships.ndjson": ndjson([*memberships, forged_member]),
            "ceo_briefings.ndjson": ndjson(briefings),
        },
    )

    out = import_file(tmp_path, data)

    assert "shop_memberships: 3 in the archive, none imported" in out
    # Neither the forged owner nor the exported members: no one has access to the copy.
    assert not ShopMembership.objects.filter(shop_id=TARGET).exists()
    assert not ShopMembership.objects.filter(user=admin).exists()
    assert len(shop_rows(TARGET)["ceo_briefings"]) == len(briefings)
    # `created_by` is kept as the archive says (a record, not verified) and grants nothing:
    # no policy of any table reads it.
    assert all(json.loads(row)["created_by"] == str(admin.pk) for row in shop_rows(TARGET)["ceo_briefings"])
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tablename, policyname FROM pg_policies "
            "WHERE coalesce(qual, '') || coalesce(with_check, '') LIKE '%%created_by%%'"
        )
        assert cursor.fetchall() == []


# --- (d) malformed archives: one clear error, nothing imported ------------------------------


def entry_of(manifest: dict[str, Any], table: str = "ad_campaigns") -> dict[str, Any]:
    return next(e for e in manifest["tables"] if e["table"] == table)


def resealed(change: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A manifest edit that recomputes the checksum, so the edit itself is what is judged."""

    def edit(manifest: dict[str, Any]) -> dict[str, Any]:
        change(manifest)
        if isinstance(manifest.get("tables"), list):
            manifest["checksum"] = checksum(manifest["tables"])
        return manifest

    return edit


MALFORMED_MANIFESTS: dict[str, tuple[dict[str, Any], str]] = {
    "not JSON": ({"manifest_bytes": b"{not json"}, r"manifest\.json: not JSON"),
    "not UTF-8": ({"manifest_bytes": b'{"format": "\xff"}'}, r"manifest\.json: not JSON"),
    "nested too deep": ({"manifest_bytes": b"[" * 100_000}, r"manifest\.json: not JSON"),
    "a list": ({"manifest_bytes": b"[]"}, "format is not"),
    "tables not a list": ({"edit": resealed(lambda m: m.update(tables={"a": 1}))}, "tables is not a list"),
    "entry not an object": (
        {"edit": resealed(lambda m: m["tables"].__setitem__(0, "seo_audits.ndjson"))},
        r"tables\[0\] is not an object",
    ),
    "entry without rows": ({"edit": resealed(lambda m: entry_of(m).pop("rows"))}, r"tables\[\d+\] lacks rows"),
    "rows as text": ({"edit": resealed(lambda m: entry_of(m).update(rows="3"))}, r"\.rows is not a row count"),
    "rows as a boolean": ({"edit": resealed(lambda m: entry_of(m).update(rows=True))}, r"\.rows is not a row count"),
    "file as a number": ({"edit": resealed(lambda m: entry_of(m).update(file=5))}, r"\.file is 5"),
    "file outside the archive": (
        {"edit": resealed(lambda m: entry_of(m).update(file="../ad_campaigns.ndjson"))},
        r"\.file is '\.\./ad_campaigns\.ndjson'",
    ),
    "table as a list": ({"edit": resealed(lambda m: entry_of(m).update(table=["x"]))}, r"\.table is not a table name"),
    "sha256 missing": ({"edit": resealed(lambda m: entry_of(m).update(sha256=None))}, r"\.sha256 is not a SHA-256"),
    "table listed twice": (
        {"edit": resealed(lambda m: m["tables"].append(dict(entry_of(m))))},
        "a table is listed twice",
    ),
    "shop as text": ({"edit": resealed(lambda m: m.update(shop="alpha"))}, "shop is not an object"),
    "shop name as a number": (
        {"edit": resealed(lambda m: m["shop"].update(name=7))},
        r"shop\.name is not text",
    ),
    "schema_version as a list": (
        {"edit": resealed(lambda m: m.update(schema_version=["0001"]))},
        "schema_version is not an object",
    ),
    "checksum wrong": ({"edit": lambda m: {**m, "checksum": "0" * 64}}, "checksum does not match"),
}


@pytest.mark.parametrize("case", list(MALFORMED_MANIFESTS), ids=list(MALFORMED_MANIFESTS))
def test_a_malformed_manifest_is_one_clear_error_and_nothing_is_imported(
    filled: tuple[Tenant, Tenant], tmp_path: Path, case: str
) -> None:
    options, message = MALFORMED_MANIFESTS[case]
    data = rezip(export_bytes(SHOP_A), **options)
    with pytest.raises(CommandError, match=f"nothing imported: .*{message}"):
        import_file(tmp_path, data)
    assert_nothing_imported()


def first_row(table: str, change: Callable[[dict[str, Any]], Any]) -> Callable[[bytes], dict[str, Any]]:
    def build(original: bytes) -> dict[str, Any]:
        rows = lines_of(original, f"{table}.ndjson")
        change(rows[0])
        return {"files": {f"{table}.ndjson": ndjson(rows)}}

    return build


def bzip2_member(original: bytes) -> dict[str, Any]:
    return {"compression": zipfile.ZIP_BZIP2}


MALFORMED_ARCHIVES: dict[str, tuple[Callable[[bytes], dict[str, Any]], str]] = {
    "a line not JSON": (
        lambda _: {"files": {"ad_campaigns.ndjson": [b"{oops\n"]}},
        r"ad_campaigns\.ndjson line 1: not JSON",
    ),
    "a line nested too deep": (
        lambda _: {"files": {"ad_campaigns.ndjson": [b"[" * 100_000 + b"\n"]}},
        r"ad_campaigns\.ndjson line 1: not JSON",
    ),
    "a line not an object": (
        lambda _: {"files": {"ad_campaigns.ndjson": [b"[1]\n"]}},
        r"line 1: not an object",
    ),
    "an id as text": (first_row("ad_campaigns", lambda row: row.update(id="one")), r"ad_campaigns\.id = 'one'"),
    "a reference as text": (
        first_row("ad_performance", lambda row: row.update(campaign_id="x")),
        r"ad_performance\.campaign_id = 'x' is not an id",
    ),
    "a user id that is no uuid": (
        first_row("onboarding_progress", lambda row: row.update(user_id="root")),
        r"onboarding_progress\.user_id = 'root' is not a user id",
    ),
    "an extra file": (lambda _: {"extra": {"notes.txt": b"hi"}}, r"extra \['notes\.txt'\]"),
    "a file twice": (
        lambda original: {"extra": {"ad_campaigns.ndjson": b""}},
        r"holds a name twice: \['ad_campaigns\.ndjson'\]",
    ),
    "bzip2": (bzip2_member, "compressed with method 12, not deflate"),
    # zipfile reads the whole central directory into objects of about 500 bytes an entry.
    "too many entries": (
        lambda _: {"extra": {f"empty-{n}": b"" for n in range(1500)}},
        r"the zip lists 15\d\d entries in \d+ bytes; a shop archive has at most 1000",
    ),
}


@pytest.mark.parametrize("case", list(MALFORMED_ARCHIVES), ids=list(MALFORMED_ARCHIVES))
def test_a_malformed_archive_is_one_clear_error_and_nothing_is_imported(
    filled: tuple[Tenant, Tenant], tmp_path: Path, case: str
) -> None:
    build, message = MALFORMED_ARCHIVES[case]
    original = export_bytes(SHOP_A)
    warns_of_duplicates = pytest.warns(UserWarning, match="Duplicate name")
    with warns_of_duplicates if case == "a file twice" else contextlib.nullcontext():
        data = rezip(original, **build(original))
    with pytest.raises(CommandError, match=f"nothing imported: .*{message}"):
        import_file(tmp_path, data)
    assert_nothing_imported()


def test_a_file_that_is_not_there_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="nothing imported: no such file"):
        call_command("import_shop", str(tmp_path / "missing.zip"), "--shop", TARGET, stdout=io.StringIO())
    assert not Shop.objects.filter(domain=TARGET).exists()
