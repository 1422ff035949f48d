"""Django settings. Every value comes from ``core.env`` (django-environ).

Embedded defaults need no server: SQLite under ``var/`` and kombu's filesystem
broker. ``DATABASE_URL`` and ``REDIS_URL`` switch to PostgreSQL and Redis.
"""

from __future__ import annotations

import ssl
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

from csp.constants import NONE, SELF, UNSAFE_INLINE
from django.core.exceptions import ImproperlyConfigured
from kombu import Queue

from core.env import (
    BASE_DIR,
    VAR_DIR,
    env,
    required_secret,
    required_secret_list,
)

DEBUG = env.bool("DEBUG", default=False)

SECRET_KEY = required_secret(
    "SECRET_KEY", debug=DEBUG, dev_default="dev-only-insecure-secret-key-change-me"
)
# Fernet keys for the encrypted SMTP passwords: a comma-separated list, newest first.
# The first key encrypts; every key decrypts, so old keys can be rotated out with
# ``manage.py rotate_fernet_keys``.
FERNET_KEYS = required_secret_list(
    "FERNET_KEYS", debug=DEBUG, dev_default="dev-only-insecure-fernet-key"
)

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# Base address of the console, used in links inside emails (password setup/reset).
PUBLIC_URL = env.str("PUBLIC_URL", default="http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "core.apps.CoreConfig",
    "tenants",
    "audit",
    "auditlog",
    "smtp",
    # Above tenants and smtp: the flows that span both.
    "accounts",
]

