"""Print an API access token for a user (development and scripts)."""

from __future__ import annotations

import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tenancy.api.authentication import token_mint
from tenancy.models import User


class Command(BaseCommand):
    help = "Print a Bearer token (HS256, signed with JWT_SECRET) for USERNAME."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--ttl", type=int, default=3600, help="Lifetime in seconds (default 3600).")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["ttl"] <= 0:
            raise CommandError("--ttl must be a positive number of seconds")
        user = User.objects.filter(username=options["username"], is_active=True).first()
        if user is None:
            raise CommandError(f"no active user named {options['username']!r}")
        self.stdout.write(token_mint(user=user, ttl=datetime.timedelta(seconds=options["ttl"])))
