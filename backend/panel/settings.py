"""Panel settings. Everything deployment-specific comes from the environment (or a local `.env`)."""

import os
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
environ.Env.read_env(env.str("PANEL_ENV_FILE", default=str(BASE_DIR / ".env")), overwrite=False)

DEBUG = env.bool("DJANGO_DEBUG", default=False)
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY is not set. Set it in the environment or run bin/setup.")
    SECRET_KEY = "insecure-dev-only-secret-key"
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "testserver"])

# HTTPS. Secure by default when DEBUG is off (bin/dev sets DJANGO_DEBUG=1 and serves plain HTTP);
# behind a TLS-terminating proxy set DJANGO_SECURE_PROXY_SSL_HEADER, or every request redirects.
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=False)
SESSION_COOKIE_SECURE = env.bool("DJANGO_SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("DJANGO_CSRF_COOKIE_SECURE", default=not DEBUG)
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])
_proxy_ssl_header = env.list("DJANGO_SECURE_PROXY_SSL_HEADER", default=[])
if _proxy_ssl_header:
    if len(_proxy_ssl_header) != 2 or not _proxy_ssl_header[0].startswith("HTTP_"):
        raise ImproperlyConfigured(
            "DJANGO_SECURE_PROXY_SSL_HEADER must be 'HTTP_<HEADER>,<value>', e.g. 'HTTP_X_FORWARDED_PROTO,https'."
        )
    SECURE_PROXY_SSL_HEADER = (_proxy_ssl_header[0], _proxy_ssl_header[1])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.sites",
    "encrypted_model_fields",
    "import_export",
    "tenancy",
    "integrations",
    "pages",
    "prompts",
    "images",
]

MIDDLEWARE = [
    "integrations.api.observability_views.ObservabilityMiddleware",  # /healthz, /readyz, /metrics before host checks
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "panel.sites.CurrentSiteMiddleware",  # Django's, except that a host with no site gets request.site = None
    "integrations.ai.sites.context.AISiteMiddleware",
    "integrations.usage.editors.AIEditorMiddleware",  # the request's user is the editor of its AI calls
]

ROOT_URLCONF = "panel.urls"
WSGI_APPLICATION = "panel.wsgi.application"

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

# SQLite and local memory need no setup; DATABASE_URL (PostgreSQL via psycopg 3) and REDIS_URL scale out.
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'var' / 'panel.sqlite3'}")}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
# A kept connection is checked before a request reuses it: after a database restart, a stale one is
# replaced instead of failing the request with a 500.
DATABASES["default"]["CONN_HEALTH_CHECKS"] = env.bool("DATABASE_CONN_HEALTH_CHECKS", default=True)
# PostgreSQL connections kept idle per process between requests (panel/db/postgresql/); 0 or DATABASE_POOL=off: none
DATABASE_POOL_MAX_IDLE = env.int("DATABASE_POOL_MAX_IDLE", default=16) if env.bool("DATABASE_POOL", default=True) else 0
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # The same backend with that check made without a query (one round trip less per request): panel/db/postgresql/.
    DATABASES["default"]["ENGINE"] = "panel.db.postgresql"
    if DATABASE_POOL_MAX_IDLE:
        # Under ASGI each request runs on a fresh thread, so a per-thread kept connection (CONN_MAX_AGE) was a new
        # connection per request: each request hands its connection back instead, for the next one on any thread.
        DATABASES["default"]["POOL_MAX_AGE"] = DATABASES["default"]["CONN_MAX_AGE"]  # seconds one is reused
        DATABASES["default"]["POOL_MAX_IDLE"] = DATABASE_POOL_MAX_IDLE
        DATABASES["default"]["CONN_MAX_AGE"] = 0
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Threads (batches, the dev server) write concurrently: wait for the lock instead of failing,
    # and take it at the start of a transaction so two writers never deadlock upgrading. WAL with
    # synchronous=NORMAL: no corruption on a crash, no fsync on every commit (3 ms each on this disk).
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    # Shared by every app process: response cache, cooldowns, rate-limit pauses, settings versions.
    # panel.cache.ResilientRedisCache: one round trip per counter increment, one client per pool (FastRedisCache),
    # answering from process memory while Redis is unreachable
    # (AI calls go on; limits and budget counters are per process meanwhile). Short timeouts, so a stalled
    # Redis costs a call seconds, not minutes.
    CACHES = {
        "default": {
            "BACKEND": "panel.cache.ResilientRedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 2},
        }
    }
else:
    CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://panel")}
    if CACHES["default"]["BACKEND"] == "django.core.cache.backends.locmem.LocMemCache":
        CACHES["default"]["BACKEND"] = "panel.cache.FastLocMemCache"  # why: panel/cache.py

