"""Settings for the test suite: a fixed encryption key, no vendor keys leaking in from the shell."""

import os

os.environ.setdefault("FIELD_ENCRYPTION_KEY", "UKwl6rPBD3jYq6U0HNbergTqGWe2zWg9x7bmyrBIEP8=")
os.environ.setdefault("DJANGO_SECRET_KEY", "test-only-secret-key")

from .settings import *  # noqa: F403

# Whatever the developer's shell or .env holds, tests start with no vendor configured.
AI_PROVIDER = "auto"
OPENROUTER_API_KEY = ""
OPENAI_API_KEY = ""
ANTHROPIC_API_KEY = ""
OPENROUTER_HTTP_REFERER = ""
AI_RETRY_BACKOFF = 0.01
AI_REQUEST_TIMEOUT = 5.0
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):  # noqa: F405
    # A file, not shared-cache memory: threads in the concurrency tests need real SQLite locking.
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / "var" / "test.sqlite3")}  # noqa: F405
# The test client and the browser tests speak plain HTTP, whatever DEBUG the shell or .env sets.
SECURE_SSL_REDIRECT = False
SECURE_HSTS_SECONDS = 0
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
if not REDIS_URL:  # noqa: F405  (the PostgreSQL+Redis CI run keeps its shared cache)
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "tests"}}
# Tasks run in-process unless a test hands them to a real worker (tests/test_jobs.py, Redis pass).
CELERY_TASK_ALWAYS_EAGER = True
PAGES_EMBED_ON_SAVE = "off"  # tests that index pages call the job or turn it on

# Every response the suite produces is scanned for key-shaped text (tests/leakcheck.py).
MIDDLEWARE = [*MIDDLEWARE, "tests.leakcheck.LeakCheckMiddleware"]  # noqa: F405
MEDIA_ROOT = BASE_DIR / "var" / "test-media"  # noqa: F405  (uploads in tests never land in the dev library)
