#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

from __future__ import annotations

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    from config.embedded import prepare

    try:
        prepare()  # the embedded PostgreSQL when DATABASE_URL is not set
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as exc:
        # A setting the environment gets wrong (config/settings.py): its message says what to set,
        # and a traceback through Django's start-up only buried it. --traceback shows one.
        if "--traceback" in sys.argv:
            raise
        sys.exit(f"ImproperlyConfigured: {exc}")


if __name__ == "__main__":
    main()
