"""WSGI entry point."""

from __future__ import annotations

import gc
import logging
import os

from django.core.wsgi import get_wsgi_application

from config.embedded import prepare

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
prepare()  # the embedded PostgreSQL when DATABASE_URL is not set (`make serve` on this machine)
# Python's warnings (a library's UserWarning) as lines of the app's log, JSON like the others,
# instead of raw text on stderr between them.
logging.captureWarnings(True)
application = get_wsgi_application()

# What should be ready before requests arrive. Under gunicorn's --preload this runs once in the
# parent, and the forked workers share the result. First the URL resolver's reverse maps:
# built lazily by the first reverse() of a process (every request's middleware calls one),
# 160 ms of a fresh worker's first request. Then each app's AppConfig `server_warm_up`.
from django.apps import apps  # noqa: E402  (the app registry is ready only now)
from django.urls import get_resolver  # noqa: E402

get_resolver().reverse_dict  # noqa: B018  (the property builds the maps)

for app_config in apps.get_app_configs():
    warm_up = getattr(app_config, "server_warm_up", None)
    if warm_up is not None:
        warm_up()

# Last, what was loaded is frozen: moved out of the garbage collector's generations, never
# walked by a collection again. A forked worker otherwise walks all of it in its full
# collections, above all the one Python runs when the process exits, and every object a
# collection touches (its header holds the collector's counts) copies its memory page from the
# parent. Measured (a fork of a process that imported this module, 173,000 tracked objects, load
# ~11 on 2 cores): the child's sys.exit took 2.3-2.6 s, 0.4-0.9 s frozen. That was each worker
# recycle's and SIGTERM's time to exit, after the hang on onnxruntime's thread at exit
# was gone. What the parent made and dropped is collected first, so that nothing dead is frozen.
gc.collect()
gc.freeze()
