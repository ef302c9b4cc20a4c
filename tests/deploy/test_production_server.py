"""The app as `make serve` runs it: gunicorn, DJANGO_DEBUG=0, static files collected, behind TLS."""

from __future__ import annotations

import re

import pytest

from bench.servers import Server, gunicorn, production_env

from .client import fetch
from .conftest import PROXY_HEADERS

pytestmark = pytest.mark.slow


def _assets(html: str, pattern: str) -> list[str]:
    return re.findall(pattern, html)


def test_the_admin_login_page_links_its_stylesheet_by_hashed_name_and_it_is_served(production: Server) -> None:
    page = fetch(production.base_url, "/admin/login/", headers=PROXY_HEADERS)
    assert page.status == 200
    stylesheets = _assets(page.text, r'href="(/static/admin/css/base\.[0-9a-f]{12}\.css)"')
    assert len(stylesheets) == 1, page.text[:2000]

    css = fetch(production.base_url, stylesheets[0], headers={**PROXY_HEADERS, "Accept-Encoding": "gzip"})
    assert css.status == 200
    assert css.headers["Content-Type"].startswith("text/css")
    # Hashed names never change content: cached for good, and compressed ahead of time.
    assert "immutable" in css.headers["Cache-Control"]
    assert css.headers["Content-Encoding"] == "gzip"


def test_the_unhashed_name_of_a_stylesheet_is_still_served(production: Server) -> None:
    css = fetch(production.base_url, "/static/admin/css/base.css", headers=PROXY_HEADERS)
    assert css.status == 200
    assert css.headers["Content-Type"].startswith("text/css")
    assert b"body" in css.body


def test_swagger_ui_and_every_asset_it_loads_are_served(production: Server) -> None:
    page = fetch(production.base_url, "/api/docs/", headers=PROXY_HEADERS)
    assert page.status == 200
    scripts = _assets(page.text, r'<script src="([^"]+)"')
    styles = _assets(page.text, r'<link rel="stylesheet" href="([^"]+)"')
    assert any("swagger-ui-bundle" in src for src in scripts), page.text
    assert any("swagger-ui-standalone-preset" in src for src in scripts), page.text
    assert styles, page.text
    for src in scripts:
        asset = fetch(production.base_url, src, headers=PROXY_HEADERS)
        assert asset.status == 200, src
        assert asset.headers["Content-Type"].split(";")[0] in {"text/javascript", "application/javascript"}, src
        assert len(asset.body) > 1000, src
    for href in styles:
        asset = fetch(production.base_url, href, headers=PROXY_HEADERS)
        assert asset.status == 200, href
        assert asset.headers["Content-Type"].startswith("text/css"), href
    schema = fetch(production.base_url, "/api/schema/", headers={**PROXY_HEADERS, "Accept": "application/json"})
    assert schema.status == 200
    assert schema.json()["openapi"].startswith("3.")


def test_plain_http_is_redirected_to_https_but_the_probes_answer(production: Server) -> None:
    admin = fetch(production.base_url, "/admin/", headers={"Host": "127.0.0.1"})
    assert admin.status == 301
    assert admin.headers["Location"] == "https://127.0.0.1/admin/"
    health = fetch(production.base_url, "/healthz", headers={"Host": "127.0.0.1"})
    assert health.status == 200
    ready = fetch(production.base_url, "/readyz", headers={"Host": "127.0.0.1"})
    assert ready.status == 200
    assert ready.json() == {"status": "ready", "database": "ok", "migrations": "ok"}
    assert ready.headers["Content-Type"] == "application/json"


def test_https_responses_carry_hsts_and_secure_cookies(production: Server) -> None:
    page = fetch(production.base_url, "/admin/login/", headers=PROXY_HEADERS)
    assert page.headers["Strict-Transport-Security"] == "max-age=3600"
    cookies = page.headers.get_all("Set-Cookie") or []
    csrf = [cookie for cookie in cookies if cookie.startswith("csrftoken=")]
    assert csrf and "Secure" in csrf[0]


def test_an_unknown_host_is_refused(production: Server) -> None:
    reply = fetch(production.base_url, "/healthz", headers={"Host": "evil.example"})
    assert reply.status == 400


def test_without_a_database_healthz_and_readyz_answer_503_in_json(tmp_path: pytest.TempPathFactory) -> None:
    env = production_env(
        DATABASE_URL="postgresql://app_owner:x@127.0.0.1:1/nothing",
        JWT_SECRET="unused-secret-0123456789-0123456789-0123456789",
        DJANGO_SECURE_SSL_REDIRECT="0",
        DATABASE_CONN_MAX_AGE="0",
    )
    # The server waits for /healthz to answer at all; a 503 is an answer.
    with gunicorn(env, workers=1, log_path=tmp_path / "down.log") as server:  # type: ignore[operator]
        for probe in ("/healthz", "/readyz"):
            reply = fetch(server.base_url, probe, headers={"Host": "127.0.0.1"})
            assert reply.status == 503, probe
            assert reply.headers["Content-Type"] == "application/json", probe
            assert reply.json()["code"] == "database_unavailable", probe
