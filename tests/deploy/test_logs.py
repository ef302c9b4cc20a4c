"""Logs an operator can use: JSON lines with request id, shop and user, and never a secret."""

from __future__ import annotations

import datetime
import io
import json
import logging
import re

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.test import Client

from bench.servers import Server
from config.logs import RedactingJsonFormatter, RequestContextFilter, redact, request_id_from
from tenancy.api.authentication import token_mint
from tenancy.factories import ShopFactory, ShopMembershipFactory, UserFactory
from tenancy.models import User
from tenancy.scope import atomic_scope, service_scope, shop_scope

from .client import fetch
from .conftest import PROXY_HEADERS

PASSWORD = "Correct-Horse-Battery-9"


def _lines(text: str) -> list[dict[str, object]]:
    """Every line of a server's output, each a JSON object (gunicorn's own lines included)."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_server_logs_are_json_with_request_id_shop_and_user_and_no_secret(production: Server) -> None:
    with atomic_scope(service_scope()):
        shop = ShopFactory(domain="logs.myshopify.com")
        user = UserFactory(username="logs-owner")
        # The server keeps Django's hashers (the tests' fast MD5 one is not among them).
        hasher = PBKDF2PasswordHasher()
        User.objects.filter(pk=user.pk).update(
            password=hasher.encode(PASSWORD, hasher.salt(), iterations=1000), is_staff=True
        )
        ShopMembershipFactory(user=user, shop=shop, role="owner")
    token = token_mint(user=user, ttl=datetime.timedelta(minutes=5))
    auth: dict[str, str] = {**PROXY_HEADERS, "Authorization": f"Bearer {token}", "X-Shop-Domain": str(shop.domain)}

    listed = fetch(production.base_url, "/api/v1/ad-campaigns/", headers={**auth, "X-Request-ID": "deploy-test-0001"})
    assert listed.status == 200
    assert listed.headers["X-Request-ID"] == "deploy-test-0001"
    # A hostile id (a line break, markup, too long) is replaced by one of ours.
    forged = fetch(production.base_url, "/api/v1/me/", headers={**auth, "X-Request-ID": "x" * 65})
    assert forged.status == 200
    assert re.fullmatch(r"[0-9a-f]{32}", forged.headers["X-Request-ID"])
    refused = fetch(
        production.base_url,
        "/api/v1/ad-campaigns/",
        headers={**PROXY_HEADERS, "Authorization": "Bearer not-a-jwt-secret-value"},
    )
    assert refused.status in (401, 403)

    # A staff sign-in through the admin form, password in the body.
    login = fetch(production.base_url, "/admin/login/", headers=PROXY_HEADERS)
    csrf_cookie = re.search(r"csrftoken=([^;]+)", login.headers["Set-Cookie"])
    csrf_field = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login.text)
    assert csrf_cookie and csrf_field
    body = f"csrfmiddlewaretoken={csrf_field[1]}&username=logs-owner&password={PASSWORD}&next=/admin/".encode()
    signed_in = fetch(
        production.base_url,
        "/admin/login/",
        method="POST",
        headers={
            **PROXY_HEADERS,
            "Cookie": f"csrftoken={csrf_cookie[1]}",
            "Content-Type": "application/x-www-form-urlencoded",
            "Origin": "https://127.0.0.1",
            "Referer": "https://127.0.0.1/admin/login/",
        },
        body=body,
    )
    assert signed_in.status == 302, signed_in.text[:500]

    output = production.log()
    lines = _lines(output)
    # gunicorn's own lines are JSON too, through the app's handler.
    gunicorn_lines = [line for line in lines if line["logger"] == "gunicorn.error"]
    assert any(str(line["message"]).startswith("Listening at") for line in gunicorn_lines), output[:2000]
    assert any(str(line["message"]).startswith("Booting worker") for line in gunicorn_lines)
    mine = [line for line in lines if line.get("request_id") == "deploy-test-0001"]
    assert mine, output[-3000:]
    access = [line for line in mine if line["logger"] == "app.request"]
    assert access == [access[0]]
    assert access[0]["status"] == 200
    assert access[0]["path"] == "/api/v1/ad-campaigns/"
    assert access[0]["shop"] == shop.domain
    assert access[0]["user"] == str(user.pk)
    assert any(line.get("request_id") == forged.headers["X-Request-ID"] for line in lines)
    for secret in (token, PASSWORD, "not-a-jwt-secret-value", csrf_cookie[1]):
        assert secret not in output


def _capture() -> tuple[logging.Handler, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestContextFilter())
    handler.setFormatter(RedactingJsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    return handler, stream


@pytest.mark.django_db
def test_a_line_written_inside_a_tenant_scope_names_its_shop_and_user() -> None:
    handler, stream = _capture()
    log = logging.getLogger("tests.deploy")
    log.addHandler(handler)
    try:
        with atomic_scope(shop_scope(shop="scoped.myshopify.com", subject="user-42", member_role="owner")):
            log.warning("inside")
        log.warning("outside")
    finally:
        log.removeHandler(handler)
    inside, outside = (json.loads(line) for line in stream.getvalue().splitlines())
    assert (inside["shop"], inside["user"], inside["message"]) == ("scoped.myshopify.com", "user-42", "inside")
    assert (outside["shop"], outside["user"], outside["request_id"]) == (None, None, None)


def test_secrets_in_a_message_or_its_extra_fields_are_redacted() -> None:
    handler, stream = _capture()
    log = logging.getLogger("tests.deploy")
    log.addHandler(handler)
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlLXZhbHVl"
    try:
        log.error("calling with Authorization: Bearer %s", "opaque-token-123")
        log.error("login failed", extra={"body": f"username=a&password={PASSWORD}", "header": jwt})
        log.error("config %s", {"api_key": "sk-live-abc", "secret": "hush-hush"})
    finally:
        log.removeHandler(handler)
    output = stream.getvalue()
    for secret in ("opaque-token-123", PASSWORD, jwt, "sk-live-abc", "hush-hush"):
        assert secret not in output
    assert output.count("[redacted") == 5
    first = json.loads(output.splitlines()[0])
    assert first["message"] == "calling with Authorization: Bearer [redacted]"


def test_redaction_leaves_ordinary_text_alone() -> None:
    text = "GET /api/v1/ad-campaigns/ 200 tokens=3 in 12 ms"
    assert redact(text) == "GET /api/v1/ad-campaigns/ 200 tokens=3 in 12 ms"


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("abc-123", True),
        ("0f3a9c1e-7b2d-4e55-9a61-2c4d8e9f0a1b", True),
        ("trace:1.2_3", True),
        ("", False),
        ("x" * 65, False),
        ("has space", False),
        ("line\nbreak", False),
        ("<script>", False),
        ('quote"', False),
    ],
)
def test_a_request_id_is_kept_only_when_it_is_a_short_token(sent: str, kept: bool) -> None:
    got = request_id_from(sent)
    assert (got == sent) is kept
    if not kept:
        assert re.fullmatch(r"[0-9a-f]{32}", got)


@pytest.mark.django_db
def test_every_response_carries_a_request_id_and_the_clients_is_echoed() -> None:
    client = Client()
    assert client.get("/healthz", HTTP_X_REQUEST_ID="probe-7").headers["X-Request-ID"] == "probe-7"
    generated = client.get("/healthz").headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    assert client.get("/healthz").headers["X-Request-ID"] != generated