MIDDLEWARE = [
    # Probes first: they come by IP over plain HTTP (no host check, no redirect).
    "opsconsole.health.HealthCheckMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Static files from the app server itself (gunicorn), compressed and cached.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    # Django's, with the user read in the same query as the session.
    "tenants.sessions.SessionUserMiddleware",
    # Django's, making the message storage only for a request that uses it.
    "opsconsole.messages.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # django-csp's, building the policy once (opsconsole/csp.py).
    "opsconsole.csp.CSPMiddleware",
    # A view's 404 is the app's page, with DEBUG too.
    "opsconsole.views.NotFoundPageMiddleware",
    # Last: turns a login lockout into the lockout answer.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "opsconsole.urls"
WSGI_APPLICATION = "opsconsole.wsgi.application"
ASGI_APPLICATION = "opsconsole.asgi.application"

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
                "tenants.context_processors.console",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    VAR_DIR.mkdir(exist_ok=True)
    # WAL and immediate transactions let the web server and the worker process
    # share the file without "database is locked" errors. The test database is a
    # file too, so that a real worker process can see it.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-db.sqlite3")}
else:
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        # Django's backend, checking a reused connection without a round trip
        # when its socket shows the server has not hung up (core/postgresql).
        DATABASES["default"]["ENGINE"] = "core.postgresql"
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    # Parameters bound by the server, and the statements run on every request
    # or email whose plan does not depend on their values (the session with its
    # user, the configuration rows, an attempt's INSERT:
    # core.postgresql.prepared_in_server)
    # prepared in it: parsed and planned once per connection, not on every run,
    # which was most of PostgreSQL's work per request. False: neither (Django's
    # default), for a pooler in transaction mode that does not keep prepared
    # statements (PgBouncer before 1.21, or its max_prepared_statements at 0).
    if (
        env.bool("DATABASE_PREPARED_STATEMENTS", default=True)
        and DATABASES["default"]["ENGINE"] == "core.postgresql"
    ):
        DATABASES["default"].setdefault("OPTIONS", {}).update(
            server_side_binding=True,
            # Never of psycopg's own accord: only what the code asks for.
            prepare_threshold=2**31 - 1,
        )
    # A reused connection is checked before a request uses it.
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = env.bool(
        "CONN_HEALTH_CHECKS", default=True
    )
    if DATABASES["default"]["ENGINE"] == "core.postgresql":
        # How long opening a connection may take, the server's first answers
        # included. Without it, a database host that drops packets holds a
        # request, a probe or a task for the system's TCP retries (over two
        # minutes on Linux). A connect_timeout in DATABASE_URL wins.
        DATABASE_CONNECT_TIMEOUT = env.int("DATABASE_CONNECT_TIMEOUT", default=10)
        # A connection whose server vanished without a word (a partition, a
        # host that died) fails the statement waiting on it within about twice
        # DATABASE_KEEPALIVE_SECONDS: the client's TCP keepalives go unanswered.
        # Without them such a statement waits forever. A server that is only
        # slow answers the probes and is waited for.
        DATABASE_KEEPALIVE_SECONDS = env.int("DATABASE_KEEPALIVE_SECONDS", default=30)
        for name, value in (
            ("DATABASE_CONNECT_TIMEOUT", DATABASE_CONNECT_TIMEOUT),
            ("DATABASE_KEEPALIVE_SECONDS", DATABASE_KEEPALIVE_SECONDS),
        ):
            if value < 1:
                raise ImproperlyConfigured(
                    f"{name} ({value}) must be a whole number of seconds, 1 or "
                    "more (e.g. 10): 0 would wait for an unreachable database "
                    "forever."
                )
        for option, value in (
            ("connect_timeout", DATABASE_CONNECT_TIMEOUT),
            ("keepalives", 1),
            ("keepalives_idle", DATABASE_KEEPALIVE_SECONDS),
            ("keepalives_interval", max(1, DATABASE_KEEPALIVE_SECONDS // 3)),
            ("keepalives_count", 3),
            # Data sent and not acknowledged (the host gone mid-statement).
            ("tcp_user_timeout", 2000 * DATABASE_KEEPALIVE_SECONDS),
        ):
            DATABASES["default"].setdefault("OPTIONS", {}).setdefault(option, value)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Users, sessions, login ---------------------------------------------------
AUTH_USER_MODEL = "tenants.User"
AUTHENTICATION_BACKENDS = [
    # First: refuses logins of a locked-out username and address.
    "axes.backends.AxesStandaloneBackend",
    "tenants.backends.EmailBackend",
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# The documented API authenticates with ``-b 'rsid=<SESSION_ID>'``.
SESSION_COOKIE_NAME = "rsid"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=8 * 3600)
# In the database, each read with its user in one query (tenants/sessions.py).
SESSION_ENGINE = "tenants.sessions"

_VALIDATORS = "django.contrib.auth.password_validation"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": f"{_VALIDATORS}.UserAttributeSimilarityValidator"},
    {
        "NAME": f"{_VALIDATORS}.MinimumLengthValidator",
        "OPTIONS": {"min_length": 10},
    },
    {"NAME": f"{_VALIDATORS}.CommonPasswordValidator"},
    {"NAME": f"{_VALIDATORS}.NumericPasswordValidator"},
]
# One-time links (password setup and reset) expire after this many seconds.
PASSWORD_RESET_TIMEOUT = env.int("PASSWORD_RESET_TIMEOUT", default=3 * 24 * 3600)
# "Forgot your password?": reset requests per email address and per client IP
# address within a window of this many minutes. Requests over a limit get the
# same answer as any other, and no email.
PASSWORD_RESET_LIMIT_PER_ADDRESS = env.int(
    "PASSWORD_RESET_LIMIT_PER_ADDRESS", default=3
)
PASSWORD_RESET_LIMIT_PER_CLIENT = env.int("PASSWORD_RESET_LIMIT_PER_CLIENT", default=20)
PASSWORD_RESET_LIMIT_MINUTES = env.int("PASSWORD_RESET_LIMIT_MINUTES", default=15)

# --- HTTP security ------------------------------------------------------------
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Production defaults (DEBUG off): HTTPS only, HSTS for a year.
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool(
    "SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG
)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
BEHIND_TLS_PROXY = env.bool("BEHIND_TLS_PROXY", default=False)
if BEHIND_TLS_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Content-Security-Policy: scripts only from this site, never inline; styles may
# be inline (the admin and the API docs page use style attributes).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF, UNSAFE_INLINE],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

# Login lockout (django-axes): too many failures for one email address (in any
# case) from one IP address lock that pair out for a while; a success resets
# the count.
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_USERNAME_FORM_FIELD = "username"
# Count failures per normalised email (lower case), as the login matches it.
AXES_USERNAME_CALLABLE = "tenants.lockout.lockout_username"
AXES_LOCKOUT_CALLABLE = "tenants.lockout.lockout_response"
if BEHIND_TLS_PROXY:
    AXES_IPWARE_PROXY_COUNT = 1
    AXES_IPWARE_META_PRECEDENCE_ORDER = ("HTTP_X_FORWARDED_FOR", "REMOTE_ADDR")

# --- Internationalisation -----------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static files -------------------------------------------------------------
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
# Production serves files collected by `collectstatic` under hashed names, cached
# for a year. Without it (development, tests), files come from the app folders.
STATIC_MANIFEST = env.bool("STATIC_MANIFEST", default=not DEBUG)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if STATIC_MANIFEST
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = not STATIC_MANIFEST
if not STATIC_MANIFEST:
    # WhiteNoise also serves STATIC_ROOT and warns on every request if it is missing.
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)

# --- Email --------------------------------------------------------------------
# The From address used when a configuration names no sender and its username is
# not an address.
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="no-reply@opsconsole.local")
# Every SMTP socket operation times out after this many seconds.
SMTP_TIMEOUT = env.float("SMTP_TIMEOUT", default=10.0)
# Networks a partner or organization configuration may reach although they are
# private, loopback, link-local... (comma-separated CIDRs). Empty: none.
SMTP_ALLOWED_NETWORKS = env.list("SMTP_ALLOWED_NETWORKS", default=[])
# Extra CA certificates (PEM file) trusted for SMTP servers, e.g. a private CA.
SMTP_CA_BUNDLE = env.str("SMTP_CA_BUNDLE", default="")
# OAuth2 (XOAUTH2) token requests. CA certificates (PEM file) trusted for token
# endpoints; empty: those of SMTP_CA_BUNDLE and the system's.
SMTP_OAUTH2_CA_BUNDLE = env.str("SMTP_OAUTH2_CA_BUNDLE", default="")
# Allow http:// token URLs for custom providers (a relay's own token service on
# a trusted network); off: token URLs must be https://.
SMTP_OAUTH2_ALLOW_HTTP = env.bool("SMTP_OAUTH2_ALLOW_HTTP", default=False)
# Where Microsoft's and Google's tokens are asked for (other clouds, such as
# login.microsoftonline.us, have other ones).
SMTP_OAUTH2_MICROSOFT_AUTHORITY = env.str(
    "SMTP_OAUTH2_MICROSOFT_AUTHORITY", default="https://login.microsoftonline.com"
)
SMTP_OAUTH2_GOOGLE_TOKEN_URL = env.str(
    "SMTP_OAUTH2_GOOGLE_TOKEN_URL", default="https://oauth2.googleapis.com/token"
)
# Name given in EHLO and in Message-IDs; default: the host of PUBLIC_URL. An IP
# address goes as an address literal ([127.0.0.1], [IPv6:::1]).
SMTP_EHLO_NAME = env.str("SMTP_EHLO_NAME", default="")
# A worker owns an email it claimed for this long; after that the sweeper hands
# it to another worker (a worker that died mid-send).
SMTP_LEASE_SECONDS = env.int("SMTP_LEASE_SECONDS", default=300)
# The longest one SMTP session may take, whatever the server does (a server that
# drips one byte at a time never trips SMTP_TIMEOUT); a reused session gets this
# much for each message.
SMTP_SESSION_DEADLINE = env.float("SMTP_SESSION_DEADLINE", default=60.0)
# Time limits of the tasks that speak SMTP, inside the lease so that the sweeper
# never hands an email to a second worker while the first is still sending it.
# A batch starts no new email after SMTP_BATCH_SECONDS, leaving room for one
# email on a reused and then a fresh session, and for recording the results.
SMTP_TASK_TIME_LIMIT = SMTP_LEASE_SECONDS * 0.9
SMTP_TASK_SOFT_TIME_LIMIT = SMTP_LEASE_SECONDS * 0.8
SMTP_BATCH_SECONDS = (
    SMTP_TASK_SOFT_TIME_LIMIT - 2 * SMTP_SESSION_DEADLINE - SMTP_LEASE_SECONDS * 0.05
)
if not 0 < SMTP_SESSION_DEADLINE <= SMTP_LEASE_SECONDS / 4:
    raise ImproperlyConfigured(
        f"SMTP_SESSION_DEADLINE ({SMTP_SESSION_DEADLINE:g} s) must be positive and "
        f"at most a quarter of SMTP_LEASE_SECONDS ({SMTP_LEASE_SECONDS} s), so that "
        "a session always ends inside its email's lease."
    )
