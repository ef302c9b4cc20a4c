"""Tokens, the shop header, /me/ and the published contract (the probes: tests/deploy/test_probes.py)."""

from __future__ import annotations

import datetime
import importlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import jwt
import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import Client
from rest_framework.test import APIClient

from growth.factories import AdCampaignFactory
from tenancy.api.authentication import token_mint
from tests.fixtures.api import assert_error
from tests.fixtures.tenants import SHOP_A, SHOP_B, Actor

pytestmark = pytest.mark.django_db

CAMPAIGNS = "/api/v1/ad-campaigns/"


def _client(token: str, shop: str | None = SHOP_A) -> APIClient:
    client = APIClient()
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    if shop:
        headers["HTTP_X_SHOP_DOMAIN"] = shop
    client.credentials(**headers)
    return client


def _claims(actor: Actor, **overrides: object) -> dict[str, object]:
    now = int(time.time())
    return {
        "sub": str(actor.user.pk),
        "role": "authenticated",
        "aud": "authenticated",
        "iat": now,
        "exp": now + 60,
        **overrides,
    }


def test_supabase_shaped_token_is_accepted(owner_a: Actor) -> None:
    # What a Supabase front end sends: HS256 with the project's secret, aud "authenticated".
    token = jwt.encode(_claims(owner_a, aud="authenticated"), settings.JWT_SECRET, algorithm="HS256")
    AdCampaignFactory(shop=owner_a.shop)
    response = _client(token).get(CAMPAIGNS)
    assert response.status_code == 200
    assert response.json()["count"] == 1


@pytest.mark.parametrize(
    ("make_token", "reason"),
    [
        (lambda a: jwt.encode(_claims(a, exp=int(time.time()) - 5), settings.JWT_SECRET, "HS256"), "expired"),
        (lambda a: jwt.encode(_claims(a), "another-secret-of-sufficient-length-0123456789", "HS256"), "Signature"),
        (lambda a: jwt.encode({"sub": str(a.user.pk)}, settings.JWT_SECRET, "HS256"), "exp"),
        (lambda a: jwt.encode(_claims(a, sub="not-a-uuid"), settings.JWT_SECRET, "HS256"), "subject"),
        (lambda a: "garbage", "Invalid token"),
    ],
)
def test_bad_tokens_are_401_with_a_reason(owner_a: Actor, make_token: Callable[[Actor], str], reason: str) -> None:
    body = assert_error(_client(make_token(owner_a)).get(CAMPAIGNS), 401)
    assert reason.lower() in body["detail"].lower()


def test_audience_is_checked_when_configured(owner_a: Actor, settings: Any) -> None:
    settings.JWT_AUDIENCE = "authenticated"
    wrong = jwt.encode(_claims(owner_a, aud="someone-else"), settings.JWT_SECRET, algorithm="HS256")
    assert_error(_client(wrong).get(CAMPAIGNS), 401)
    right = jwt.encode(_claims(owner_a, aud="authenticated"), settings.JWT_SECRET, algorithm="HS256")
    assert _client(right).get(CAMPAIGNS).status_code == 200


def test_a_token_minted_for_another_audience_is_refused_without_any_audience_setting(owner_a: Actor) -> None:
    # An empty JWT_AUDIENCE once accepted a token minted for any audience with
    # the same secret. The default is Supabase's "authenticated"; with debug off it is required.
    assert settings.JWT_AUDIENCE == "authenticated"
    AdCampaignFactory(shop=owner_a.shop)
    for token in (
        jwt.encode(_claims(owner_a, aud="another-app"), settings.JWT_SECRET, algorithm="HS256"),
        jwt.encode({k: v for k, v in _claims(owner_a).items() if k != "aud"}, settings.JWT_SECRET, "HS256"),
    ):
        body = assert_error(_client(token).get(CAMPAIGNS), 401)
        assert "aud" in body["detail"].lower(), body
    right = _client(jwt.encode(_claims(owner_a), settings.JWT_SECRET, algorithm="HS256")).get(CAMPAIGNS)
    assert right.status_code == 200 and right.json()["count"] == 1


