"""Fill the database with demo shops, accounts and data, and say how to sign in."""

from __future__ import annotations

import sys
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from tenancy.demo import DEMO_ADMIN_USERNAME, demo_data_seed, demo_seed_step_count, demo_usernames

ADMIN_URL = "http://127.0.0.1:8000/admin/"


class Command(BaseCommand):
    help = (
        "Create demo shops (demo-N.myshopify.com) with their teams and D days of data in every "
        "table, plus a staff superuser 'admin'. Idempotent: a second run adds nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--shops", type=int, default=3, help="Number of demo shops (default 3).")
        parser.add_argument("--days", type=int, default=30, help="Days of history per shop (default 30).")

    def handle(self, *args: Any, **options: Any) -> None:
        shops, days = int(options["shops"]), int(options["days"])
        if shops < 1 or days < 1:
            raise CommandError("--shops and --days must be at least 1")
        started = time.monotonic()
        # The bar goes to the process's stderr: tqdm redraws its line with carriage returns,
        # which Django's OutputWrapper would break by appending a newline to every write.
        with tqdm(
            total=demo_seed_step_count(shops=shops),
            desc="seed_demo",
            unit="step",
            file=sys.stderr,
            disable=options["verbosity"] == 0,
        ) as bar:

            def advance(label: str) -> None:
                bar.set_postfix_str(label, refresh=False)
                bar.update()

            counts = demo_data_seed(shops=shops, days=days, progress=advance)
        elapsed = time.monotonic() - started

        self.stdout.write(self.style.SUCCESS(f"Demo data ready: {shops} shops, {days} days ({elapsed:.1f} s)."))
        width = max(len(table) for table in counts)
        self.stdout.write(f"{'table'.ljust(width)}  {'rows':>8}")
        for table, rows in counts.items():
            self.stdout.write(f"{table.ljust(width)}  {rows:>8}")
        self.stdout.write("")
        self.stdout.write(f"Sign in to the admin at {ADMIN_URL} (start it with `python manage.py runserver`)")
        self.stdout.write(f"  username: {DEMO_ADMIN_USERNAME}")
        self.stdout.write(f"  password: {settings.DEMO_PASSWORD}")
        self.stdout.write(
            f"Shop accounts with the same password: {', '.join(demo_usernames(1))}, ... up to demo-{shops}-*"
        )