# First retry delay; each retry doubles it (with jitter), up to 15 minutes.
SMTP_RETRY_BASE_SECONDS = env.float("SMTP_RETRY_BASE_SECONDS", default=30.0)
# A greylisting server (450/451 saying "greylist" or "try again later") is tried
# again no sooner than this.
SMTP_GREYLIST_SECONDS = env.float("SMTP_GREYLIST_SECONDS", default=60.0)
# An email whose worker stopped while sending it (killed, out of memory) is handed
# to a new worker this many times without a recorded attempt; then it fails.
SMTP_MAX_REHANDS = env.int("SMTP_MAX_REHANDS", default=5)
# How often each worker looks for emails left queued or stuck past their lease.
SMTP_SWEEP_INTERVAL = env.float("SMTP_SWEEP_INTERVAL", default=15.0)
# A queued email whose task has not run after this long is handed out again.
SMTP_REQUEUE_AFTER_SECONDS = env.int("SMTP_REQUEUE_AFTER_SECONDS", default=120)
# How many system emails of one tenant a worker claims and sends over one
# connection at a time.
SMTP_BATCH_SIZE = env.int("SMTP_BATCH_SIZE", default=50)
# The bulk lane's fairness: a tenant's alerts are sent in turns of one batch,
# each queued behind every other tenant's; a tenant holds at most this many
# places in the queue at once (so at most this many of its batches run at once).
SMTP_TURNS_PER_TENANT = env.int("SMTP_TURNS_PER_TENANT", default=2)
# Delivery limits of a configuration that leaves them empty (the controller's
# too, unless FW_EVENT_SMTP_SERVER_MESSAGES_PER_MINUTE / _MAX_CONNECTIONS set
# them): messages per minute (0: no limit) and concurrent connections (0: no
# limit), shared by every worker.
SMTP_DEFAULT_MESSAGES_PER_MINUTE = env.int(
    "SMTP_DEFAULT_MESSAGES_PER_MINUTE", default=0
)
SMTP_DEFAULT_MAX_CONNECTIONS = env.int("SMTP_DEFAULT_MAX_CONNECTIONS", default=4)
# Messages per minute count the messages a server received in any window of this
# many seconds (60: per minute; tests shorten it).
SMTP_RATE_WINDOW_SECONDS = env.float("SMTP_RATE_WINDOW_SECONDS", default=60.0)
# A connection slot of a worker that died is free again after this long (a
# worker renews its slots while it uses them).
SMTP_CONNECTION_LEASE_SECONDS = env.float(
    "SMTP_CONNECTION_LEASE_SECONDS", default=2 * SMTP_SESSION_DEADLINE + 10
)
# A throttling reply (421, 432 4.3.2, "rate limit"...) pauses its configuration
# for every worker this long, doubled for each further throttling reply right
# after a pause, up to SMTP_THROTTLE_MAX_PAUSE_SECONDS; the email waits without
# using a retry.
SMTP_THROTTLE_PAUSE_SECONDS = env.float("SMTP_THROTTLE_PAUSE_SECONDS", default=60.0)
SMTP_THROTTLE_MAX_PAUSE_SECONDS = env.float(
    "SMTP_THROTTLE_MAX_PAUSE_SECONDS", default=900.0
)
# An email still refused by a throttling server this long after it was queued
# fails instead of waiting again.
SMTP_MAX_DEFER_SECONDS = env.int("SMTP_MAX_DEFER_SECONDS", default=86400)
for _name, _least in (
    ("SMTP_RATE_WINDOW_SECONDS", 0),
    ("SMTP_THROTTLE_PAUSE_SECONDS", 0),
    ("SMTP_MAX_DEFER_SECONDS", 0),
):
    if not globals()[_name] > _least:
        raise ImproperlyConfigured(
            f"{_name} ({globals()[_name]:g}) must be a positive number of seconds."
        )
