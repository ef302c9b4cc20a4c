"""Django settings. The environment is read here and nowhere else (see README, Configuration)."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), got {raw!r}")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from exc


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


DEBUG = env_bool("DJANGO_DEBUG", True)
SECRET_KEY = env_str("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off")
    SECRET_KEY = "dev-only-insecure-secret-key-do-not-use-in-production"
# With debug off the hosts must be named, except for the production server on the embedded
# database (`make serve` without DATABASE_URL sets DJANGO_EMBEDDED_DATABASE=1): a try on this
# machine, where gunicorn listens on 127.0.0.1 only, so loopback (without it every request was 400).
_LOOPBACK_HOSTS = ["127.0.0.1", "localhost"]
if DEBUG:
    _default_hosts = [*_LOOPBACK_HOSTS, "testserver"]
elif env_bool("DJANGO_EMBEDDED_DATABASE", False):
    _default_hosts = _LOOPBACK_HOSTS
else:
    _default_hosts = []
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", _default_hosts)
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

# --- Database -------------------------------------------------------------------------
# DATABASE_URL points at a real server. Without it, development and tests run on the
# embedded PostgreSQL (data in EMBEDDED_DATABASE_DIR). Importing this module starts nothing:
# the entry points (manage.py, config/wsgi.py, config/asgi.py, the test plugin config/testing.py,
# the benchmarks) call `config.embedded.prepare()` before Django reads these settings; it starts
# or joins the server, exports its DSN as DATABASE_URL and reads this module again.
DATABASE_URL = env_str("DATABASE_URL", "")
EMBEDDED_DATABASE_DIR = Path(env_str("EMBEDDED_DATABASE_DIR", str(BASE_DIR / ".pgdata")))
EMBEDDED_DATABASE_NAME = env_str("EMBEDDED_DATABASE_NAME", "growth")
EMBEDDED_DATABASE_PASSWORD = env_str("EMBEDDED_DATABASE_PASSWORD", "app_owner")
USE_EMBEDDED_DATABASE = not DATABASE_URL
# DJANGO_EMBEDDED_DATABASE=1: `make serve` trying the production server on the embedded one.
if USE_EMBEDDED_DATABASE and not DEBUG and not env_bool("DJANGO_EMBEDDED_DATABASE", False):
    raise ImproperlyConfigured(
        "DJANGO_DEBUG is off and DATABASE_URL is not set: set DATABASE_URL=postgresql://app_owner:PASSWORD@HOST"
        ":5432/growth for a real server, or DJANGO_EMBEDDED_DATABASE=1 to serve the embedded database in "
        f"{EMBEDDED_DATABASE_DIR} (as `make serve` does without DATABASE_URL)"
    )
# Superuser DSN for `manage.py bootstrap_db` (never used by requests): a real server's, or the
# embedded server's, which `config.embedded.prepare()` exports.
DATABASE_ADMIN_URL = env_str("DATABASE_ADMIN_URL", "") or env_str("EMBEDDED_DATABASE_SUPERUSER_URL", "")
# Not prepared (a script that imports the settings without an entry point): a host name that says
# so in the connection error, rather than a connection to whatever the default socket is.
_database = dj_database_url.parse(DATABASE_URL or "postgresql://app_owner@embedded-database-not-started/growth")
# The development server (`manage.py runserver`, `make run`) answers each request on a new thread,
# and a thread's persistent connections outlived it until the garbage collector found them: 16
# clients, each request on a new HTTP connection, filled PostgreSQL's 100 slots (213 errors in 500
# requests). Under it each alias borrows from a psycopg pool (Django's OPTIONS["pool"], which
# needs CONN_MAX_AGE 0 and checks a connection before lending it) for one request and gives it
# back at the request's end: at most 2 x DEVELOPMENT_POOL_MAX_SIZE connections however many
# clients (measured: 16, 0 errors, 5.9 s). CONN_MAX_AGE 0 alone held 2 per request in flight (32
# for 16 clients, unbounded for more) and took 15.3 s: a new backend and login per request.
# Tenant settings are transaction-scoped, so nothing outlives a loan; a request that waits longer
# than the pool's timeout is a database-unavailable 503. Production (gunicorn's sync workers, one
# request at a time a process) keeps persistent connections.
DEVELOPMENT_SERVER = sys.argv[1:2] == ["runserver"]
DEVELOPMENT_POOL_MAX_SIZE = 8
_development_pool = {"min_size": 1, "max_size": DEVELOPMENT_POOL_MAX_SIZE, "timeout": 5}
DATABASE_PREPARED_STATEMENTS = env_bool("DATABASE_PREPARED_STATEMENTS", True)
DATABASES = {
    "default": {
        **_database,
        # Django's backend with batches capped to the bind-parameter limit (config/postgresql).
        "ENGINE": "config.postgresql",
        "CONN_MAX_AGE": 0 if DEVELOPMENT_SERVER else env_int("DATABASE_CONN_MAX_AGE", 60),
        "CONN_HEALTH_CHECKS": True,
        # Server-side binding lets psycopg prepare a statement after its 5th run on a connection,
        # so PostgreSQL can reuse the plan: planning an unpruned query over the monthly
        # partitions costs ~2 ms, more than running it (bench: list page 2.9 -> 1.5 ms). Off
        # behind a transaction-mode pooler, which cannot keep prepared statements.
        "OPTIONS": {
            **_database.get("OPTIONS", {}),
            "server_side_binding": DATABASE_PREPARED_STATEMENTS,
            "prepare_threshold": 5 if DATABASE_PREPARED_STATEMENTS else None,
            **({"pool": _development_pool} if DEVELOPMENT_SERVER else {}),
        },
        # Every request is one transaction: the tenant scope (SET LOCAL) lives inside it.
        "ATOMIC_REQUESTS": True,
    }
}
# The same database for the rate-limit counters (tenancy/ratelimit.py), in autocommit: counted
# outside the request's transaction, which rolls back on every refused request. Each worker holds
# this second connection (count it when sizing a pooler: 2 per worker).
DATABASES["ratelimit"] = {**DATABASES["default"], "ATOMIC_REQUESTS": False, "TEST": {"MIRROR": "default"}}
# `database`: counts shared by every worker process (table api_rate_counts); `memory`: one
# process's own counts (tests that do not test the limits).
API_THROTTLE_STORE = env_str("API_THROTTLE_STORE", "database")
if API_THROTTLE_STORE not in ("database", "memory"):
    raise ImproperlyConfigured(f"API_THROTTLE_STORE must be 'database' or 'memory', not {API_THROTTLE_STORE!r}")
# Nothing relies on Django's cache being shared (the rate limits have their own store).
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Applications -----------------------------------------------------------------------
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "tenancy",
    "backoffice",
    "growth",
    "onboarding",
    "advanced",
    "shopify",
    # Scheduled jobs (procrastinate: PostgreSQL is the queue; docs/operations.md).
    "procrastinate.contrib.django",
    "jobs",
]

MIDDLEWARE = [
    # First: one log line a request with its id, shop and user, whatever answers (config/logs.py).
    "config.logs.RequestLogMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Static files from the application, right after SecurityMiddleware so a static response
    # still gets the security headers (STORAGES below).
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # CommonMiddleware without the trailing-slash redirect of API writes (tenancy/api/middleware.py).
    "tenancy.api.middleware.APICommonMiddleware",
    # A lost or refused database connection around a view: 503 with Retry-After (tenancy/api/errors.py).
    "tenancy.api.middleware.DatabaseUnavailableMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, so the scope's transaction wraps only the view (sessions and messages are saved
    # by the middleware above, outside it).
    "tenancy.middleware.BackOfficeScopeMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

AUTH_USER_MODEL = "tenancy.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("DJANGO_STATIC_ROOT", str(BASE_DIR / "staticfiles")))

# --- API ----------------------------------------------------------------------------------
# HS256 secret shared with the issuer of access tokens (Supabase: the project's JWT secret).
JWT_SECRET = env_str("JWT_SECRET", "")
if not JWT_SECRET:
    if not DEBUG:
        raise ImproperlyConfigured("JWT_SECRET must be set when DJANGO_DEBUG is off")
    JWT_SECRET = "dev-only-insecure-jwt-secret-change-me-0123456789"
# Required `aud` claim (Supabase access tokens carry "authenticated"). With debug off it must be
# set: without it a token minted with the same secret for any other audience (another app of the
# same Supabase project, a service token) would be accepted. Refused here, at settings time, like
# JWT_SECRET: gunicorn never runs system checks, so only this stops the server itself. Every
# production process needs it (migrate too), as it needs JWT_SECRET already. Development
# defaults to Supabase's "authenticated"; an explicitly empty value turns the check off there.
JWT_AUDIENCE = env_str("JWT_AUDIENCE", "authenticated" if DEBUG else "").strip()
if not JWT_AUDIENCE and not DEBUG:
    raise ImproperlyConfigured(
        "JWT_AUDIENCE must be set when DJANGO_DEBUG is off (the `aud` claim API tokens must carry, "
        "e.g. 'authenticated' for Supabase): without it tokens minted for any audience are accepted"
    )
API_THROTTLE_RATE = env_str("API_THROTTLE_RATE", "1200/minute")
# /api/schema/ renders the OpenAPI document once per process and serves those bytes after
# (generating it cost 0.2-0.8 s of CPU per anonymous request); 0: generated on every request.
API_SCHEMA_CACHE = env_bool("API_SCHEMA_CACHE", True)
API_PAGE_SIZE = env_int("API_PAGE_SIZE", 50)
API_MAX_PAGE_SIZE = env_int("API_MAX_PAGE_SIZE", 500)
API_BULK_MAX_ROWS = env_int("API_BULK_MAX_ROWS", 10_000)
# A bulk batch of 10,000 rows is a few MB of JSON.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 32 * 1024 * 1024)

# --- Shopify app (shopify/: session tokens, webhooks) -------------------------------------
# The app's client id (`aud` of App Bridge session tokens) and client secret (signs session
# tokens and webhook HMACs). Empty: session tokens are refused and every webhook answers 401.
# Never logged, never echoed in an error.
SHOPIFY_API_KEY = env_str("SHOPIFY_API_KEY", "")
SHOPIFY_API_SECRET = env_str("SHOPIFY_API_SECRET", "")

# --- Briefing summaries (manage.py generate_briefings) -----------------------------------
# "template" (default): a deterministic summary. "openai": a chat completions call, falling
# back to the template when it fails (advanced/briefings/llm.py).
LLM_PROVIDER = env_str("LLM_PROVIDER", "template")
LLM_MODEL = env_str("LLM_MODEL", "gpt-4o-mini")
LLM_TIMEOUT_SECONDS = env_int("LLM_TIMEOUT_SECONDS", 30)
OPENAI_API_KEY = env_str("OPENAI_API_KEY", "")
OPENAI_BASE_URL = env_str("OPENAI_BASE_URL", "https://api.openai.com/v1")

# --- Knowledge base (advanced/knowledge/: embeddings.py, services/) ------------------------
# Who embeds documents and text queries, independent of LLM_PROVIDER: "local" (default: the
# WordLlama model shipped in its PyPI wheel, offline on CPU), "hashing" (lexical, offline) or
# "openai" (EMBEDDING_MODEL, which must accept `dimensions`: the text-embedding-3 family).
EMBEDDING_PROVIDER = env_str("EMBEDDING_PROVIDER", "local").strip().lower()
if EMBEDDING_PROVIDER not in ("local", "hashing", "openai"):
    raise ImproperlyConfigured(f"EMBEDDING_PROVIDER must be local, hashing or openai, got {EMBEDDING_PROVIDER!r}")
if EMBEDDING_PROVIDER == "openai" and not OPENAI_API_KEY:
    raise ImproperlyConfigured("EMBEDDING_PROVIDER=openai needs OPENAI_API_KEY")
# PostgreSQL text search configuration of keyword search (a row records the one its tsvector
# was built with; `reembed_knowledge` moves rows to this one).
KNOWLEDGE_SEARCH_LANGUAGE = env_str("KNOWLEDGE_SEARCH_LANGUAGE", "english").strip().lower()
if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", KNOWLEDGE_SEARCH_LANGUAGE):
    raise ImproperlyConfigured(
        f"KNOWLEDGE_SEARCH_LANGUAGE must name a text search configuration, got {KNOWLEDGE_SEARCH_LANGUAGE!r}"
    )
EMBEDDING_MODEL = env_str("EMBEDDING_MODEL", "text-embedding-3-small")
# The refined tier: all-MiniLM-L6-v2 vectors computed in the background
# (jobs.refine_knowledge) and preferred by semantic and hybrid search where current. Off: the
# job does nothing and search uses the default provider's vectors only.
KNOWLEDGE_REFINE = env_bool("KNOWLEDGE_REFINE", True)
KNOWLEDGE_EMBEDDING_BATCH_SIZE = env_int("KNOWLEDGE_EMBEDDING_BATCH_SIZE", 100)
KNOWLEDGE_EMBEDDING_TIMEOUT = env_int("KNOWLEDGE_EMBEDDING_TIMEOUT", 30)
# A search whose filtered candidates are at most this many scans them exactly; larger ones
# use the IVFFlat index with iterative scans (docs/api.md, Knowledge search). Unset: the
# measured break-even for the physical index (advanced.knowledge.services.exact_search_limit:
# probes x rows / lists / 4, at least 1,000; 3,500 at 200,000 rows after the rebuild).
KNOWLEDGE_EXACT_SEARCH_MAX_CANDIDATES: int | None = (
    env_int("KNOWLEDGE_EXACT_SEARCH_MAX_CANDIDATES", 0)
    if os.environ.get("KNOWLEDGE_EXACT_SEARCH_MAX_CANDIDATES")
    else None
)
# rebuild_knowledge_index sizes maintenance_work_mem for k-means itself, up to this (MB).
KNOWLEDGE_INDEX_BUILD_MAX_MEMORY_MB = env_int("KNOWLEDGE_INDEX_BUILD_MAX_MEMORY_MB", 2048)
# 0: probes = round(sqrt(lists)) of the physical index; max_probes 0: every list.
KNOWLEDGE_IVFFLAT_PROBES = env_int("KNOWLEDGE_IVFFLAT_PROBES", 0)
KNOWLEDGE_IVFFLAT_MAX_PROBES = env_int("KNOWLEDGE_IVFFLAT_MAX_PROBES", 0)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # First: it answers App Bridge session tokens (a `dest` claim) and passes other bearer
        # tokens on to the project's JWT.
        "shopify.session_tokens.ShopifySessionTokenAuthentication",
        "tenancy.api.authentication.JWTAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_FILTER_BACKENDS": [
        "tenancy.api.filters.TenantFilterBackend",
        "rest_framework.filters.OrderingFilter",
        "rest_framework.filters.SearchFilter",
    ],
    # JSON only (a form body is 415): forms cannot carry the JSON columns, lists and nulls the
    # resources have. The parser refuses invalid Unicode, deep nesting and oversized bodies
    # (tenancy/api/parsers.py).
    "DEFAULT_PARSER_CLASSES": ["tenancy.api.parsers.StrictJSONParser"],
    # Dates and moments as the OpenAPI document says (RFC 3339), not whatever Python can read
    # (`20240101`, `2024-W01-1`, a moment without its offset).
    "DATE_INPUT_FORMATS": ["%Y-%m-%d"],
    "DATETIME_INPUT_FORMATS": ["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S.%f%z"],
    "DEFAULT_PAGINATION_CLASS": "tenancy.api.pagination.PagePagination",
    "PAGE_SIZE": API_PAGE_SIZE,
    "DEFAULT_THROTTLE_CLASSES": [
        "tenancy.api.throttling.UserThrottle",
        "tenancy.api.throttling.AnonThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "user": API_THROTTLE_RATE,
        "anon": env_str("API_ANON_THROTTLE_RATE", "60/minute"),
        # Failed authentications per client address; past it the address gets 429 (tenancy/api/throttling.py).
        "auth_failure": env_str("API_AUTH_FAILURE_RATE", "20/minute"),
    },
    # Proxies in front of the server that append to X-Forwarded-For. 0: the anonymous throttle
    # counts the connecting address (DRF's default, None, trusts a client-sent X-Forwarded-For,
    # so a new made-up address per request escaped it).
    "NUM_PROXIES": env_int("API_NUM_PROXIES", 0),
    "DEFAULT_SCHEMA_CLASS": "tenancy.api.schema.TenantAutoSchema",
    "EXCEPTION_HANDLER": "tenancy.api.errors.exception_handler",
    # JSON only, debug or not: no browsable API (tenancy/api/negotiation.py says why); another
    # `?format=` is a 406 in the JSON error shape.
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "tenancy.api.negotiation.JSONOnlyNegotiation",
    "COERCE_DECIMAL_TO_STRING": True,
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Growth platform data service",
    "DESCRIPTION": (
        "Every request acts for one shop: send `Authorization: Bearer <JWT>` and "
        "`X-Shop-Domain: <shop>.myshopify.com`. PostgreSQL row level security keeps each "
        "request inside that shop."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Operations are tagged by resource (the path segment after /api/v1/).
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # `platform` means an ad platform on campaigns and a social network on posts.
    "ENUM_NAME_OVERRIDES": {
        "AdPlatformEnum": "growth.models.AdPlatform",
        "SocialPlatformEnum": "growth.models.SocialPlatform",
    },
    # The contract is public (it holds no data); the API itself needs a token.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "tenancy.api.schema.document_errors",
        "tenancy.api.schema.document_request_rules",
    ],
}

# --- Demo data ------------------------------------------------------------------------
# Password given to the accounts `seed_demo` creates (development only).
DEMO_PASSWORD = env_str("DEMO_PASSWORD", "demo-password-123")

# --- Production: static files, security headers, logs, scheduled jobs ---------------------
# See README, Deploying.

# Static files: WhiteNoise serves them from the application (no web server to configure). With
# debug off the names are hashed and gzip-compressed by `collectstatic` (make serve runs it),
# so they can be cached for a year; with debug on (development, tests) the plain storage
# serves them from the apps, needing no collectstatic.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# Security behind a TLS-terminating proxy. Secure by default when debug is off; HSTS is an
# opt-in (it pins browsers to HTTPS for its whole max-age). `manage.py check --deploy` is
# clean with the values of the README's deploy section (tests/deploy/test_settings.py).
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", not DEBUG)
# Load balancer probes speak plain HTTP to the instance.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SESSION_COOKIE_SECURE = env_bool("DJANGO_SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("DJANGO_CSRF_COOKIE_SECURE", not DEBUG)
SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", False)
# "HTTP_X_FORWARDED_PROTO,https": trust the proxy's header that the request came over HTTPS.
# Only behind a proxy that sets (and strips from clients) that header.
_proxy_ssl_header = env_list("DJANGO_SECURE_PROXY_SSL_HEADER", [])
if _proxy_ssl_header:
    if len(_proxy_ssl_header) != 2:
        raise ImproperlyConfigured(
            "DJANGO_SECURE_PROXY_SSL_HEADER must be 'HEADER,value', e.g. HTTP_X_FORWARDED_PROTO,https"
        )
    SECURE_PROXY_SSL_HEADER = (_proxy_ssl_header[0], _proxy_ssl_header[1])

# Logs: one JSON object a line in production (LOG_FORMAT=json, the default with debug off),
# each carrying the request id, the shop and the user (config/logs.py); secrets are redacted.
LOG_FORMAT = env_str("LOG_FORMAT", "text" if DEBUG else "json")
if LOG_FORMAT not in {"json", "text"}:
    raise ImproperlyConfigured(f"LOG_FORMAT must be json or text, got {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_context": {"()": "config.logs.RequestContextFilter"}},
    "formatters": {
        "json": {
            "()": "config.logs.RedactingJsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
        "text": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s %(shop)s %(user)s] %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "filters": ["request_context"], "formatter": LOG_FORMAT}
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    # Every request gets one line from config.logs; django.server's line would repeat it.
    # procrastinate announces every task and periodic task at each start.
    "loggers": {
        "django.server": {"level": "WARNING"},
        "procrastinate.periodic": {"level": "WARNING"},
        "procrastinate.blueprints": {"level": "WARNING"},
    },
}

# Scheduled jobs (app `jobs`, procrastinate: PostgreSQL is the queue; docs/operations.md).
PROCRASTINATE_AUTODISCOVER_MODULE_NAME = "tasks"
# A worker that starts after an outage queues each periodic job's most recent missed run if it
# was due less than this long ago (procrastinate's default, 10 minutes, skipped every run missed
# by a longer outage or deploy). 8 days: every daily and weekly job, and a monthly or quarterly
# briefing missed in the last week. Every job takes its day from its scheduled time and is
# idempotent, so a late run does the on-time run's work. 0: only procrastinate's 10 minutes
# (its deferrer needs that slack to defer a run at its own time).
JOBS_CATCH_UP_HOURS = env_int("JOBS_CATCH_UP_HOURS", 8 * 24)
if JOBS_CATCH_UP_HOURS < 0:
    raise ImproperlyConfigured("JOBS_CATCH_UP_HOURS must be 0 or more")
PROCRASTINATE_PERIODIC_DEFAULTS = {"max_delay": JOBS_CATCH_UP_HOURS * 3600 + 600}
# A knowledge index refit is due when the rows with an embedding have grown by this factor
# since the index was fitted (jobs/tasks.py).
try:
    JOBS_KNOWLEDGE_REFIT_GROWTH = float(env_str("JOBS_KNOWLEDGE_REFIT_GROWTH", "2.0"))
except ValueError as exc:
    raise ImproperlyConfigured("JOBS_KNOWLEDGE_REFIT_GROWTH must be a number, e.g. 2.0") from exc
if JOBS_KNOWLEDGE_REFIT_GROWTH <= 1:
    raise ImproperlyConfigured("JOBS_KNOWLEDGE_REFIT_GROWTH must be above 1 (2.0: refit when the rows double)")
