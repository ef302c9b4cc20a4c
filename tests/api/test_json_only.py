"""Under /api/ every answer is JSON, debug on or off: no browsable API, and a
body over the upload limit is a 413 in the one error shape."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from growth.models import AdCampaign
from tenancy.scope import atomic_scope, service_scope
from tests.fixtures.api import assert_error
from tests.fixtures.tenants import Actor

CAMPAIGNS = "/api/v1/ad-campaigns/"


def _campaigns() -> int:
    with atomic_scope(service_scope()):
        return AdCampaign.objects.count()


@pytest.mark.parametrize("debug", [False, True], ids=["debug-off", "debug-on"])
def test_a_body_over_the_upload_limit_is_a_413_json_error_with_debug_on_or_off(
    owner_a: Actor, settings: Any, debug: bool
) -> None:
    # Django itself refuses the body (RequestDataTooBig) when the view reads it; with debug on
    # that was Django's HTML debug page with status 400.
    settings.DEBUG = debug
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1_000
    row = {"platform_campaign_id": "c-1", "campaign_name": "x" * 2_000}
    for path, body in ((CAMPAIGNS, row), ("/api/v1/ad-performance/bulk/", [row])):
        response = owner_a.client.generic("POST", path, json.dumps(body), content_type="application/json")
        assert response["Content-Type"] == "application/json", response.content[:200]
        error = assert_error(response, 413, code="too_large")
        assert "1000 bytes" in error["detail"]
    assert _campaigns() == 0


@pytest.mark.parametrize("debug", [False, True], ids=["debug-off", "debug-on"])
def test_the_browsable_api_is_never_served_and_format_api_is_a_406_json_error(
    owner_a: Actor, settings: Any, debug: bool
) -> None:
    settings.DEBUG = debug
    anonymous = Client()
    for client in (owner_a.client, anonymous):
        response = client.get(f"{CAMPAIGNS}?format=api")
        assert response["Content-Type"] == "application/json", response.content[:200]
        assert_error(response, 406)
    body = assert_error(owner_a.client.get(f"{CAMPAIGNS}?format=api"), 406, code="not_acceptable")
    assert "format='api' is not served" in body["detail"] and "json" in body["detail"]
    # A browser's Accept (HTML first, then anything) gets JSON; HTML only is a 406.
    browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    listed = owner_a.client.get(CAMPAIGNS, HTTP_ACCEPT=browser)
    assert listed.status_code == 200 and listed["Content-Type"] == "application/json"
    assert listed.json()["count"] == 0
    assert_error(owner_a.client.get(CAMPAIGNS, HTTP_ACCEPT="text/html"), 406, code="not_acceptable")
    # A write with ?format=api writes nothing.
    row = json.dumps({"platform_campaign_id": "c-1", "campaign_name": "Spring"})
    assert_error(owner_a.client.generic("POST", f"{CAMPAIGNS}?format=api", row, content_type="application/json"), 406)
    assert _campaigns() == 0
    # ?format=json, and the schema's own formats, still work.
    assert owner_a.client.get(f"{CAMPAIGNS}?format=json").status_code == 200
    schema = anonymous.get("/api/schema/?format=json")
    assert schema.status_code == 200 and schema.json()["openapi"].startswith("3.")
