"""Content negotiation of the API: JSON only.

DRF's browsable API (`?format=api`, or a browser's `Accept: text/html`) is not served, with
debug on or off: it cannot send the `Authorization` and `X-Shop-Domain` headers every resource
needs, it renders forms for a JSON-only API, and it is a second, HTML rendering of every response
(and of every error) to keep safe. Swagger UI (`/api/docs/`) is the interactive documentation.
"""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions
from rest_framework.negotiation import DefaultContentNegotiation


class JSONOnlyNegotiation(DefaultContentNegotiation):
    """DRF's negotiation, except that a `?format=` no renderer serves is a 406 in the API's JSON
    error shape naming the formats served (DRF answers it with a bare 404)."""

    def filter_renderers(self, renderers: Any, format: str) -> Any:
        served = [renderer for renderer in renderers if renderer.format == format]
        if not served:
            names = ", ".join(sorted({str(renderer.format) for renderer in renderers}))
            raise exceptions.NotAcceptable(f"format={format!r} is not served; this API answers {names} only.")
        return served
