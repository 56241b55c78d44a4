"""Test settings: the base settings plus small overrides.

The suite runs on PostgreSQL whenever one is reachable (the concurrency tests need real row locks)
and on SQLite otherwise, where PostgreSQL-only tests skip with a reason.
- DATABASE_URL set: use it.
- LOYALTY_TEST_DB=sqlite: force SQLite.
- otherwise: PostgreSQL at 127.0.0.1:5432 (user postgres) if it answers within a second.
LOYALTY_REQUIRE_POSTGRES=1 (set by .ci/run) turns "not reachable" into an error instead of SQLite.
"""

import os

import dj_database_url

from config.settings import *  # noqa: F403
from config.settings import env

LOCAL_POSTGRES = "postgres://postgres@127.0.0.1:5432/loyalty"


def _postgres_answers(url: str) -> bool:
    try:
        import psycopg

        cfg = dj_database_url.parse(url)
        with psycopg.connect(
            host=cfg["HOST"],
            port=cfg["PORT"] or 5432,
            user=cfg["USER"],
            dbname="postgres",
            password=cfg["PASSWORD"] or None,
            connect_timeout=1,
        ):
            return True
    except Exception:
        return False


def _test_database() -> dict:
    if env("DATABASE_URL"):
        return dj_database_url.parse(env("DATABASE_URL"))
    if env("LOYALTY_TEST_DB") != "sqlite" and _postgres_answers(LOCAL_POSTGRES):
        return dj_database_url.parse(LOCAL_POSTGRES)
    if env("LOYALTY_REQUIRE_POSTGRES") == "1":
        raise RuntimeError(f"LOYALTY_REQUIRE_POSTGRES=1 but no PostgreSQL answers at {LOCAL_POSTGRES}")
    return {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:", "TEST": {"NAME": ":memory:"}}


DATABASES = {"default": _test_database()}
DATABASES["default"]["TEST"] = {
    **DATABASES["default"].get("TEST", {}),
    # A distinct test database per checkout / worker so parallel runs never collide.
    **({"NAME": os.environ["LOYALTY_TEST_DB_NAME"]} if os.environ.get("LOYALTY_TEST_DB_NAME") else {}),
}

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
CELERY_BROKER_URL = "memory://localhost/"
CELERY_TASK_ALWAYS_EAGER = True
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "tests"}}
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}  # noqa: F405
MIDDLEWARE = [m for m in MIDDLEWARE if "whitenoise" not in m]  # noqa: F405 (no collected static in tests)
LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "WARNING"}}