if SMTP_THROTTLE_MAX_PAUSE_SECONDS < SMTP_THROTTLE_PAUSE_SECONDS:
    raise ImproperlyConfigured(
        f"SMTP_THROTTLE_MAX_PAUSE_SECONDS ({SMTP_THROTTLE_MAX_PAUSE_SECONDS:g} s) "
        f"must be at least SMTP_THROTTLE_PAUSE_SECONDS "
        f"({SMTP_THROTTLE_PAUSE_SECONDS:g} s)."
    )
if SMTP_CONNECTION_LEASE_SECONDS < 2 * SMTP_SESSION_DEADLINE:
    # A slot is renewed between messages: it must outlast a message on a reused
    # session and one more on a fresh session.
    raise ImproperlyConfigured(
        f"SMTP_CONNECTION_LEASE_SECONDS ({SMTP_CONNECTION_LEASE_SECONDS:g} s) must "
        f"be at least twice SMTP_SESSION_DEADLINE ({SMTP_SESSION_DEADLINE:g} s), so "
        "that a session in use never loses its connection slot."
    )
# Send Test Email: tests per admin per minute.
SMTP_TEST_RATE_PER_MINUTE = env.int("SMTP_TEST_RATE_PER_MINUTE", default=10)
# Tests through a configuration the tenant does not own (an organization using
# its partner's or the controller's): per tenant per minute, all admins together.
SMTP_TEST_RATE_PER_TENANT_PER_MINUTE = env.int(
    "SMTP_TEST_RATE_PER_TENANT_PER_MINUTE", default=20
)

