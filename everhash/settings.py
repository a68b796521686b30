"""everhash settings.

Every value that differs between a developer's laptop and production comes from
the environment (see .env.example for the full list). The defaults serve a
developer on a fresh machine: SQLite, media in ./var/media, email printed to the
console, DEBUG on. With DEBUG off the process refuses to start unless SECRET_KEY
and ALLOWED_HOSTS are set.
"""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from everhash.lib.clientip import parse_networks
from everhash.lib.env import env_bool, env_int, env_int_list, env_list, env_secret, env_secret_pairs, env_str
from everhash.lib.logs import FORMATTERS

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("EVERHASH_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DEBUG", True)

SECRET_KEY = env_secret("SECRET_KEY")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS")

if not DEBUG:
    missing = [name for name, value in (("SECRET_KEY", SECRET_KEY), ("ALLOWED_HOSTS", ALLOWED_HOSTS)) if not value]
    if missing:
        raise ImproperlyConfigured(
            f"DEBUG is off but {' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set. "
            "Set them in the environment (see .env.example), or set DEBUG=true for local development."
        )
else:
    # A development-only key: never used with DEBUG off (see above).
    SECRET_KEY = SECRET_KEY or "django-insecure-everhash-development-only"  # noqa: S105
    ALLOWED_HOSTS = ALLOWED_HOSTS or ["127.0.0.1", "localhost", "[::1]", "testserver"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "everhash",
    "users",
    "albums",
    "pictures",
    "tweets",
    "collages",
]

MIDDLEWARE = [
    # First: the client's address (EVERHASH_TRUSTED_PROXIES) for every limit and the access log.
    "everhash.lib.clientip.ClientAddressMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Production: static files before anything else touches the request (compressed, cached
    # forever under hashed names). With DEBUG on, runserver serves them from static/.
    *([] if DEBUG else ["whitenoise.middleware.WhiteNoiseMiddleware"]),
    "everhash.middleware.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "everhash.urls"
WSGI_APPLICATION = "everhash.wsgi.application"

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
                "everhash.context_processors.site",
                "tweets.context_processors.sources",
            ],
        },
    },
]

# Database: SQLite by default; MySQL/MariaDB (mysqlclient) when DB_NAME is set.
DB_NAME = env_str("DB_NAME")
if DB_NAME:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.mysql",
            "NAME": DB_NAME,
            "USER": env_str("DB_USER"),
            "PASSWORD": env_secret("DB_PASSWORD"),
            # A path starting with "/" is a Unix socket.
            "HOST": env_str("DB_HOST", "127.0.0.1"),
            "PORT": env_str("DB_PORT"),
            "CONN_MAX_AGE": env_int("DB_CONN_MAX_AGE", 60),
            "CONN_HEALTH_CHECKS": True,
            "OPTIONS": {
                # utf8mb4: emoji in titles, names and post text survive.
                "charset": "utf8mb4",
                "init_command": "SET sql_mode='STRICT_TRANS_TABLES'",
                "isolation_level": "read committed",
            },
            "TEST": {"CHARSET": "utf8mb4", "COLLATION": "utf8mb4_unicode_ci"},
        }
    }
