"""Give knowledge documents their refined (all-MiniLM-L6-v2) vectors, synchronously.

    manage.py refine_knowledge [--shop DOMAIN] [--batch-size N] [--max-seconds S]

What the background job (jobs.refine_knowledge) does, with a progress bar: every current
version whose refined vector is missing, of another model or of an earlier text, in id order,
in batches of --batch-size (default 32) that commit one by one as service_role. Resumable and
idempotent: a rerun continues with what is still pending; with nothing pending it does nothing.
--max-seconds stops after the batch that passes it (the job uses it to bound one run).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from advanced.knowledge.batches import run_batches
from advanced.knowledge.embeddings import EmbeddingError
from advanced.knowledge.embeddings_transformer import REFINED_MODEL, RefinedEmbeddingProvider, model_folder
from advanced.knowledge.services.refine import (
    DEFAULT_REFINE_BATCH_SIZE,
    MAX_REFINE_BATCH_SIZE,
    RefineBatch,
    knowledge_refine_batch,
    refine_pending,
)
from tenancy.management.options import bounded_option, shop_option
from tenancy.scope import atomic_scope, service_scope


class Command(BaseCommand):
    help = f"Compute the refined ({REFINED_MODEL}) vectors of knowledge documents that lack a current one."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--shop", help="Only this shop (its domain, e.g. demo-1.myshopify.com).")
        parser.add_argument(
            "--batch-size",
            type=int,
            default=DEFAULT_REFINE_BATCH_SIZE,
            help=f"Documents refined and committed together (1..{MAX_REFINE_BATCH_SIZE}; "
            f"default {DEFAULT_REFINE_BATCH_SIZE}).",
        )
        parser.add_argument("--max-seconds", type=float, help="Stop after the batch that passes this many seconds.")

    def handle(self, *args: Any, **options: Any) -> None:
        batch_size = bounded_option("--batch-size", options["batch_size"], MAX_REFINE_BATCH_SIZE)
        max_seconds: float | None = options["max_seconds"]
        if max_seconds is not None and not max_seconds > 0:
            raise CommandError(f"--max-seconds must be above 0; got {max_seconds}.")
        shop = shop_option(options["shop"])
        try:
            model_folder()
        except EmbeddingError as exc:
            raise CommandError(str(exc)) from exc
        provider = RefinedEmbeddingProvider()
        with atomic_scope(service_scope()):
            total = refine_pending(shop_id=shop).count()
        where = f"shop {shop}" if shop else "every shop"
        self.stdout.write(f"{total} current versions of {where} to refine with {REFINED_MODEL}.")
        done = run_batches(
            self.stdout,
            total=total,
            max_seconds=max_seconds,
            next_batch=lambda after_id: _refined(
                knowledge_refine_batch(provider=provider, shop_id=shop, batch_size=batch_size, after_id=after_id)
            ),
        )
        self.stdout.write(self.style.SUCCESS(f"Refined {done} documents with {REFINED_MODEL}."))


def _refined(batch: RefineBatch) -> tuple[int, int | None]:
    return batch.refined, batch.last_id
