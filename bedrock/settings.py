"""Bedrock's settings, read from environment variables.

Every setting has a default that runs on a fresh clone: SQLite, django-q2's ORM broker, local file
storage and the local executor, with state kept under ``BEDROCK_HOME``. Misconfiguration does not
raise here; it is reported by the system checks in :mod:`bedrock.checks`.
"""

from __future__ import annotations

import secrets as _secrets
from pathlib import Path

import dj_database_url

from bedrock.envconfig import (
    PROBLEMS,
    ConfigProblem,
    env_bool,
    env_duration,
    env_int,
    env_list,
    env_str,
)

BASE_DIR = Path(__file__).resolve().parent.parent
BEDROCK_HOME = Path(env_str("BEDROCK_HOME") or BASE_DIR / "var").resolve()


def _home_file(name: str, make: callable) -> str:
    """A value generated once and kept in BEDROCK_HOME: the embedded setup's own keys."""
    path = BEDROCK_HOME / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(make() + "\n")
        path.chmod(0o600)
    return path.read_text().strip()


DEBUG = env_bool("BEDROCK_DEBUG", False)
SECRET_KEY = env_str("BEDROCK_DJANGO_SECRET_KEY") or _home_file(
    "django-secret-key", lambda: _secrets.token_urlsafe(50)
)
ALLOWED_HOSTS = env_list("BEDROCK_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("BEDROCK_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_q",
    "strawberry_django",
    "bedrock.pipelines",
    "bedrock.runs",
    "bedrock.models",
    "bedrock.secrets",
    "bedrock.nomad",
    "bedrock.ui",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "bedrock.secrets.middleware.TokenAuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "bedrock.urls"
WSGI_APPLICATION = "bedrock.wsgi.application"
ASGI_APPLICATION = "bedrock.asgi.application"

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

# --- Database ---------------------------------------------------------------------------------
_SQLITE = {
    "ENGINE": "django.db.backends.sqlite3",
    "NAME": str(BEDROCK_HOME / "bedrock.sqlite3"),
    # The web process and the worker write at once: wait for the lock rather than fail.
    "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE"},
}
DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    try:
        _database = dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)
        if not _database.get("ENGINE") or not _database.get("NAME"):
            raise ValueError("it names no database")
    except Exception as exc:  # dj_database_url raises several types for a bad URL
        PROBLEMS.append(
            ConfigProblem(
                "bedrock.E001",
                "DATABASE_URL",
                f"DATABASE_URL cannot be used: {exc}.",
                "Use postgres://USER:PASSWORD@HOST:PORT/NAME, or unset it for SQLite.",
            )
        )
        # Never fall back to SQLite silently: a typo must not write to a different database.
        _database = {"ENGINE": "django.db.backends.dummy"}
else:
    _database = _SQLITE
