"""Export a shop to an archive and import an archive into an empty shop.

The archive is a zip file: one NDJSON file per table of the shop's data (`<table>.ndjson`,
one `row_to_json` object a line, parents before children, rows by id) plus the shop's
memberships, and `manifest.json` (format, schema version, per table its row count and the
SHA-256 of its file, a checksum over those entries). It is produced in pieces as rows are
read through a server-side cursor, so memory stays flat whatever the shop's size.

Export reads under the shop's own policies: each table is read in a `shop_scope` of the shop
(as an owner, the role the CEO briefings policy asks for), tables whose policies also match
the user (onboarding progress) once per user of the shop. Every table's count is checked
against what `service_role` counts for the shop, so a policy that hid rows (or showed
another shop's) fails the export instead of producing a short archive.

Import writes as `service_role`, all or nothing, into a shop that holds no data yet: ids are
new (taken from each table's sequence), references among the shop's tables are rewritten to
them, the rest (timestamps and `created_by` included) is kept as exported. The archive is
untrusted: lines and the uncompressed size are capped and read in pieces, the bytes imported
are the bytes checked against the manifest, and the memberships it lists are not imported
(an import grants no one access; `shop_import`).
"""

from .export import (
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    ArchiveError,
    export_filename,
    schema_version,
    shop_export_chunks,
    shop_export_write,
)
from .importing import shop_import
from .reading import (
    MAX_LINE_BYTES,
    MAX_TOTAL_BYTES,
    ImportLimits,
    ImportResult,
    Manifest,
    ManifestEntry,
    archive_manifest,
)

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "MANIFEST",
    "MAX_LINE_BYTES",
    "MAX_TOTAL_BYTES",
    "ArchiveError",
    "ImportLimits",
    "ImportResult",
    "Manifest",
    "ManifestEntry",
    "archive_manifest",
    "export_filename",
    "schema_version",
    "shop_export_chunks",
    "shop_export_write",
    "shop_import",
]
