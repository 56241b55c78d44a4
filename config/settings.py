"""One settings module, driven by environment variables.

With no environment at all it runs on SQLite with Celery tasks in-process (eager), so one command
runs the whole system. Production differs only by environment: DATABASE_URL, CELERY_BROKER_URL,
SECRET_KEY, ALLOWED_HOSTS, DJANGO_DEBUG=0. See docs/operations.md.
"""

import os
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent


def env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    return default if value is None else value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env(name, default).split(",") if item.strip()]


DEBUG = env_bool("DJANGO_DEBUG", True)
SECRET_KEY = env("SECRET_KEY", "dev-only-insecure-key-change-me" if DEBUG else "")
if not SECRET_KEY:
    raise RuntimeError("SECRET_KEY must be set when DJANGO_DEBUG is off")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "djmoney",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "loyalty",
    "tiers",
    "referrals",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "loyalty.api.middleware.RejectNulMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "loyalty.signin.SignInThrottleMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# Sign-in pages whose POSTs are rate limited per client address and per username (429 + Retry-After).
# The portal's sign-in has its own limits on failed attempts (PORTAL_LOGIN_*, loyalty/portal/throttles.py).
SIGN_IN_PATHS = ("/admin/login/",)
THROTTLE_SIGN_IN = env("THROTTLE_SIGN_IN", "10/min")

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.i18n",
            ],
            "libraries": {"portal": "loyalty.portal.templatetags.portal"},
        },
    },
]

# --- Database: SQLite by default, PostgreSQL with DATABASE_URL -------------------------------
DATABASES = {
    "default": dj_database_url.parse(
        env("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        conn_max_age=int(env("DB_CONN_MAX_AGE", "60")),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL and a busy timeout let the dev server, a shell and the in-process jobs share the file.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# Covering indexes (INCLUDE) are a PostgreSQL feature; on SQLite Django builds them without the extra
# columns and says so on every command. Nothing to act on: silenced.
SILENCED_SYSTEM_CHECKS = ["models.W040"]

# --- Cache (throttling, rate limits): Redis when configured, else in-process -----------------
REDIS_URL = env("REDIS_URL") or (env("CELERY_BROKER_URL") if env("CELERY_BROKER_URL").startswith("redis") else "")
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "loyalty"}
    )
}

# --- Celery: eager in-process by default, a real broker with CELERY_BROKER_URL ---------------
CELERY_BROKER_URL = env("CELERY_BROKER_URL", "memory://localhost/")  # a host, so kombu does not warn
CELERY_TASK_ALWAYS_EAGER = not env("CELERY_BROKER_URL")
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 15 * 60
CELERY_TASK_SOFT_TIME_LIMIT = 14 * 60
CELERY_TASK_IGNORE_RESULT = True
CELERY_TIMEZONE = "UTC"
# A task taken by a worker that dies unacknowledged goes back to the queue after this many seconds
# (tasks are idempotent and ack late; keep it above the longest task's run time).
# Redis checks for such tasks every CELERY_RESTORE_INTERVAL seconds.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": int(env("CELERY_VISIBILITY_TIMEOUT", "3600")),
    "unacked_restore_interval": int(env("CELERY_RESTORE_INTERVAL", "10")),
    "unacked_restore_throttle": 1,
}
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True

# --- Auth, i18n, static -----------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("pl", "Polski")]
LOCALE_PATHS = [BASE_DIR / "loyalty" / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if not DEBUG
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}

# The largest request body accepted (413 problem+json beyond): a batch of 1,000 orders fits.
DATA_UPLOAD_MAX_MEMORY_SIZE = int(env("MAX_BODY_BYTES", str(8 * 1024 * 1024)))

