"""Root URL configuration."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularSwaggerView

from config.health import healthz, readyz
from tenancy.api.schema_view import CachedSchemaView
from tenancy.api.views import MeView

urlpatterns = [
    path("admin/", admin.site.urls),
    # The probes, with the API's JSON error shape for their 503s (config/health.py).
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    # Rendered once per process (tenancy/api/schema_view.py, API_SCHEMA_CACHE).
    path("api/schema/", CachedSchemaView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/v1/me/", MeView.as_view(), name="me"),
    path("api/v1/", include("growth.api.urls")),
    path("api/v1/", include("onboarding.api.urls")),
    path("api/v1/", include("advanced.api.urls")),
    path("", include("shopify.api.urls")),  # /webhooks/shopify/, /api/v1/shop-export/
]

# Under /api/ the one JSON error shape, elsewhere Django's pages (tenancy/api/views.py).
handler400 = "tenancy.api.views.bad_request"
handler403 = "tenancy.api.views.permission_denied"
handler404 = "tenancy.api.views.page_not_found"
handler500 = "tenancy.api.views.server_error"
