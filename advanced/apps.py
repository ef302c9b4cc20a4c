from __future__ import annotations

import logging

from django.apps import AppConfig
from django.conf import settings

logger = logging.getLogger(__name__)


class AdvancedConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "advanced"

    def server_warm_up(self) -> None:
        """Called once by the WSGI entry point (config/wsgi.py) before the server forks workers:
        the knowledge models a text search embeds with. Loaded here, the workers share them and
        none pays the loading on its first search, again after every recycling (measured with
        gunicorn, 3 workers: see docs/operations.md)."""
        from .knowledge.embeddings import EmbeddingError, preload_local
        from .knowledge.embeddings_transformer import preload

        try:
            if settings.EMBEDDING_PROVIDER == "local":
                preload_local()
            if settings.KNOWLEDGE_REFINE:
                preload()
        except EmbeddingError as exc:
            # Search and the refine job report it where it matters; the server still starts.
            logger.warning("knowledge models not preloaded: %s", exc)