else:
    SQLITE_PATH = Path(env_str("EVERHASH_SQLITE_PATH", str(VAR_DIR / "db.sqlite3")))
    SQLITE_PATH.parent.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": SQLITE_PATH,
            # Reuse connections: opening SQLite (and its PRAGMAs) on every request costs ~1 ms.
            "CONN_MAX_AGE": env_int("DB_CONN_MAX_AGE", 60),
            "OPTIONS": {
                # Concurrent writers (the web server and fetch_tweets) wait up to
                # 20 s for the lock instead of failing with "database is locked".
                "timeout": 20,
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "users.User"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "albums:dashboard"
LOGOUT_REDIRECT_URL = "albums:index"

# Sign-up with email activation (django-registration's two-step HMAC workflow).
REGISTRATION_OPEN = env_bool("REGISTRATION_OPEN", True)
ACCOUNT_ACTIVATION_DAYS = env_int("ACCOUNT_ACTIVATION_DAYS", 7)
PASSWORD_RESET_TIMEOUT = env_int("PASSWORD_RESET_TIMEOUT", 3 * 24 * 3600)
# The reverse proxies in front of the app (addresses or networks, e.g. 127.0.0.1 for nginx on the
# same host). Only a request whose peer is one of them has its X-Forwarded-For read; the client is
# the rightmost entry that is not itself a trusted proxy (everhash/lib/clientip.py). Empty: the
# socket's address is the client, and the header is ignored.
EVERHASH_TRUSTED_PROXIES = env_list("EVERHASH_TRUSTED_PROXIES")
parse_networks(tuple(EVERHASH_TRUSTED_PROXIES))  # a typo stops the process here, naming the entry
if "EVERHASH_NUM_PROXIES" in os.environ:  # the old setting, removed: say what replaced it
    raise ImproperlyConfigured(
        "EVERHASH_NUM_PROXIES is gone: list the proxies' addresses in EVERHASH_TRUSTED_PROXIES instead "
        "(127.0.0.1 for nginx on the same host)."
    )
# Attempts per window (seconds), per client address and per email (users/services.py).
EVERHASH_RATE_LIMITS = {
    "login": {
        "address": (env_int("EVERHASH_LOGIN_LIMIT_PER_ADDRESS", 20), 900),
        "email": (env_int("EVERHASH_LOGIN_LIMIT_PER_EMAIL", 10), 900),
    },
    "signup": {
        "address": (env_int("EVERHASH_SIGNUP_LIMIT_PER_ADDRESS", 10), 3600),
        "email": (env_int("EVERHASH_SIGNUP_LIMIT_PER_EMAIL", 3), 3600),
    },
    "password_reset": {
        "address": (env_int("EVERHASH_RESET_LIMIT_PER_ADDRESS", 10), 3600),
        "email": (env_int("EVERHASH_RESET_LIMIT_PER_EMAIL", 3), 3600),
    },
    # New albums per account per hour (form and API alike; staff too: it is a brake, not a quota).
    "album_create": {"user": (env_int("EVERHASH_NEW_ALBUMS_PER_HOUR", 10), 3600)},
}
# Quotas per account (docs/accounts.md). Each album costs paid X searches every fetch interval,
# so one account cannot hold more than this many (staff are exempt); follows are rows and emails.
EVERHASH_MAX_ALBUMS_PER_USER = env_int("EVERHASH_MAX_ALBUMS_PER_USER", 20)
EVERHASH_MAX_FOLLOWS_PER_USER = env_int("EVERHASH_MAX_FOLLOWS_PER_USER", 200)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))

# Media: a local folder by default; S3 (django-storages) when a bucket is set.
MEDIA_URL = env_str("MEDIA_URL", "/media/")
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))
AWS_STORAGE_BUCKET_NAME = env_str("EVERHASH_S3_BUCKET")
if AWS_STORAGE_BUCKET_NAME:
    AWS_S3_REGION_NAME = env_str("EVERHASH_S3_REGION") or None
    AWS_S3_ENDPOINT_URL = env_str("EVERHASH_S3_ENDPOINT_URL") or None
    AWS_ACCESS_KEY_ID = env_secret("EVERHASH_S3_ACCESS_KEY_ID") or None
    AWS_SECRET_ACCESS_KEY = env_secret("EVERHASH_S3_SECRET_ACCESS_KEY") or None
    AWS_S3_CUSTOM_DOMAIN = env_str("EVERHASH_S3_CDN_DOMAIN") or None
    AWS_QUERYSTRING_AUTH = not AWS_S3_CUSTOM_DOMAIN
    # Seconds a signed media URL stays valid; cached pages are renewed within half of it.
    AWS_QUERYSTRING_EXPIRE = env_int("EVERHASH_S3_URL_LIFETIME", 3600)
    if not 60 <= AWS_QUERYSTRING_EXPIRE <= 604800:  # SigV4 allows at most 7 days
        raise ImproperlyConfigured("EVERHASH_S3_URL_LIFETIME must be between 60 and 604800 seconds.")
    AWS_S3_SIGNATURE_VERSION = "s3v4"
    AWS_S3_ADDRESSING_STYLE = env_str("EVERHASH_S3_ADDRESSING_STYLE") or None  # "path" for some S3-compatible stores
    from botocore.config import Config as S3ClientConfig

    # Fail fast when the store is down (the fetch then fails the album, which retries with
    # back-off) instead of botocore's 60 s connect timeout and 5 attempts on every call.
    AWS_S3_CLIENT_CONFIG = S3ClientConfig(
        signature_version=AWS_S3_SIGNATURE_VERSION,
        s3={"addressing_style": AWS_S3_ADDRESSING_STYLE},
        connect_timeout=env_int("EVERHASH_S3_CONNECT_TIMEOUT", 5),
        read_timeout=env_int("EVERHASH_S3_READ_TIMEOUT", 30),
        retries={"mode": "standard", "max_attempts": env_int("EVERHASH_S3_MAX_ATTEMPTS", 3)},
    )
    AWS_DEFAULT_ACL = None  # new buckets reject ACLs; the bucket stays private
    AWS_S3_FILE_OVERWRITE = True  # keys are content-addressed: same key, same bytes
    # Every key we write is content-addressed (originals/, renditions/, collages/): immutable.
    # ContentType is ours, from the key's extension (pictures/storage.py), never guessed from bytes.
    AWS_S3_OBJECT_PARAMETERS = {"CacheControl": "public, max-age=31536000, immutable"}
    MEDIA_STORAGE_BACKEND = "storages.backends.s3.S3Storage"
