"""Settings, every knob read from the environment.

With nothing set, the product runs embedded: a SQLite file under ``var/`` and
Celery tasks executed in-process. Production sets ``DATABASE_URL``,
``REDIS_URL``, ``SECRET_KEY`` and ``DEBUG=false``. `.env.example` documents
every variable read here.
"""

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env(name, default=None):
    value = os.environ.get(name)
    return default if value is None or value == "" else value


def env_bool(name, default=False):
    value = env(name)
    if value is None:
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (true/false), got {value!r}")


def env_int(name, default):
    value = env(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from exc


def env_float(name, default):
    value = env(name)
    if value is None:
        return default
    try:
        return float(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a number, got {value!r}") from exc


def env_list(name, default=""):
    return [item.strip() for item in env(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY is required when DEBUG is off")
    SECRET_KEY = "insecure-development-key-do-not-use-in-production"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
if env_bool("BEHIND_TLS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "integrations",
    "customers",
    "interactions",
    "metrics",
    "standards",
]

MIDDLEWARE = [
    "crm.middleware.BodySizeLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # After authentication: keys are scoped to the caller.
    "crm.idempotency.IdempotencyKeyMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "crm.urls"
WSGI_APPLICATION = "crm.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "crm" / "templates"],
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

# --- Storage -----------------------------------------------------------------

DATA_DIR = Path(env("DATA_DIR", str(BASE_DIR / "var")))
DATABASE_URL = env("DATABASE_URL")
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60))}
    if DATABASES["default"]["ENGINE"].endswith("postgresql"):
        # Parameters travel apart from the SQL instead of being quoted into it by Python: a bulk
        # batch's IN lists and arrays cost the client next to nothing.
        DATABASES["default"].setdefault("OPTIONS", {})["server_side_binding"] = True
else:
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": DATA_DIR / "crm.sqlite3",
            # Several threads (the dev server, in-process tasks) write to one file.
            "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env("REDIS_URL")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Celery --------------------------------------------------------------------

CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = None
# Without a broker the product runs its tasks in-process, right after the
# transaction that queued them commits.
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_TASK_ACKS_LATE = True
# A task whose worker dies mid-way goes back to the queue, not to the bin.
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600)}
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
# A heartbeat through beat, broker and worker: the worker logs "pong" every BEAT_HEARTBEAT_SECONDS.
CELERY_BEAT_SCHEDULE = {"crm.heartbeat": {"task": "crm.ping", "schedule": env_float("BEAT_HEARTBEAT_SECONDS", 300.0)}}

# --- Identity, language, time ------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LANGUAGE_CODE = env("LANGUAGE_CODE", "en")
LANGUAGES = [("en", "English"), ("fa", "فارسی"), ("ar", "العربية")]
TIME_ZONE = env("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
}

# --- API -------------------------------------------------------------------------