def test_with_debug_off_a_process_without_jwt_audience_refuses_to_start() -> None:
    from bench.servers import REPO, production_env

    base = production_env(
        DJANGO_SECRET_KEY="k" * 60, JWT_SECRET="j" * 40, DATABASE_URL="postgresql://app_owner:x@127.0.0.1:1/growth"
    )
    assert base["JWT_AUDIENCE"] == "authenticated"  # what tests/deploy's production servers run with

    def start(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        code = "import django; django.setup(); from django.conf import settings; print(settings.JWT_AUDIENCE)"
        return subprocess.run(
            [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
        )

    started = start(base)
    assert started.returncode == 0 and started.stdout.strip() == "authenticated", started.stderr
    for missing in ({**base, "JWT_AUDIENCE": ""}, {k: v for k, v in base.items() if k != "JWT_AUDIENCE"}):
        refused = start(missing)
        assert refused.returncode != 0
        assert "JWT_AUDIENCE must be set when DJANGO_DEBUG is off" in refused.stderr


def test_a_token_verified_earlier_is_refused_once_it_expires(owner_a: Actor, monkeypatch: pytest.MonkeyPatch) -> None:
    # The verification is kept per process (tenancy/api/authentication.py); its expiry is not.
    now = time.time()
    token = jwt.encode(_claims(owner_a, exp=int(now) + 30), settings.JWT_SECRET, "HS256")
    assert _client(token).get(CAMPAIGNS).status_code == 200
    assert _client(token).get(CAMPAIGNS).status_code == 200
    monkeypatch.setattr("tenancy.api.authentication.time.time", lambda: now + 31)
    body = assert_error(_client(token).get(CAMPAIGNS), 401)
    assert "expired" in body["detail"].lower()


def test_a_kept_verification_is_not_reused_under_another_secret(owner_a: Actor, settings: Any) -> None:
    token = jwt.encode(_claims(owner_a), settings.JWT_SECRET, "HS256")
    assert _client(token).get(CAMPAIGNS).status_code == 200
    settings.JWT_SECRET = "another-secret-of-enough-length-0123456789abcdef"
    assert _client(token).get(CAMPAIGNS).status_code == 401


def test_token_of_inactive_user_is_refused(owner_a: Actor) -> None:
    token = token_mint(user=owner_a.user, ttl=datetime.timedelta(minutes=1))
    owner_a.user.is_active = False
    owner_a.user.save(update_fields=["is_active"])
    assert_error(_client(token).get(CAMPAIGNS), 401)


@pytest.mark.parametrize("header", ["NOT A DOMAIN", "Alpha.MyShopify.com.", "x" * 300])
def test_malformed_shop_header_is_400(owner_a: Actor, header: str) -> None:
    token = token_mint(user=owner_a.user, ttl=datetime.timedelta(minutes=1))
    assert_error(_client(token, shop=header).get(CAMPAIGNS), 400, field="X-Shop-Domain")


def test_unknown_shop_and_foreign_shop_give_the_same_403(owner_a: Actor, owner_b: Actor) -> None:
    token = token_mint(user=owner_a.user, ttl=datetime.timedelta(minutes=1))
    foreign = assert_error(_client(token, shop=SHOP_B).get(CAMPAIGNS), 403, code="not_a_member")
    missing = assert_error(_client(token, shop="nowhere.myshopify.com").get(CAMPAIGNS), 403, code="not_a_member")
    assert foreign["code"] == missing["code"]


def test_membership_of_an_inactive_shop_is_refused(owner_a: Actor) -> None:
    owner_a.shop.is_active = False
    owner_a.shop.save(update_fields=["is_active"])
    assert_error(owner_a.client.get(CAMPAIGNS), 403, code="not_a_member")


def test_session_login_resolves_the_membership_too(owner_a: Actor, owner_b: Actor) -> None:
    # Without a token the user comes from the session: the membership is read on its own.
    AdCampaignFactory(shop=owner_a.shop)
    client = APIClient()
    client.force_login(owner_a.user)
    response = client.get(CAMPAIGNS, HTTP_X_SHOP_DOMAIN=SHOP_A)
    assert response.status_code == 200, response.content
    assert [row["shop_domain"] for row in response.json()["results"]] == [SHOP_A]
    assert_error(client.get(CAMPAIGNS, HTTP_X_SHOP_DOMAIN=SHOP_B), 403, code="not_a_member")


def test_me_lists_the_users_shops_and_roles(owner_a: Actor, owner_b: Actor) -> None:
    from tenancy.factories import ShopMembershipFactory

    ShopMembershipFactory(user=owner_a.user, shop=owner_b.shop, role="viewer")
    body = (
        _client(token_mint(user=owner_a.user, ttl=datetime.timedelta(minutes=1)), shop=None).get("/api/v1/me/").json()
    )
    assert body["id"] == str(owner_a.user.pk)
    assert sorted((s["shop_domain"], s["role"]) for s in body["shops"]) == [(SHOP_A, "owner"), (SHOP_B, "viewer")]


def test_me_needs_a_token(client: Client) -> None:
    assert_error(client.get("/api/v1/me/"), 401)


def test_openapi_schema_documents_header_auth_and_errors(client: Client) -> None:
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
    }
    paths = schema["paths"]
    for resource in (
        "seo-audits",
        "seo-rankings",
        "ad-campaigns",
        "ad-performance",
        "social-posts",
        "social-analytics",
        "onboarding-progress",
        "feature-tours",
        "experiments",
        "experiment-results",
        "knowledge-documents",
        "ceo-briefings",
    ):
        assert f"/api/v1/{resource}/" in paths, resource
    operation = paths["/api/v1/ad-campaigns/"]["get"]
    assert any(p["name"] == "X-Shop-Domain" and p["in"] == "header" for p in operation["parameters"])
    assert operation["responses"]["403"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"
    }


def test_swagger_ui_is_served_from_installed_packages(client: Client) -> None:
    body = client.get("/api/docs/").content.decode()
    assert "swagger-ui" in body
    assert "cdn" not in body.lower() and "unpkg" not in body.lower()
    assert "/static/drf_spectacular_sidecar/" in body


def test_mint_token_prints_a_working_token(owner_a: Actor, capsys: pytest.CaptureFixture[str]) -> None:
    call_command("mint_token", owner_a.user.username, "--ttl", "60")
    token = capsys.readouterr().out.strip()
    assert _client(token).get(CAMPAIGNS).status_code == 200


@pytest.mark.parametrize("ttl", ["0", "-5"])
def test_mint_token_refuses_a_lifetime_that_is_not_positive(owner_a: Actor, ttl: str) -> None:
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="--ttl must be a positive number of seconds"):
        call_command("mint_token", owner_a.user.username, "--ttl", ttl)