# Celery runs batch generation. Without a broker the same tasks run in-process, synchronously.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL)
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "var" / "static"
# Uploaded files (the image library) go through Django's storage API: FileSystemStorage under MEDIA_ROOT by
# default; an S3-style backend (django-storages' "storages.backends.s3.S3Storage", its options in
# STORAGES_DEFAULT_OPTIONS as JSON) is one setting away. The admin serves files through a tenancy-checked view.
MEDIA_ROOT = env.path("MEDIA_ROOT", default=BASE_DIR / "var" / "media")
MEDIA_URL = "media/"
STORAGES = {
    "default": {
        "BACKEND": env.str("STORAGES_DEFAULT_BACKEND", default="django.core.files.storage.FileSystemStorage"),
        "OPTIONS": env.json("STORAGES_DEFAULT_OPTIONS", default={}),
    },
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
IMAGE_UPLOAD_MAX_BYTES = env.int("IMAGE_UPLOAD_MAX_BYTES", default=5 * 1024 * 1024)  # the gateway's per-image cap

# Tenancy: the current site comes from the request's host (no SITE_ID), so one deployment
# serves many sites. Commands that run outside a request name their site explicitly.
_site_id = env.int("SITE_ID", default=0)
if _site_id:
    SITE_ID = _site_id

# Encrypted model fields (per-site API keys). Production must set it; bin/setup writes a local dev key.
FIELD_ENCRYPTION_KEY = env.str("FIELD_ENCRYPTION_KEY", default="")
if not FIELD_ENCRYPTION_KEY:
    raise ImproperlyConfigured(
        "FIELD_ENCRYPTION_KEY is not set: API keys are stored encrypted with it. Generate one with "
        "`python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'` "
        "and put it in the environment (bin/setup writes one into .env for local development)."
    )

# --- AI provider layer (read by integrations.ai.runtime.conf, and only there) ---------------------------
AI_PROVIDER = env.str("AI_PROVIDER", default="auto")
AI_REQUEST_TIMEOUT = env.float("AI_REQUEST_TIMEOUT", default=60.0)
AI_MAX_RETRIES = env.int("AI_MAX_RETRIES", default=2)
AI_RETRY_BACKOFF = env.float("AI_RETRY_BACKOFF", default=0.5)
AI_RETRY_AFTER_CAP = env.float("AI_RETRY_AFTER_CAP", default=30.0)
AI_COOLDOWN_AFTER_FAILURES = env.int("AI_COOLDOWN_AFTER_FAILURES", default=3)
AI_COOLDOWN_SECONDS = env.float("AI_COOLDOWN_SECONDS", default=60.0)
AI_CACHE_TTL = env.int("AI_CACHE_TTL", default=3600)
AI_BATCH_CONCURRENCY = env.int("AI_BATCH_CONCURRENCY", default=8)
AI_MAX_STREAMS = env.int("AI_MAX_STREAMS", default=2000)
# Search by meaning: the embedding model of pages ("" = the provider's default) and when a changed page is
# re-embedded: "background" (a job off the request thread), "sync" (in the saving process), "off".
PAGES_EMBEDDING_MODEL = env("PAGES_EMBEDDING_MODEL", default="")
# numpy's BLAS on one thread per process: a search is one memory-bound matrix-vector product, and BLAS threads
# spinning beside busy web workers made its p95 ten times worse (bin/bench --search). Read before numpy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
PAGES_EMBED_ON_SAVE = env("PAGES_EMBED_ON_SAVE", default="background")
# Where a site's own base URL may point beyond public https:443 (hosts, host:port, IPs, CIDR ranges).
AI_OUTBOUND_ALLOWLIST = env.list("AI_OUTBOUND_ALLOWLIST", default=[])
# Providers a deployment adds by dotted path to a ProviderSpec (providers/ADDING_PROVIDERS.md).
AI_PROVIDER_SPECS = env.list("AI_PROVIDER_SPECS", default=[])
# Named OpenAI-compatible endpoints every site may use: {"ollama": {"base_url": "...", "api_key": "", ...}}.
AI_ENDPOINTS = env.json("AI_ENDPOINTS", default={})
AI_SETTINGS_CHECK_INTERVAL = env.float("AI_SETTINGS_CHECK_INTERVAL", default=1.0)
AI_API_RATE_LIMIT = env.str("AI_API_RATE_LIMIT", default="60/m")  # per API token or session user; "off" disables
# The usage ledger is written off the caller's thread (integrations.ai.ledger.writer).
AI_LEDGER_QUEUE_SIZE = env.int("AI_LEDGER_QUEUE_SIZE", default=10000)
AI_LEDGER_BATCH_SIZE = env.int("AI_LEDGER_BATCH_SIZE", default=500)
AI_LEDGER_FLUSH_INTERVAL = env.float("AI_LEDGER_FLUSH_INTERVAL", default=0.2)
AI_LEDGER_FLUSH_TIMEOUT = env.float("AI_LEDGER_FLUSH_TIMEOUT", default=30.0)
# Raw ledger rows older than this are deleted by `prune_usage` (daily Celery beat); daily roll-ups are kept.
AI_USAGE_RETENTION_DAYS = env.int("AI_USAGE_RETENTION_DAYS", default=400)
AI_UNPRICED = env.str("AI_UNPRICED", default="charge_estimate")  # or "refuse" (on sites with a cap)
AI_UNPRICED_PRICE = env.str("AI_UNPRICED_PRICE", default="15,75")  # USD/M prompt,completion of unpriced calls
AI_PII_PHONE_REGION = env.str("AI_PII_PHONE_REGION", default="US")  # national phone numbers PII masking finds
AI_LEDGER_JOURNAL_DIR = env.str("AI_LEDGER_JOURNAL_DIR", default=str(BASE_DIR / "var" / "ledger-journal"))
AI_LEDGER_QUEUE = env.str("AI_LEDGER_QUEUE", default="local")
# Budget alerts (integrations.ai.governance.budget_windows) are e-mailed through Django's e-mail backend.
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.smtp.EmailBackend")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="panel@localhost")

OPENROUTER_API_KEY = env.str("OPENROUTER_API_KEY", default="")
OPENROUTER_DEFAULT_MODEL = env.str("OPENROUTER_DEFAULT_MODEL", default="openai/gpt-4o-mini")
OPENROUTER_HTTP_REFERER = env.str("OPENROUTER_HTTP_REFERER", default="")
OPENROUTER_APP_NAME = env.str("OPENROUTER_APP_NAME", default="Panel CMS")
OPENROUTER_BASE_URL = env.str("OPENROUTER_BASE_URL", default="https://openrouter.ai/api/v1")

OPENAI_API_KEY = env.str("OPENAI_API_KEY", default="")
OPENAI_DEFAULT_MODEL = env.str("OPENAI_DEFAULT_MODEL", default="gpt-4o-mini")
OPENAI_BASE_URL = env.str("OPENAI_BASE_URL", default="https://api.openai.com/v1")

ANTHROPIC_API_KEY = env.str("ANTHROPIC_API_KEY", default="")
ANTHROPIC_DEFAULT_MODEL = env.str("ANTHROPIC_DEFAULT_MODEL", default="claude-3-5-haiku")
ANTHROPIC_BASE_URL = env.str("ANTHROPIC_BASE_URL", default="https://api.anthropic.com")
# 2023-06-01 keeps temperature; 2026-10-21 (SDK 2.x default) rejects sampling parameters.
ANTHROPIC_API_VERSION = env.str("ANTHROPIC_API_VERSION", default="2023-06-01")

# Debug pages and error reports scrub anything that is, or looks like, an API key (frames included).
DEFAULT_EXCEPTION_REPORTER = "panel.error_reporting.KeyScrubbingExceptionReporter"
DEFAULT_EXCEPTION_REPORTER_FILTER = "panel.error_reporting.KeyScrubbingExceptionReporterFilter"

IMPORT_EXPORT_USE_TRANSACTIONS = True  # an import with any bad row saves nothing
# An upload waits for its confirm step in the cache (shared through Redis), never under a file name the
# browser posts back (integrations/admin/import_storage.py). Exports escape formulas in
# integrations/admin/export_safety.py.
IMPORT_EXPORT_TMP_STORAGE_CLASS = "import_export.tmp_storages.CacheStorage"

# Observability (docs/observability.md): OTEL_* variables are read by integrations.ai.runtime.conf and the SDK.
AI_METRICS_TOKEN = env.str("AI_METRICS_TOKEN", default="")  # bearer token for GET /metrics
AI_METRICS_ALLOWLIST = env.list("AI_METRICS_ALLOWLIST", default=[])  # IPs/CIDRs allowed to scrape without it
AI_READY_LEDGER_BACKLOG = env.int("AI_READY_LEDGER_BACKLOG", default=AI_LEDGER_QUEUE_SIZE)
AI_LOG_FORMAT = env.str("AI_LOG_FORMAT", default="text")  # "json": JSON lines and one line per AI call

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "integrations.ai.observability.call_log.JsonFormatter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            **({"formatter": "json"} if AI_LOG_FORMAT.strip().lower() == "json" else {}),
        }
    },
    "loggers": {"integrations": {"handlers": ["console"], "level": env.str("AI_LOG_LEVEL", default="INFO")}},
}
