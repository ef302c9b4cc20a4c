from django.apps import AppConfig


class BackofficeConfig(AppConfig):
    """The back office's building blocks: admin base classes, service forms, per-row actions,
    SVG charts and the report page templates. It owns no tables."""

    name = "backoffice"
    verbose_name = "Back office"
