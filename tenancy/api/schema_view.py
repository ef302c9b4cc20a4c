"""/api/schema/: the OpenAPI document, generated once per process."""

from __future__ import annotations

import threading
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularAPIView
from rest_framework.request import Request
from rest_framework.response import Response

#
# Generating the document walks every view, serializer and filter (0.2-0.8 s of CPU a request,
# measured on 2 busy vCPUs), and `/api/schema/` is public: every anonymous request paid it. The
# document depends only on the code and the settings, so each process renders it once per
# (version, language, format) and serves those bytes after (API_SCHEMA_CACHE, on by default).
# A changed setting (tests) forgets them.
_rendered: dict[tuple[Any, ...], tuple[bytes, str]] = {}
_rendered_lock = threading.Lock()


def schema_cache_clear(**kwargs: Any) -> None:
    with _rendered_lock:
        _rendered.clear()


setting_changed.connect(schema_cache_clear, dispatch_uid="tenancy.api.schema.schema_cache_clear")


class CachedSchemaView(SpectacularAPIView):
    """drf-spectacular's schema view, rendering the document once per process (see above)."""

    _schema_key: tuple[Any, ...] | None = None

    @extend_schema(exclude=not settings.SPECTACULAR_SETTINGS.get("SERVE_INCLUDE_SCHEMA", True))
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        if not settings.API_SCHEMA_CACHE:
            return super().get(request, *args, **kwargs)
        version = self.api_version or request.version or self._get_version_parameter(request)
        renderer = request.accepted_renderer
        self._schema_key = (version, request.GET.get("lang"), renderer.format, request.accepted_media_type)
        if self._schema_key in _rendered:
            filename = self._get_filename(request, version)
            return Response(headers={"Content-Disposition": f'inline; filename="{filename}"'})
        return super().get(request, *args, **kwargs)

    def finalize_response(self, request: Request, response: Any, *args: Any, **kwargs: Any) -> Any:
        response = super().finalize_response(request, response, *args, **kwargs)
        key = self._schema_key
        if key is None or response.status_code != 200:
            return response
        with _rendered_lock:
            kept = _rendered.get(key)
        if kept is None:
            response.render()
            with _rendered_lock:
                _rendered[key] = (response.content, response["Content-Type"])
        else:
            response.content, response["Content-Type"] = kept  # marks the response rendered
        return response