MAX_BODY_BYTES = env_int("MAX_BODY_BYTES", 10 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_BODY_BYTES
DATA_UPLOAD_MAX_NUMBER_FIELDS = 10_000

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "crm.api.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["crm.api.HasScope"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": ["crm.api.StorableJSONParser"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "crm.api.PageNumberPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "crm.errors.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Customer experience CRM API",
    "DESCRIPTION": "One customer across every channel: interactions in, timelines and metrics out.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Served from this server, not a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Product thresholds ------------------------------------------------------------

DEFAULT_PHONE_REGION = env("DEFAULT_PHONE_REGION", "US")
AUTO_MERGE = env_bool("AUTO_MERGE", True)
CONVERSATION_CONTINUE_HOURS = env_int("CONVERSATION_CONTINUE_HOURS", 72)
BULK_MAX_ITEMS = env_int("BULK_MAX_ITEMS", 1000)
TIMELINE_PAGE_SIZE = env_int("TIMELINE_PAGE_SIZE", 50)
TIMELINE_MAX_PAGE_SIZE = env_int("TIMELINE_MAX_PAGE_SIZE", 200)

# --- Channels: inbound provider webhooks ------------------------------------------

# Each provider's secret; a provider left unset answers 503 rather than accept unsigned input.
TWILIO_AUTH_TOKEN = env("TWILIO_AUTH_TOKEN", "")
# The public https://host[:port] Twilio calls (the app runs behind a proxy); signatures cover the full URL.
TWILIO_PUBLIC_BASE_URL = env("TWILIO_PUBLIC_BASE_URL", "")
META_APP_SECRET = env("META_APP_SECRET", "")
META_VERIFY_TOKEN = env("META_VERIFY_TOKEN", "")
MAILGUN_SIGNING_KEY = env("MAILGUN_SIGNING_KEY", "")
MAILGUN_REPLAY_WINDOW_SECONDS = env_int("MAILGUN_REPLAY_WINDOW_SECONDS", 300)
SENDGRID_INBOUND_SECRET = env("SENDGRID_INBOUND_SECRET", "")
EMAIL_INBOUND_SECRET = env("EMAIL_INBOUND_SECRET", "")
CHAT_WIDGET_SECRET = env("CHAT_WIDGET_SECRET", "")
INBOUND_RETENTION_DAYS = env_int("INBOUND_RETENTION_DAYS", 30)
INBOUND_PROCESS_MAX_RETRIES = env_int("INBOUND_PROCESS_MAX_RETRIES", 8)
INBOUND_RETRY_BACKOFF_SECONDS = env_int("INBOUND_RETRY_BACKOFF_SECONDS", 5)
INBOUND_RETRY_BACKOFF_MAX_SECONDS = env_int("INBOUND_RETRY_BACKOFF_MAX_SECONDS", 3600)
INBOUND_REQUEUE_AFTER_SECONDS = env_int("INBOUND_REQUEUE_AFTER_SECONDS", 600)
# Test-only: seconds a worker sleeps before processing an event (the worker-kill test); keep 0.
INBOUND_PROCESS_DELAY_SECONDS = env_float("INBOUND_PROCESS_DELAY_SECONDS", 0)
CELERY_BEAT_SCHEDULE["interactions-inbound-purge"] = {
    "task": "interactions.inbound_events_purge",
    "schedule": 3600.0,
}
CELERY_BEAT_SCHEDULE["interactions-inbound-requeue-pending"] = {
    "task": "interactions.inbound_events_requeue_pending",
    "schedule": 300.0,
}

# --- Outbound webhooks and idempotency ----------------------------------------------

# Seconds to wait for a webhook receiver to connect and to answer.
WEBHOOK_TIMEOUT_SECONDS = env_float("WEBHOOK_TIMEOUT_SECONDS", 10.0)
# Attempts per delivery before it is marked dead (a redelivery starts a new count).
WEBHOOK_MAX_ATTEMPTS = env_int("WEBHOOK_MAX_ATTEMPTS", 8)
# Backoff: base * 2^(attempt-1) seconds, at most the cap (also the cap on a receiver's Retry-After).
WEBHOOK_RETRY_BASE_SECONDS = env_float("WEBHOOK_RETRY_BASE_SECONDS", 60.0)
WEBHOOK_RETRY_MAX_SECONDS = env_float("WEBHOOK_RETRY_MAX_SECONDS", 3600.0)
# A pending delivery this overdue is re-queued by the sweeper (its task was lost).
WEBHOOK_REQUEUE_GRACE_SECONDS = env_int("WEBHOOK_REQUEUE_GRACE_SECONDS", 60)
# After a secret rotation the old secret keeps signing (second signature) for this long.
WEBHOOK_SECRET_ROTATION_HOURS = env_int("WEBHOOK_SECRET_ROTATION_HOURS", 24)
# Only for development and tests: allow webhooks to loopback, private and link-local addresses.
WEBHOOK_ALLOW_PRIVATE_TARGETS = env_bool("WEBHOOK_ALLOW_PRIVATE_TARGETS", False)
# Stored Idempotency-Key responses are kept this long.
IDEMPOTENCY_KEY_TTL_HOURS = env_int("IDEMPOTENCY_KEY_TTL_HOURS", 24)
# A request holding a key this long without finishing is taken to have died; the key is free again.
IDEMPOTENCY_IN_FLIGHT_SECONDS = env_int("IDEMPOTENCY_IN_FLIGHT_SECONDS", 300)
CELERY_BEAT_SCHEDULE["integrations.webhook_deliveries_requeue_due"] = {
    "task": "integrations.webhook_deliveries_requeue_due",
    "schedule": 60.0,
}
CELERY_BEAT_SCHEDULE["integrations.idempotency_keys_purge"] = {
    "task": "integrations.idempotency_keys_purge",
    "schedule": 3600.0,
}

# --- Metrics ---------------------------------------------------------------------------

# Signal thresholds (PRODUCT.md "Metric definitions").
METRICS_MISERY_SENTIMENT = env_float("METRICS_MISERY_SENTIMENT", -0.3)
METRICS_MAGIC_SENTIMENT = env_float("METRICS_MAGIC_SENTIMENT", 0.3)
METRICS_MISERY_INTENTS = env_list("METRICS_MISERY_INTENTS", "complaint")
METRICS_VISIT_GAP_HOURS = env_int("METRICS_VISIT_GAP_HOURS", 24)
METRICS_CAME_BACK_DAYS = env_int("METRICS_CAME_BACK_DAYS", 90)
METRICS_CHURN_DAYS = env_int("METRICS_CHURN_DAYS", 90)
METRICS_AT_RISK_FACTOR = env_float("METRICS_AT_RISK_FACTOR", 2.0)
# Dotted path of the sentiment analyser for inbound text that arrives unscored.
SENTIMENT_ANALYZER = env("SENTIMENT_ANALYZER", "metrics.analysers.VaderEnglish")
# KPI rounding: decimals, and mode half_up | half_even | floor (floor truncates toward -inf).
KPI_DECIMALS = env_int("KPI_DECIMALS", 2)
KPI_ROUNDING = env("KPI_ROUNDING", "half_up")
# Customers recomputed per transaction by the minute task, and per chunk by the full recompute.
METRICS_BATCH_SIZE = env_int("METRICS_BATCH_SIZE", 1000)
# Customers per transaction of the nightly full recompute (it holds one lock for the whole batch).
METRICS_FULL_BATCH_SIZE = env_int("METRICS_FULL_BATCH_SIZE", 5000)
# Processes that share the nightly full recompute on PostgreSQL (each streams a range of customers and opens
# two connections); default: one per core, at most 4.
METRICS_FULL_PROCESSES = env_int("METRICS_FULL_PROCESSES", min(4, os.cpu_count() or 1))
# journey.* events are only sent for journeys that opened/closed this recently (a first full recompute
# of old history does not flood integrations).
METRICS_EVENT_MAX_AGE_HOURS = env_int("METRICS_EVENT_MAX_AGE_HOURS", 48)
# Beat: seconds between dirty-customer recomputes (also sizes the window in which conversation
# status changes are noticed: 3 intervals, at least 10 minutes).
METRICS_DIRTY_INTERVAL_SECONDS = env_float("METRICS_DIRTY_INTERVAL_SECONDS", 60.0)
from celery.schedules import crontab  # noqa: E402

CELERY_BEAT_SCHEDULE["metrics-dirty-customers"] = {
    "task": "metrics.dirty_customers_recompute",
    "schedule": METRICS_DIRTY_INTERVAL_SECONDS,
}
CELERY_BEAT_SCHEDULE["metrics-nightly-full"] = {
    "task": "metrics.all_recompute",
    "schedule": crontab(hour=env_int("METRICS_NIGHTLY_HOUR", 3), minute=0),
}

# --- Service standards ---------------------------------------------------------------

# A running clock past this fraction of its target sends standard.breach_warning.
STANDARDS_WARNING_FRACTION = env_float("STANDARDS_WARNING_FRACTION", 0.8)
# How often beat re-judges open conversations against the standards, in seconds.
STANDARDS_WATCH_INTERVAL_SECONDS = env_float("STANDARDS_WATCH_INTERVAL_SECONDS", 60)
# Conversations active within this many hours are re-judged too (a reply just closed their clock).
STANDARDS_WATCH_LOOKBACK_HOURS = env_int("STANDARDS_WATCH_LOOKBACK_HOURS", 24)
STANDARDS_WATCH_BATCH = env_int("STANDARDS_WATCH_BATCH", 500)
# Members of these groups are the customer-facing staff who must acknowledge every active standard.
STANDARDS_ACK_GROUPS = env_list("STANDARDS_ACK_GROUPS", "Agents,CX leads")
# Timeline items per page on the agent's customer page (older ones load on scroll).
AGENT_PAGE_TIMELINE_SIZE = env_int("AGENT_PAGE_TIMELINE_SIZE", 25)
CELERY_BEAT_SCHEDULE["standards.compliance_watch"] = {
    "task": "standards.compliance_watch",
    "schedule": STANDARDS_WATCH_INTERVAL_SECONDS,
}