def test_mint_token_refuses_unknown_and_inactive_users(owner_a: Actor, capsys: pytest.CaptureFixture[str]) -> None:
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="no active user named 'nobody'"):
        call_command("mint_token", "nobody")
    owner_a.user.is_active = False
    owner_a.user.save(update_fields=["is_active"])
    with pytest.raises(CommandError, match="no active user named 'alpha-owner'"):
        call_command("mint_token", owner_a.user.username)
    assert capsys.readouterr().out == ""


def _subprocess_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_", "API_"))}
    return {**env, "DJANGO_SETTINGS_MODULE": "config.settings", **extra}


def _database_url() -> str:
    from django.db import connection

    db = connection.settings_dict
    user, password = quote(db["USER"], safe=""), quote(db["PASSWORD"], safe="")
    host = db["HOST"] or db["OPTIONS"].get("host", "")
    port = db["PORT"] or db["OPTIONS"].get("port", 5432)
    if str(host).startswith("/"):  # the embedded server's socket directory
        return f"postgresql://{user}:{password}@/{db['NAME']}?host={quote(str(host), safe='')}&port={port}"
    return f"postgresql://{user}:{password}@{host}:{port}/{db['NAME']}"


def test_configured_rates_are_the_throttles_rates() -> None:
    from tenancy.api.throttling import AnonThrottle, UserThrottle

    assert settings.API_THROTTLE_RATE == "1200/minute"
    assert (UserThrottle().num_requests, UserThrottle().duration) == (1200, 60)
    assert (AnonThrottle().num_requests, AnonThrottle().duration) == (60, 60)
    # As configured (tests/conftest.py swaps in per-process counters for the other tests).
    configured = importlib.import_module("config.settings")
    assert configured.API_THROTTLE_STORE == "database"
    assert configured.DATABASES["ratelimit"]["ATOMIC_REQUESTS"] is False


@pytest.fixture
def database_counters(settings: Any) -> Iterator[Callable[..., None]]:
    """The configured counters in PostgreSQL (not the per-process ones of tests/conftest.py),
    with the given throttle rates; emptied and their connection closed afterwards."""
    from django.db import connections

    def use(**rates: str) -> None:
        settings.API_THROTTLE_STORE = "database"
        settings.REST_FRAMEWORK = {
            **settings.REST_FRAMEWORK,
            "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], **rates},
        }

    yield use
    with connections["ratelimit"].cursor() as cursor:
        cursor.execute("DELETE FROM api_rate_counts")
    connections["ratelimit"].close()  # or the test database cannot be dropped at the end


