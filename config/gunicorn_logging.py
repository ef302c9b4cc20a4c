"""gunicorn's own lines (start, listening, workers booting and exiting, signals, stop) in the
app's log, as JSON like every other line.

gunicorn writes them through plain-text handlers of its own (`gunicorn.error`, which does not
propagate). This logger class removes those handlers and lets the lines propagate to the root
logger, which the app's LOGGING configures (config/settings.py: JSON with LOG_FORMAT=json, the
request context filter, redaction). It relies on `--preload` (make serve, bench.servers): the
master loads Django, and so its logging, before gunicorn writes its first line.

Imported by gunicorn before Django is set up: nothing here may import Django.
"""

from __future__ import annotations

from typing import Any

from gunicorn import glogging  # type: ignore[import-untyped]


class AppLogger(glogging.Logger):
    """`--logger-class config.gunicorn_logging.AppLogger`."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            for handler in list(log.handlers):
                log.removeHandler(handler)
            log.propagate = True
