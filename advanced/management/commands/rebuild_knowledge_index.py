"""Rebuild the knowledge base's IVFFlat index with a `lists` value fitted to the data.

    manage.py rebuild_knowledge_index [--lists N] [--probes N] [--dry-run] [--maintenance-work-mem 1GB]

Counts the rows with an embedding (all shops, as service_role), computes lists = rows / 1000
(sqrt(rows) above a million; at least 1) unless --lists is given, and rebuilds
`knowledge_base_embedding_idx` as the table owner: REINDEX when lists is unchanged, else DROP
and CREATE in one transaction under the same name. Searches then probe round(sqrt(lists))
lists unless KNOWLEDGE_IVFFLAT_PROBES says otherwise; --probes checks a value against the new
lists and prints the setting to use. The build's maintenance_work_mem (k-means keeps 50
sampled vectors a list in memory) is sized from lists x dimensions for its transaction, up to
KNOWLEDGE_INDEX_BUILD_MAX_MEMORY_MB; --maintenance-work-mem overrides it. The migration state
keeps lists=100 (a fresh database starts there); this command changes the physical index only.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError

from advanced.knowledge.services import (
    INDEX_NAME,
    IVFFLAT_MAX_LISTS,
    IVFFLAT_MIN_LISTS,
    knowledge_index_rebuild,
    recommended_probes,
)


class Command(BaseCommand):
    help = "Rebuild knowledge_base_embedding_idx (IVFFlat) with lists fitted to the rows it indexes."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--lists", type=int, help=f"Lists to build ({IVFFLAT_MIN_LISTS}..{IVFFLAT_MAX_LISTS}); default: from rows."
        )
        parser.add_argument("--probes", type=int, help="Probes searches should use (1..lists); default sqrt(lists).")
        parser.add_argument("--dry-run", action="store_true", help="Print what would be done and change nothing.")
        parser.add_argument(
            "--maintenance-work-mem",
            help="maintenance_work_mem for the build, e.g. 1GB; default: sized from lists x dimensions.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        lists: int | None = options["lists"]
        probes: int | None = options["probes"]
        if lists is not None and not IVFFLAT_MIN_LISTS <= lists <= IVFFLAT_MAX_LISTS:
            raise CommandError(f"--lists must be between {IVFFLAT_MIN_LISTS} and {IVFFLAT_MAX_LISTS}; got {lists}.")
        if probes is not None and probes < 1:
            raise CommandError(f"--probes must be at least 1; got {probes}.")
        dry_run: bool = options["dry_run"]
        memory: str | None = options["maintenance_work_mem"]
        try:
            plan = knowledge_index_rebuild(lists=lists, dry_run=True, maintenance_work_mem=memory)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        if probes is not None and probes > plan.lists_after:
            raise CommandError(f"--probes {probes} exceeds the index's {plan.lists_after} lists.")
        self.stdout.write(f"{plan.rows} rows with an embedding; {INDEX_NAME} has lists={plan.lists_before}.")
        if dry_run:
            self.stdout.write(
                f"Dry run: would rebuild with lists={plan.lists_after} "
                f"(maintenance_work_mem {plan.maintenance_work_mem}); nothing changed."
            )
            result = plan
        else:
            self.stdout.write(
                f"Rebuilding with lists={plan.lists_after} (maintenance_work_mem {plan.maintenance_work_mem}) ..."
            )
            try:
                result = knowledge_index_rebuild(lists=plan.lists_after, maintenance_work_mem=plan.maintenance_work_mem)
            except DatabaseError as exc:
                raise CommandError(f"Rebuilding {INDEX_NAME} failed: {exc}") from exc
            verb = "Reindexed" if result.action == "reindex" else "Recreated"
            self.stdout.write(
                self.style.SUCCESS(f"{verb} {INDEX_NAME}: lists {result.lists_before} -> {result.lists_after}.")
            )
        self._report_probes(result.lists_after, probes)

    def _report_probes(self, lists: int, probes: int | None) -> None:
        recommended = recommended_probes(lists)
        configured = settings.KNOWLEDGE_IVFFLAT_PROBES
        if probes is not None:
            self.stdout.write(
                f"Probes: set KNOWLEDGE_IVFFLAT_PROBES={probes} (recommended for {lists} lists: {recommended})."
            )
        elif configured:
            self.stdout.write(
                f"Probes: KNOWLEDGE_IVFFLAT_PROBES={configured} is set (searches use at most {lists}); "
                f"recommended for {lists} lists: {recommended}."
            )
        else:
            self.stdout.write(
                f"Probes: searches will use {recommended} (sqrt of {lists} lists; KNOWLEDGE_IVFFLAT_PROBES unset)."
            )
