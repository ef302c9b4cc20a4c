"""Move stored knowledge documents to the configured embedding model (and search language).

    manage.py reembed_knowledge [--shop DOMAIN] [--all-versions] [--batch-size N]

Re-embeds, in id order and in batches of --batch-size (default 500), every current version
(every version with --all-versions) whose vector is missing or of another model than
EMBEDDING_PROVIDER's, or whose keyword vector was built with another KNOWLEDGE_SEARCH_LANGUAGE.
Each batch is one transaction as service_role (across shops, or one with --shop): an
interrupted run keeps what it committed and the next run continues from there; a run with
nothing behind changes nothing. Vectors are replaced in place (a version's text never
changes), so a document never lacks a vector and never has two current versions.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from advanced.knowledge.batches import run_batches
from advanced.knowledge.embeddings import EmbeddingError, embedding_provider
from advanced.knowledge.services import knowledge_reembed_batch, reembed_pending
from advanced.knowledge.services.reembed import DEFAULT_BATCH_SIZE, MAX_BATCH_SIZE, ReembedBatch
from tenancy.management.options import bounded_option, shop_option
from tenancy.scope import atomic_scope, service_scope


class Command(BaseCommand):
    help = "Re-embed knowledge documents whose vectors are not of the configured model, in resumable batches."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--shop", help="Only this shop (its domain, e.g. demo-1.myshopify.com).")
        parser.add_argument("--all-versions", action="store_true", help="Earlier versions too (default: current).")
        parser.add_argument(
            "--batch-size",
            type=int,
            default=DEFAULT_BATCH_SIZE,
            help=f"Documents embedded and committed together (1..{MAX_BATCH_SIZE}; default {DEFAULT_BATCH_SIZE}).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        batch_size = bounded_option("--batch-size", options["batch_size"], MAX_BATCH_SIZE)
        shop = shop_option(options["shop"])
        all_versions: bool = options["all_versions"]
        try:
            provider = embedding_provider()
        except EmbeddingError as exc:
            raise CommandError(str(exc)) from exc
        with atomic_scope(service_scope()):
            total = reembed_pending(model=provider.model, shop_id=shop, all_versions=all_versions).count()
        where = f"shop {shop}" if shop else "every shop"
        scope = "versions" if all_versions else "current versions"
        self.stdout.write(f"{total} {scope} of {where} to move to {provider.model}.")
        done = run_batches(
            self.stdout,
            total=total,
            next_batch=lambda after_id: _moved(
                knowledge_reembed_batch(
                    provider=provider,
                    shop_id=shop,
                    all_versions=all_versions,
                    batch_size=batch_size,
                    after_id=after_id,
                )
            ),
        )
        self.stdout.write(self.style.SUCCESS(f"Re-embedded {done} documents with {provider.model}."))


def _moved(batch: ReembedBatch) -> tuple[int, int | None]:
    return batch.updated, batch.last_id