else:
    MEDIA_STORAGE_BACKEND = "django.core.files.storage.FileSystemStorage"

STORAGES = {
    "default": {"BACKEND": MEDIA_STORAGE_BACKEND},
    # With DEBUG off, `manage.py collectstatic` writes hashed, compressed copies that whitenoise
    # serves with a one-year cache; with DEBUG on, files are served as they are from static/.
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
# Hashed names are cached by browsers for a year; unhashed ones for WHITENOISE_MAX_AGE seconds.
WHITENOISE_MAX_AGE = env_int("WHITENOISE_MAX_AGE", 3600)

# Email: printed to the console by default; SMTP when EMAIL_HOST is set.
EMAIL_HOST = env_str("EMAIL_HOST")
if EMAIL_HOST:
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_PORT = env_int("EMAIL_PORT", 587)
    EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
    EMAIL_HOST_PASSWORD = env_secret("EMAIL_HOST_PASSWORD")
    EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", EMAIL_PORT == 587)
    EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", EMAIL_PORT == 465)
    EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 20)
else:
    EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
    # For EMAIL_BACKEND=django.core.mail.backends.filebased.EmailBackend: one file per process.
    EMAIL_FILE_PATH = env_str("EMAIL_FILE_PATH", str(VAR_DIR / "mail"))
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "everhash <noreply@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# Production hardening (active when DEBUG is off).
if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
    if not SECURE_HSTS_PRELOAD:
        # Preloading is a one-way commitment for the whole domain: the operator opts in.
        SILENCED_SYSTEM_CHECKS = ["security.W021"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    # Load balancers probe /healthz over plain HTTP on the private network.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# Shared cache (API throttle counters, rendered pages, charts): Redis when set, so every web
# process and server sees the same counters; otherwise each process keeps its own in memory.
EVERHASH_CACHE_URL = env_str("EVERHASH_CACHE_URL")
if EVERHASH_CACHE_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": EVERHASH_CACHE_URL,
            "KEY_PREFIX": "everhash",
            "TIMEOUT": 300,
        }
    }

# Logs go to standard error: JSON lines in production (everhash/lib/logs.py), plain text with
# DEBUG on. EVERHASH_LOG_FORMAT=plain or json overrides.
EVERHASH_LOG_FORMAT = env_str("EVERHASH_LOG_FORMAT", "plain" if DEBUG else "json")
if EVERHASH_LOG_FORMAT not in {"plain", "json"}:
    raise ImproperlyConfigured(f"EVERHASH_LOG_FORMAT must be plain or json, not {EVERHASH_LOG_FORMAT!r}.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": FORMATTERS,
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": EVERHASH_LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "WARNING")},
    "loggers": {"everhash": {"level": env_str("LOG_LEVEL", "INFO"), "propagate": True}},
}

# The REST API (docs/api.md). Rates are "<number>/<second|minute|hour|day>" (DRF's format).
EVERHASH_API_ANON_RATE = env_str("EVERHASH_API_ANON_RATE", "120/min")
EVERHASH_API_USER_RATE = env_str("EVERHASH_API_USER_RATE", "600/min")
_PERIODS = {"s", "sec", "second", "m", "min", "minute", "h", "hour", "d", "day"}
for _name, _rate in (
    ("EVERHASH_API_ANON_RATE", EVERHASH_API_ANON_RATE),
    ("EVERHASH_API_USER_RATE", EVERHASH_API_USER_RATE),
):
    _count, _, _period = _rate.partition("/")
    if not (_count.isascii() and _count.isdigit() and int(_count) > 0 and _period in _PERIODS):
        raise ImproperlyConfigured(f"{_name} must look like 120/min (a number per s, min, hour or day), not {_rate!r}.")