@pytest.mark.django_db(databases=["default", "ratelimit"])
def test_user_throttle_counts_refused_requests_in_the_shared_counters(
    owner_a: Actor, database_counters: Callable[..., None]
) -> None:
    # On their own connection: the request's transaction is rolled back for each 400, and the
    # counts must survive it.
    database_counters(user="3/minute")
    statuses = [owner_a.client.post(CAMPAIGNS, {"campaign_name": ""}, format="json").status_code for _ in range(4)]
    assert statuses == [400, 400, 400, 429]
    response = owner_a.client.get(CAMPAIGNS)
    body = assert_error(response, 429, code="throttled")
    assert "available in" in body["detail"]
    # Three requests in this minute (the previous one is empty): the next fits when it ends.
    assert 1 <= int(response["Retry-After"]) <= 60


@pytest.mark.django_db(databases=["default", "ratelimit"])
def test_anonymous_throttle_limits_the_public_schema_by_address_not_by_forwarded_header(
    client: Client, database_counters: Callable[..., None]
) -> None:
    database_counters(anon="2/minute")
    statuses = [
        client.get("/api/schema/", HTTP_X_FORWARDED_FOR=f"203.0.113.{n}", REMOTE_ADDR="198.51.100.7").status_code
        for n in range(3)
    ]
    assert statuses == [200, 200, 429]
    assert client.get("/api/schema/", REMOTE_ADDR="198.51.100.8").status_code == 200


@pytest.mark.django_db(databases=["default", "ratelimit"])
@pytest.mark.parametrize("store", ["database", "memory"])
def test_the_limit_slides_across_a_window_boundary_and_refusals_are_not_counted(
    store: str, database_counters: Callable[..., None], settings: Any
) -> None:
    from tenancy.ratelimit import rate_hit

    database_counters()
    settings.API_THROTTLE_STORE = store
    key = f"test-{uuid.uuid4().hex}"
    minute = 60 * 29_000_000  # the start of some window of 60 s

    def allowed(at: float, times: int) -> list[bool]:
        return [rate_hit(key=key, limit=10, duration=60, now=minute + at).allowed for _ in range(times)]

    # 10 in the first window's second half; an 11th is refused, and refused again (not counted).
    assert allowed(30, 12) == [True] * 10 + [False, False]
    # At the next window's start the last 60 s still hold those 10: refused.
    assert allowed(60, 1) == [False]
    # 45 s into it, a quarter of the previous window is still inside the last minute (2.5 of its
    # 10 hits): 7 more fit (7 + 2.5 <= 10), not 8.
    assert allowed(105, 8) == [True] * 7 + [False]
    # Two windows later nothing is left.
    assert allowed(180, 10) == [True] * 10


@pytest.mark.django_db(databases=["default", "ratelimit"])
def test_a_refusal_says_when_the_next_request_fits(database_counters: Callable[..., None]) -> None:
    from tenancy.ratelimit import rate_hit

    database_counters()
    key = f"test-{uuid.uuid4().hex}"
    start = 60 * 29_000_000
    assert all(rate_hit(key=key, limit=4, duration=60, now=start + 10).allowed for _ in range(4))
    # Full in its own window: the next window, 50 s later.
    assert rate_hit(key=key, limit=4, duration=60, now=start + 10).retry_after == pytest.approx(50)
    # 15 s into the next window 4 * 0.75 = 3 of them still count and one fits; after it, the
    # previous window's share must fall to 2/4, at 30 s: 15 s more.
    assert rate_hit(key=key, limit=4, duration=60, now=start + 75).allowed
    refused = rate_hit(key=key, limit=4, duration=60, now=start + 75)
    assert (refused.allowed, refused.retry_after) == (False, pytest.approx(15))
    assert rate_hit(key=key, limit=4, duration=60, now=start + 90).allowed


