"""Erase a shop's data (what shop/redact does), or finish an erasure that failed."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from shopify.erasure import shop_erasure_run
from shopify.models import ErasureStatus, ShopErasure
from tenancy.models import shop_domain_validator
from tenancy.scope import atomic_scope, service_scope


class Command(BaseCommand):
    help = (
        "Erase every row of DOMAIN in every tenant table and its memberships (all or nothing); "
        "--unfinished runs again every erasure whose last run did not complete."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("domain", nargs="?")
        parser.add_argument("--unfinished", action="store_true", help="Finish failed or interrupted erasures.")
        parser.add_argument("--yes", action="store_true", help="Do not ask for confirmation.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["unfinished"]:
            domains = unfinished_erasures()
        elif options["domain"]:
            domains = [options["domain"].strip().lower()]
            try:
                shop_domain_validator(domains[0])
            except ValidationError as exc:
                raise CommandError(f"{options['domain']!r} is not a shop domain") from exc
        else:
            raise CommandError("name a DOMAIN or pass --unfinished")
        if not domains:
            self.stdout.write("No unfinished erasure.")
            return
        if not options["yes"]:
            answer = input(f"Erase all data of {', '.join(domains)}? This cannot be undone. [y/N] ")
            if answer.strip().lower() not in {"y", "yes"}:
                raise CommandError("nothing erased")
        for domain in domains:
            try:
                erasure = shop_erasure_run(shop_domain=domain, reason="manage.py erase_shop")
            except Exception as exc:
                raise CommandError(f"erasure of {domain} failed, nothing of it was erased: {exc}") from exc
            self.stdout.write(f"Erased {domain}: {erasure.rows_deleted}")


def unfinished_erasures() -> list[str]:
    """Shops whose latest erasure did not complete."""
    with atomic_scope(service_scope()):
        latest: dict[str, str] = {}
        for domain, status in ShopErasure.objects.order_by("started_at", "id").values_list("shop_domain", "status"):
            latest[domain] = status
    return sorted(domain for domain, status in latest.items() if status != ErasureStatus.COMPLETED)
