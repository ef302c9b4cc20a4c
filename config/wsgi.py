"""WSGI entry point."""

from __future__ import annotations

import logging
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# Python's warnings (a library's UserWarning) as lines of the app's log, JSON like the others,
# instead of raw text on stderr between them.
logging.captureWarnings(True)
application = get_wsgi_application()

# What an app wants ready before requests arrive (its AppConfig's `server_warm_up`). Under
# gunicorn's --preload this runs once in the parent, and the forked workers share the result.
from django.apps import apps  # noqa: E402  (the app registry is ready only now)

for app_config in apps.get_app_configs():
    warm_up = getattr(app_config, "server_warm_up", None)
    if warm_up is not None:
        warm_up()