@pytest.mark.django_db(databases=["default", "ratelimit"])
def test_a_counter_expires_when_no_window_reads_it_and_is_then_purged(
    database_counters: Callable[..., None],
) -> None:
    from django.db import connection, connections

    from tenancy.ratelimit import expired_rate_counts_purge, rate_hit

    database_counters()
    # A counter of the window [60·k, 60·k + 60) is read in its own window and the next one.
    k = 29_000_000
    rate_hit(key="fresh", limit=5, duration=60, now=60 * k + 12.5)
    with connections["ratelimit"].cursor() as cursor:
        cursor.execute("SELECT key, slot, hits, extract(epoch FROM expires_at) FROM api_rate_counts")
        assert cursor.fetchall() == [("fresh:60", k, 1, 60 * k + 120)]
    # The purge (a command, on the default connection) removes the expired rows only.
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO api_rate_counts (key, slot, hits, expires_at) VALUES "
            "('gone:60', 1, 3, now() - interval '1 second'), ('kept:60', 2, 3, now() + interval '1 minute')"
        )
    assert expired_rate_counts_purge() == 1
    with connection.cursor() as cursor:
        cursor.execute("SELECT key FROM api_rate_counts ORDER BY key")
        assert [row[0] for row in cursor.fetchall()] == ["kept:60"]


def test_throttle_counts_are_shared_by_worker_processes() -> None:
    # Two processes (as two gunicorn workers) against the same database: the second sees the
    # first's requests. With a per-process cache each would allow the whole rate.
    address = f"192.0.2.{uuid.uuid4().int % 250 + 1}-{uuid.uuid4().hex[:8]}"
    script = (
        "import json, sys, django; django.setup()\n"
        "from rest_framework.request import Request\n"
        "from rest_framework.test import APIRequestFactory\n"
        "from tenancy.api.throttling import AnonThrottle\n"
        "allowed = [AnonThrottle().allow_request(Request(APIRequestFactory().get('/', REMOTE_ADDR=sys.argv[1])), None)"
        " for _ in range(2)]\n"
        "print(json.dumps(allowed))\n"
    )
    env = _subprocess_env(DATABASE_URL=_database_url(), API_ANON_THROTTLE_RATE="3/minute")

    def worker() -> list[bool]:
        out = subprocess.run(
            [sys.executable, "-c", script, address],
            env=env,
            cwd=settings.BASE_DIR,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
        return list(json.loads(out.stdout.strip().splitlines()[-1]))

    assert worker() == [True, True]
    assert worker() == [True, False]


@pytest.mark.parametrize("role", ["authenticated", "anon", "back_office", "service_role"])
def test_no_scope_role_can_read_or_change_the_rate_limit_counters(role: str) -> None:
    # Counted by the app's own login role on its own connection, never inside a scope: a tenant
    # (or staff) request cannot see whom else the API counts, nor reset its own count.
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT bool_or(has_table_privilege(%s, 'api_rate_counts', p)) "
            "FROM unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE']) AS p",
            [role],
        )
        assert cursor.fetchone()[0] is False


# --- Failed authentications ---------------------------------------------------------------


def _attempts(owner: Actor, address: str, tokens: list[str]) -> list[Any]:
    return [_client(token).get(CAMPAIGNS, REMOTE_ADDR=address) for token in tokens]


@pytest.mark.django_db(databases=["default", "ratelimit"])
@pytest.mark.parametrize("store", ["database", "memory"])
def test_failed_authentications_from_one_address_are_throttled_and_then_refused_before_any_check(
    owner_a: Actor, database_counters: Callable[..., None], settings: Any, store: str
) -> None:
    from growth.models import AdCampaign
    from tenancy.api.throttling import failed_authentication_suspects_clear
    from tenancy.scope import atomic_scope, service_scope

    database_counters(auth_failure="3/minute")
    settings.API_THROTTLE_STORE = store
    failed_authentication_suspects_clear()
    bad = [
        jwt.encode(_claims(owner_a), "another-secret-of-sufficient-length-0123456789", "HS256"),
        "garbage",
        jwt.encode(_claims(owner_a, aud="another-app"), settings.JWT_SECRET, "HS256"),
        "still-garbage",
    ]
    responses = _attempts(owner_a, "198.51.100.9", bad)
    # Three failures are 401s; the fourth is a 429 in the error shape, with Retry-After.
    assert [r.status_code for r in responses] == [401, 401, 401, 429]
    body = assert_error(responses[3], 429, code="throttled")
    assert "failed authentications" in body["detail"]
    assert 1 <= int(responses[3]["Retry-After"]) <= 60
    # From then on the address is refused before its token is looked at, a valid one included,
    # and nothing is written.
    valid = _client(token_mint(user=owner_a.user, ttl=datetime.timedelta(minutes=1)))
    refused = valid.post(
        CAMPAIGNS, {"campaign_name": "Spring", "platform_campaign_id": "c-1"}, format="json", REMOTE_ADDR="198.51.100.9"
    )
    assert_error(refused, 429, code="throttled")
    assert "Retry-After" in refused
    with atomic_scope(service_scope()):
        assert AdCampaign.objects.count() == 0
    # Another address is not concerned, and requests without credentials are not failures.
    assert valid.get(CAMPAIGNS, REMOTE_ADDR="198.51.100.10").status_code == 200
    assert [r.status_code for r in _attempts(owner_a, "198.51.100.10", ["garbage"] * 3)] == [401, 401, 401]
    assert Client().get(CAMPAIGNS, REMOTE_ADDR="198.51.100.11").status_code == 401