# --- Celery -------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        # Above the longest task, so that a message is not redelivered while a
        # worker is still sending it.
        "visibility_timeout": 3600,
        # A publish to a broker that is down fails at once instead of blocking a
        # web request for seconds; the email waits in the outbox for the sweeper.
        "max_retries": 0,
    }
    if urlsplit(REDIS_URL).scheme in ("redis", "rediss"):
        # kombu's Redis transport with a channel that survives losing Redis
        # while a task is in hand (opsconsole/broker.py).
        CELERY_BROKER_TRANSPORT = "core.broker:Transport"
    if urlsplit(REDIS_URL).scheme == "rediss":
        # Naming the transport skips kombu's default for rediss:// (TLS without
        # checking the certificate); check it unless the URL's ssl_cert_reqs
        # says otherwise.
        CELERY_BROKER_USE_SSL = {"ssl_cert_reqs": ssl.CERT_REQUIRED}
else:
    # A broker that needs no server: messages are files under var/broker, so a
    # real worker process still runs in development.
    _BROKER_DIR = VAR_DIR / "broker"
    for _folder in ("queue", "control"):
        (_BROKER_DIR / _folder).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://localhost/"
    # kombu's, with each message written aside and renamed into place, so that
    # a polling worker never reads one half-written (core/filebroker.py).
    CELERY_BROKER_TRANSPORT = "core.filebroker:Transport"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_BROKER_DIR / "queue"),
        "data_folder_out": str(_BROKER_DIR / "queue"),
        "control_folder": str(_BROKER_DIR / "control"),
        # Look for new messages ten times a second (the default is once).
        "polling_interval": 0.1,
    }
