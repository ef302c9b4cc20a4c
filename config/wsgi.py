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