EMAIL_BACKEND = env("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", "rewards@localhost")
EMAIL_HOST = env("EMAIL_HOST", "localhost")
EMAIL_PORT = int(env("EMAIL_PORT", "25"))
EMAIL_HOST_USER = env("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)

# --- Member portal (/portal/) -------------------------------------------------------------------
# Members sign in with their e-mail within one program: PORTAL_PROGRAM (default `demo`, or the only
# program there is). Links in e-mails start with PORTAL_BASE_URL.
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",  # staff (admin), by username
    "loyalty.portal.auth.MemberEmailBackend",  # members (portal), by e-mail
]
PORTAL_PROGRAM = env("PORTAL_PROGRAM", "demo")
PORTAL_BASE_URL = env("PORTAL_BASE_URL", "http://127.0.0.1:8000")
# Sign-in attempts that fail, per e-mail and per client address, before a pause (429).
PORTAL_LOGIN_FAILURES = int(env("PORTAL_LOGIN_FAILURES", "5"))
PORTAL_LOGIN_FAILURES_PER_ADDRESS = int(env("PORTAL_LOGIN_FAILURES_PER_ADDRESS", "20"))
PORTAL_LOGIN_PAUSE_SECONDS = int(env("PORTAL_LOGIN_PAUSE_SECONDS", "900"))
PORTAL_PASSWORD_EMAILS_PER_ADDRESS = int(env("PORTAL_PASSWORD_EMAILS_PER_ADDRESS", "5"))
LOGIN_URL = "portal:login"
PASSWORD_RESET_TIMEOUT = 3 * 24 * 3600  # the invitation link: three days

# --- Money ------------------------------------------------------------------------------------
# The whitelist of money currencies anything may be priced in; a program accepts a subset of them
# (its FX table). Point currencies such as PTS are ledger assets, not money.
CURRENCIES = (
    "USD", "EUR", "GBP", "CAD", "PLN", "JPY", "CHF", "SEK", "NOK", "DKK", "CZK", "HUF", "RON",
    "AUD", "NZD", "MXN", "BRL", "CNY", "INR", "SGD", "HKD", "KRW", "ZAR", "AED", "TRY",
)  # fmt: skip
DEFAULT_CURRENCY = "USD"

# --- REST API ---------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "loyalty.api.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["loyalty.api.permissions.HasProgramScope"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["loyalty.api.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "loyalty.api.errors.problem_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "loyalty.api.pagination.NewestFirstCursorPagination",
    "PAGE_SIZE": 50,
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_THROTTLE_CLASSES": [
        "loyalty.api.throttles.WritesByKeyThrottle",
        "loyalty.api.throttles.WritesByAddressThrottle",
    ],
    "NUM_PROXIES": int(env("NUM_PROXIES", "0")) or None,  # trusted proxies in front: X-Forwarded-For
    "DEFAULT_THROTTLE_RATES": {
        "writes_per_key": env("THROTTLE_WRITES_PER_KEY", "12000/min"),
        "writes_per_address": env("THROTTLE_WRITES_PER_ADDRESS", "12000/min"),
        "referral_lookup": env("THROTTLE_REFERRAL_LOOKUP", "30/min"),
        "referral_wrong_code": env("THROTTLE_REFERRAL_WRONG_CODE", "10/hour"),
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Loyalty API",
    "DESCRIPTION": "The contract an e-commerce checkout codes against. See README.md.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "loyalty.api.schema.add_common_problems",
    ],
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}, "celery.app.trace": {"level": "WARNING"}},
}

# --- Loyalty engine knobs ---------------------------------------------------------------------
LOYALTY = {
    # System accounts (issued, redeemed, ...) are split into shards picked by member id, so
    # concurrent postings for different members do not queue on one hot balance row.
    "SYSTEM_ACCOUNT_SHARDS": int(env("LOYALTY_SYSTEM_ACCOUNT_SHARDS", "16")),
    "IDEMPOTENCY_KEY_TTL_HOURS": int(env("LOYALTY_IDEMPOTENCY_TTL_HOURS", "48")),
    "DEFAULT_HOLD_TTL_SECONDS": 900,
    "MAX_HOLD_TTL_SECONDS": 7 * 24 * 3600,
    # Members settled per committed transaction by the maturation, expiry and hold jobs.
    "SETTLE_BATCH": int(env("LOYALTY_SETTLE_BATCH", "200")),
}

if not DEBUG:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = int(env("SECURE_HSTS_SECONDS", str(365 * 24 * 3600)))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_CONTENT_TYPE_NOSNIFF = True
    SECURE_REFERRER_POLICY = "same-origin"
    X_FRAME_OPTIONS = "DENY"