def test_a_locked_address_is_refused_before_a_shopify_session_token_is_checked(owner_a: Actor, settings: Any) -> None:
    from tenancy.api.throttling import failed_authentication_suspects_clear
    from tests.shopify.conftest import API_KEY, API_SECRET, session_token

    settings.SHOPIFY_API_KEY, settings.SHOPIFY_API_SECRET = API_KEY, API_SECRET
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "auth_failure": "2/minute"},
    }
    failed_authentication_suspects_clear()
    valid = APIClient()
    valid.credentials(HTTP_AUTHORIZATION=f"Bearer {session_token(owner_a.shop.domain, '1001')}")
    assert valid.get(CAMPAIGNS, REMOTE_ADDR="198.51.100.20").status_code == 200
    bad = [
        session_token(owner_a.shop.domain, "1001", secret="not-the-app-secret-0123456789-0123456789"),
        "garbage",
        "garbage",
    ]
    assert [r.status_code for r in _attempts(owner_a, "198.51.100.20", bad)] == [401, 401, 429]
    assert_error(valid.get(CAMPAIGNS, REMOTE_ADDR="198.51.100.20"), 429, code="throttled")
    assert valid.get(CAMPAIGNS, REMOTE_ADDR="198.51.100.21").status_code == 200


def test_the_failed_authentication_rate_is_configured() -> None:
    from tenancy.api.throttling import FailedAuthenticationThrottle

    throttle = FailedAuthenticationThrottle()
    assert (throttle.num_requests, throttle.duration) == (20, 60)


# --- The schema, generated once per process -----------------------------------------------


def test_the_public_schema_is_generated_once_per_process_and_again_after_a_setting_changes(
    monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    from drf_spectacular.generators import SchemaGenerator

    from tenancy.api.schema_view import schema_cache_clear

    schema_cache_clear()
    generated: list[int] = []
    original = SchemaGenerator.get_schema

    def counting(self: Any, *args: Any, **kwargs: Any) -> Any:
        generated.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(SchemaGenerator, "get_schema", counting)
    client = Client()
    yaml = [client.get("/api/schema/") for _ in range(3)]
    assert [r.status_code for r in yaml] == [200, 200, 200]
    assert len({r.content for r in yaml}) == 1 and yaml[0]["Content-Type"].startswith("application/vnd.oai.openapi")
    assert "schema.yaml" in yaml[1]["Content-Disposition"] or ".yaml" in yaml[1]["Content-Disposition"]
    assert len(generated) == 1
    as_json = [client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json") for _ in range(2)]
    assert as_json[0].content == as_json[1].content
    assert [r["Content-Type"] for r in as_json] == ["application/vnd.oai.openapi+json"] * 2
    assert len(generated) == 2
    bulk = json.loads(as_json[0].content)["paths"]["/api/v1/ad-performance/bulk/"]["post"]["requestBody"]["content"]
    assert bulk["application/json"]["schema"]["maxItems"] == settings.API_BULK_MAX_ROWS
    # A changed setting (here the bulk limit the document states) forgets the rendered document.
    settings.API_BULK_MAX_ROWS = 77
    changed = json.loads(client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").content)
    bulk = changed["paths"]["/api/v1/ad-performance/bulk/"]["post"]["requestBody"]["content"]
    assert bulk["application/json"]["schema"]["maxItems"] == 77
    assert len(generated) == 3