# Seconds a rendered page of an album's pictures is reused for the same request (0: never). Who
# may see the album is checked on every request; a picture hidden in the admin leaves the API
# within this delay. Slideshows and embeds polling one album are served from memory.
EVERHASH_API_CACHE_SECONDS = env_int("EVERHASH_API_CACHE_SECONDS", 5)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # First, so anonymous callers of protected endpoints get 401 with WWW-Authenticate.
        "users.api.ApiTokenAuthentication",
        # The site's own pages (slideshow, infinite scroll); enforces CSRF on unsafe methods.
        "rest_framework.authentication.SessionAuthentication",
    ],
    # Writes need a signed-in caller; each view adds its owner/staff object checks.
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticatedOrReadOnly"],
    # JSON in, as the schema says: form-encoded bodies would turn "0" into False where a client
    # meant a string, and the schema could not describe them truthfully.
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_THROTTLE_CLASSES": ["users.api.AnonRateThrottle", "users.api.UserRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"anon": EVERHASH_API_ANON_RATE, "user": EVERHASH_API_USER_RATE},
    # No NUM_PROXIES: the throttles take the client address from everhash/lib/clientip.py.
}

SPECTACULAR_SETTINGS = {
    "TITLE": "everhash API",
    "DESCRIPTION": "Albums built from hashtags and their pictures.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI and Redoc from our own static files (drf-spectacular-sidecar): no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- everhash ---------------------------------------------------------------

# The public address of the site, for absolute links in emails and share tags.
EVERHASH_SITE_URL = env_str("EVERHASH_SITE_URL", "http://127.0.0.1:8000").rstrip("/")
# Picture counts that trigger a milestone email.
EVERHASH_MILESTONES = sorted(set(env_int_list("EVERHASH_MILESTONES", [100, 200, 300, 400, 500])))
# Minutes between two fetches of the same album.
EVERHASH_FETCH_INTERVAL_MINUTES = env_int("EVERHASH_FETCH_INTERVAL_MINUTES", 20)
# /healthz answers 503 when no active album was fetched successfully for this long.
EVERHASH_HEALTHZ_MAX_FETCH_AGE_MINUTES = env_int(
    "EVERHASH_HEALTHZ_MAX_FETCH_AGE_MINUTES", 3 * EVERHASH_FETCH_INTERVAL_MINUTES
)
# Set by everhash/gunicorn_health_conf.py in the health instance: the page server's address
# (host:port or unix:/path), which /healthz then checks accepts connections. Empty: no check.
EVERHASH_HEALTHZ_WEB_ADDRESS = env_str("EVERHASH_HEALTHZ_WEB_ADDRESS")

# The X API v2 (searched through twython). Without a token the bundled sample source is used.
EVERHASH_X_API_URL = env_str("EVERHASH_X_API_URL", "https://api.x.com").rstrip("/")
EVERHASH_X_BEARER_TOKEN = env_secret("EVERHASH_X_BEARER_TOKEN")
# A total deadline on each request to X, Mastodon or Bluesky (the clients' timeouts are per
# read; docs/fetching.md).
EVERHASH_SOURCE_DEADLINE_SECONDS = env_int("EVERHASH_SOURCE_DEADLINE_SECONDS", 60)
# What X bills per post read, in dollars ($0.005 on docs.x.com's pricing page, late 2026): the
# admin and `fetch_tweets --json` estimate the cost of the posts read.
EVERHASH_X_COST_PER_POST = Decimal(env_str("EVERHASH_X_COST_PER_POST", "0.005"))
# A fetch_tweets run stops starting work after this many seconds, so it ends before the next cron
# run is due (default: three quarters of the interval).
EVERHASH_FETCH_RUN_BUDGET_SECONDS = env_int("EVERHASH_FETCH_RUN_BUDGET_SECONDS", EVERHASH_FETCH_INTERVAL_MINUTES * 45)
# Photos downloaded at once for one album; failures in a row after which a host is skipped for the run.
EVERHASH_FETCH_DOWNLOAD_CONCURRENCY = env_int("EVERHASH_FETCH_DOWNLOAD_CONCURRENCY", 4)
EVERHASH_MEDIA_HOST_FAILURES = env_int("EVERHASH_MEDIA_HOST_FAILURES", 3)
# Hours a photo whose download failed temporarily (timeout, 503...) is tried again before giving up.
EVERHASH_MEDIA_RETRY_HOURS = env_int("EVERHASH_MEDIA_RETRY_HOURS", 24)

# Mastodon (tweets/mastodon_api.py): hashtag timelines of these instances, comma-separated base
# URLs; empty disables Mastodon. Each instance shows only the posts that have reached it.
EVERHASH_MASTODON_INSTANCES = [
    url.rstrip("/") for url in env_list("EVERHASH_MASTODON_INSTANCES", ["https://mastodon.social"])
]
for _url in EVERHASH_MASTODON_INSTANCES:  # a typo must stop start-up, not silently skip an instance
    if not _url.startswith("https://") or len(_url) <= len("https://"):
        raise ImproperlyConfigured(f"EVERHASH_MASTODON_INSTANCES: {_url!r} is not an https:// address.")
# host=token pairs for instances that show hashtag timelines only to signed-in apps.
EVERHASH_MASTODON_TOKENS = env_secret_pairs("EVERHASH_MASTODON_TOKENS")
# Bluesky (tweets/bluesky_api.py): post search needs an account; an app password is enough.
EVERHASH_BLUESKY_HANDLE = env_str("EVERHASH_BLUESKY_HANDLE").lstrip("@")
EVERHASH_BLUESKY_APP_PASSWORD = env_secret("EVERHASH_BLUESKY_APP_PASSWORD")
EVERHASH_BLUESKY_API_URL = env_str("EVERHASH_BLUESKY_API_URL", "https://bsky.social").rstrip("/")
if not EVERHASH_BLUESKY_API_URL.startswith("https://"):
    raise ImproperlyConfigured(
        f"EVERHASH_BLUESKY_API_URL must be an https:// address, not {EVERHASH_BLUESKY_API_URL!r}."
    )

# Untrusted media downloads (everhash/lib/safehttp.py).
EVERHASH_MEDIA_HOSTS = env_list("EVERHASH_MEDIA_HOSTS", ["pbs.twimg.com"])
# Addresses or networks exempt from the private-address guard (tests and benchmarks only).
EVERHASH_ALLOW_PRIVATE_ADDRESSES = env_list("EVERHASH_ALLOW_PRIVATE_ADDRESSES")
# Extra CA certificates to trust for the X API and media downloads (a PEM file).
EVERHASH_CA_BUNDLE = env_str("EVERHASH_CA_BUNDLE")
EVERHASH_MAX_IMAGE_BYTES = env_int("EVERHASH_MAX_IMAGE_BYTES", 20 * 1024 * 1024)
EVERHASH_MAX_IMAGE_PIXELS = env_int("EVERHASH_MAX_IMAGE_PIXELS", 40_000_000)

# --- Celery: the optional scale-out path (docs/celery.md) ---------------------
# Cron running `manage.py fetch_tweets` needs none of this. With a broker URL (redis://host:6379/0),
# `celery -A everhash beat` enqueues tweets.tasks.dispatch_due_albums on the cron line's schedule and
# `celery -A everhash worker` fetches one album per task, through the same services, claims and unique
# rows as the command: cron and Celery may even run at once. Empty: Celery is not used.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL")
CELERY_TIMEZONE = "UTC"
CELERY_ENABLE_UTC = True
# JSON only: a worker never unpickles what someone managed to write into the broker.
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
# Nobody waits for a return value: outcomes are in the database (FetchRun) and the workers' log.
CELERY_TASK_IGNORE_RESULT = True
# A message is acknowledged when its task has finished; if the worker process dies mid-fetch, the
# message is delivered again. Safe: the album is still claimed (tweets.services.CLAIM_LEASE), so the
# redelivered task finds it not due and does nothing; once the lease ends the next dispatch fetches it
# from the saved cursors, photos stored before the crash are known media keys, and the unique rows
# (pictures, milestones) turn any overlap into a no-op.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# Each worker process reserves one message at a time: a slow album never holds back others.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# A fetch must end before its 15-minute claim does, or another runner could fetch the album at the
# same time: past 14 minutes the process is killed, like a cron run killed mid-fetch (its cursor is
# not saved, the album is fetched again when the claim ends). No soft limit: raised inside one
# photo's storing it would be taken for that photo's problem, and the photo skipped.
CELERY_TASK_TIME_LIMIT = 14 * 60
# Redis hands an unacknowledged message to another worker after visibility_timeout: it must exceed
# the time limit, or a fetch still running would be started a second time.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 60 * 60}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Broker connection lost: running tasks are stopped, since their messages will be delivered again.
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
# Beat's one entry, the cron line `*/20 * * * * manage.py fetch_tweets` (minutes 0, 20 and 40).
try:
    from celery.schedules import crontab
except ImportError:  # requirements/base.txt only (`make run`): no Celery, so nothing to schedule
    CELERY_BEAT_SCHEDULE = {}
else:
    CELERY_BEAT_SCHEDULE = {
        "dispatch-due-albums": {"task": "tweets.tasks.dispatch_due_albums", "schedule": crontab(minute="*/20")}
    }