# Two lanes: emails a person waits for (tests, verifications, password setup and
# reset) go to the interactive queue, everything else (alerts, health checks) to
# the default one; workers serve both (docs/operations.md, "Lanes").
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_QUEUE", default="opsconsole")
CELERY_QUEUE_INTERACTIVE = env.str(
    "CELERY_QUEUE_INTERACTIVE", default=f"{CELERY_TASK_DEFAULT_QUEUE}.interactive"
)
# A worker started without -Q consumes both; -Q picks one (a dedicated process).
CELERY_TASK_QUEUES = [
    Queue(CELERY_QUEUE_INTERACTIVE, routing_key=CELERY_QUEUE_INTERACTIVE),
    Queue(CELERY_TASK_DEFAULT_QUEUE, routing_key=CELERY_TASK_DEFAULT_QUEUE),
]
CELERY_TASK_ANNOTATIONS = {
    name: {
        "soft_time_limit": SMTP_TASK_SOFT_TIME_LIMIT,
        "time_limit": SMTP_TASK_TIME_LIMIT,
    }
    for name in (
        "smtp.deliver_email",
        "smtp.deliver_emails",
        "smtp.deliver_turn",
        "smtp.health_check",
    )
}
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Celery's Django fix-up closes every database connection before and after each
# task unless this is set (a new PostgreSQL connection, a forked backend, for
# every task): tasks close theirs as Django does around a request instead, when
# broken or older than CONN_MAX_AGE (opsconsole/celery.py).
CELERY_DB_REUSE_MAX = 2**31
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = TIME_ZONE
# Each worker proves every this many seconds that it consumes from the broker
# (/readyz wants a heartbeat within three of them, a minute by default).
WORKER_HEARTBEAT_INTERVAL = env.float("WORKER_HEARTBEAT_INTERVAL", default=20.0)
# Beat re-verifies every saved SMTP configuration this often (seconds; 0: off).
SMTP_HEALTHCHECK_INTERVAL = env.int("SMTP_HEALTHCHECK_INTERVAL", default=1800)
CELERY_BEAT_SCHEDULE = (
    {
        "smtp-health-check": {
            "task": "smtp.health_check_all",
            "schedule": float(SMTP_HEALTHCHECK_INTERVAL),
        }
    }
    if SMTP_HEALTHCHECK_INTERVAL > 0
    else {}
)

# --- REST API -----------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["core.api.SessionCookieAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["core.api.AnyContentJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["core.api.JSONRenderer"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "core.api.RememberedContentNegotiation",
    "EXCEPTION_HANDLER": "core.api.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Ops Console SMTP API",
    "DESCRIPTION": (
        "SMTP configuration, verification and audit logs. Authenticate with the "
        "`rsid` session cookie from `POST /auth/v1/login/`."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI assets are served from this deployment, not from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # One name for the configuration levels, wherever an answer shows one.
    "ENUM_NAME_OVERRIDES": {"SmtpLevelEnum": "smtp.models.Level"},
}
# Largest JSON body the API accepts.
API_MAX_BODY_BYTES = 64 * 1024
# Long polls (?wait=N) hold a web server thread: the longest wait in seconds;
# how many one user may have at a time, across every web process (429 beyond);
# and how many threads one process spends on them (beyond, the answer comes at
# once). The last defaults to half of GUNICORN_THREADS.
API_WAIT_MAX_SECONDS = env.int("API_WAIT_MAX_SECONDS", default=10)
API_WAITS_PER_USER = env.int("API_WAITS_PER_USER", default=2)
API_WAITS_PER_PROCESS = env.int(
    "API_WAITS_PER_PROCESS", default=max(1, env.int("GUNICORN_THREADS", default=2) // 2)
)

# --- Account creation (documented) ------------------------------------------------
# ACCOUNT_CREATION_STRATEGY is read at use time (core.env).

# --- Audit log in Elasticsearch (documented; optional) ---------------------------
# With all three set, events are also indexed in Elasticsearch, and partner-level
# audit queries read from it. The database stays the source of truth.
ELASTIC_SEARCH_FQDN = env.str("ELASTIC_SEARCH_FQDN", default="")
ES_USER_NAME = env.str("ES_USER_NAME", default="")
ES_PASSWORD = env.str("ES_PASSWORD", default="")
ES_AUDIT_INDEX = env.str("ES_AUDIT_INDEX", default="opsconsole-audit")
ES_TIMEOUT = env.float("ES_TIMEOUT", default=5.0)
# CA certificate (PEM file) of the cluster, e.g. the one an operator generated.
ES_CA_CERTS = env.str("ES_CA_CERTS", default="")

# An audit window found to hold more than 10,000 events (the count's cap) is not
# counted again for this many seconds, per web process.
AUDIT_COUNT_CAPPED_SECONDS = env.float("AUDIT_COUNT_CAPPED_SECONDS", default=30.0)

# --- Logging ------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        # Django's own console handler would print every line a second time.
        "django": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}
