"""ASGI entry point."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

from config.embedded import prepare

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
prepare()  # the embedded PostgreSQL when DATABASE_URL is not set
application = get_asgi_application()