DATABASES = {"default": _database}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("BEDROCK_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BEDROCK_HOME / "static"
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"

# --- Storage ----------------------------------------------------------------------------------
BEDROCK_STORAGE = env_str("BEDROCK_STORAGE", "local").lower()
STORAGES = {
    "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(BEDROCK_HOME / "artefacts")},
    },
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# --- Work queue -------------------------------------------------------------------------------
# Task timeouts stay below `retry`, or the ORM broker hands a running task to a second worker.
Q_CLUSTER = {
    "name": "bedrock",
    "orm": "default",
    "workers": env_int("BEDROCK_WORKERS", 2),
    "timeout": 600,
    "retry": 720,
    "max_attempts": 1,
    "ack_failures": True,
    "catch_up": False,
    "save_limit": 1000,
    "poll": 0.5,
    "label": "Tasks",
}

# --- Runs -------------------------------------------------------------------------------------
BEDROCK_EXECUTOR = env_str("BEDROCK_EXECUTOR", "local").lower()
BEDROCK_DEFAULT_MAX_RUN_TIME = env_duration("BEDROCK_DEFAULT_MAX_RUN_TIME", "72h")
BEDROCK_MAX_RUN_TIME_CAP = env_duration("BEDROCK_MAX_RUN_TIME_CAP", "7d")
BEDROCK_API_DOMAIN = env_str("BEDROCK_API_DOMAIN", "http://127.0.0.1:8000")

# --- Git --------------------------------------------------------------------------------------
# Local paths as repository URLs suit a laptop; a shared server should not read its own disk.
BEDROCK_ALLOW_LOCAL_REPOS = env_bool("BEDROCK_ALLOW_LOCAL_REPOS", not DATABASE_URL)
BEDROCK_GIT_CACHE = BEDROCK_HOME / "git"
BEDROCK_GIT_TIMEOUT = env_int("BEDROCK_GIT_TIMEOUT", 120)

# --- Secrets ----------------------------------------------------------------------------------
# Fernet keys, newest first. Older keys still decrypt; `bedrock rotatesecrets` re-encrypts with
# the newest. The embedded setup generates one key in BEDROCK_HOME.
_raw_keys = env_str("BEDROCK_SECRET_KEYS")
if not _raw_keys:
    from cryptography.fernet import Fernet

    _raw_keys = _home_file("secret-keys", lambda: Fernet.generate_key().decode())
BEDROCK_SECRET_KEYS = [key.strip() for key in _raw_keys.split(",") if key.strip()]

# --- Nomad ------------------------------------------------------------------------------------
NOMAD_ADDR = env_str("NOMAD_ADDR")
NOMAD_TOKEN = env_str("NOMAD_TOKEN")
NOMAD_NAMESPACE = env_str("NOMAD_NAMESPACE", "default")
NOMAD_REGION = env_str("NOMAD_REGION")
NOMAD_DATACENTERS = env_list("NOMAD_DATACENTERS", ["dc1"])
# TLS: certificates are verified unless NOMAD_SKIP_VERIFY says otherwise; NOMAD_CACERT names a CA
# bundle for a private CA; NOMAD_CLIENT_CERT/KEY for mutual TLS. These are Nomad's own names.
NOMAD_CACERT = env_str("NOMAD_CACERT")
NOMAD_CLIENT_CERT = env_str("NOMAD_CLIENT_CERT")
NOMAD_CLIENT_KEY = env_str("NOMAD_CLIENT_KEY")
NOMAD_SKIP_VERIFY = env_bool("NOMAD_SKIP_VERIFY", False)
# The image of the prestart and poststop tasks (deploy/Dockerfile builds it).
BEDROCK_NOMAD_HOOK_IMAGE = env_str("BEDROCK_NOMAD_HOOK_IMAGE", "bedrock:latest")
# Job IDs are <prefix>-<run id>-<step>-<attempt>; one prefix per Bedrock installation.
BEDROCK_NOMAD_JOB_PREFIX = env_str("BEDROCK_NOMAD_JOB_PREFIX", "bedrock")
# MaxRunDuration exists from Nomad 2.0.3; older agents drop it silently (the watchdog still acts).
BEDROCK_NOMAD_MAX_RUN_DURATION = env_bool("BEDROCK_NOMAD_MAX_RUN_DURATION", True)
# A step job that Nomad cannot place for this long (no GPU free, say) fails the step.
BEDROCK_NOMAD_QUEUE_TIMEOUT = env_duration("BEDROCK_NOMAD_QUEUE_TIMEOUT", "30m")
BEDROCK_NOMAD_POLL_SECONDS = env_int("BEDROCK_NOMAD_POLL_SECONDS", 3)
BEDROCK_NOMAD_DISK_MB = env_int("BEDROCK_NOMAD_DISK_MB", 10240)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("BEDROCK_LOG_LEVEL", "INFO").upper()},
}

STRAWBERRY_DJANGO = {
    "GENERATE_ENUMS_FROM_CHOICES": True,
    "MUTATIONS_DEFAULT_HANDLE_ERRORS": True,
}

# How a run's supervisor is started: "process" (detached, survives worker restarts) or "thread"
# (inside the starting process; for tests that share its database connection settings).
BEDROCK_SUPERVISOR = env_str("BEDROCK_SUPERVISOR", "process")
BEDROCK_LOCAL_SANDBOX = env_bool("BEDROCK_LOCAL_SANDBOX", True)
