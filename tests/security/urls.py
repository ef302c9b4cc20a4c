"""The admin, plus an admin-prefixed view that fails mid-request (connection reuse tests)."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.urls import path

from growth.models import AdCampaign


def failing_view(request: HttpRequest) -> HttpResponse:
    # Touch the scoped data first, so the failure happens with the scope in force.
    list(AdCampaign.objects.values_list("pk", flat=True))
    raise RuntimeError("the view failed")


urlpatterns = [
    path("admin/boom/", failing_view),
    path("admin/", admin.site.urls),
]
