"""Bedrock's settings, read from environment variables.

Every setting has a default that runs on a fresh clone: SQLite, django-q2's ORM broker, local file
storage and the local executor, with state kept under ``BEDROCK_HOME``. Misconfiguration does not
raise here; it is reported by the system checks in :mod:`bedrock.checks`.
"""

from __future__ import annotations

import os
import secrets as _secrets
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import dj_database_url

from bedrock.envconfig import (
    PROBLEMS,
    ConfigProblem,
    env_bool,
    env_duration,
    env_int,
    env_list,
    env_secret,
    env_size,
    env_str,
)

# What the server ships with (templates, the example, the client's source) is inside the package,
# so a wheel installed anywhere has it; nothing is ever written there.
PACKAGE_DIR = Path(__file__).resolve().parent


def _default_home() -> Path:
    """Per user, as the XDG base directories say: ``$XDG_DATA_HOME/bedrock``, else
    ``~/.local/share/bedrock``. Never beside the package, which may be a read-only site-packages."""
    data = env_str("XDG_DATA_HOME")
    return (
        Path(data) if data and Path(data).is_absolute() else Path.home() / ".local" / "share"
    ) / "bedrock"


BEDROCK_HOME = Path(env_str("BEDROCK_HOME") or _default_home()).resolve()


def _home_file(name: str, make: Callable[[], str]) -> str:
    """A value generated once and kept in BEDROCK_HOME: the embedded setup's own keys."""
    path = BEDROCK_HOME / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(make() + "\n")
        path.chmod(0o600)
    return path.read_text().strip()


DEBUG = env_bool("BEDROCK_DEBUG", False)
SECRET_KEY = env_secret("BEDROCK_DJANGO_SECRET_KEY") or _home_file(
    "django-secret-key", lambda: _secrets.token_urlsafe(50)
)
ALLOWED_HOSTS = env_list("BEDROCK_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("BEDROCK_CSRF_TRUSTED_ORIGINS")

# --- HTTPS ------------------------------------------------------------------------------------
# One switch for "this server is reached over HTTPS": it turns on what Django's deploy checks ask
# for. Off by default, because `bedrock up` serves plain HTTP on loopback.
BEDROCK_HTTPS = env_bool("BEDROCK_HTTPS", False)
SECURE_SSL_REDIRECT = BEDROCK_HTTPS
SESSION_COOKIE_SECURE = BEDROCK_HTTPS
CSRF_COOKIE_SECURE = BEDROCK_HTTPS
# HSTS cannot be taken back from browsers that saw it: an hour by default, raise it once sure.
SECURE_HSTS_SECONDS = env_int("BEDROCK_HSTS_SECONDS", 3600) if BEDROCK_HTTPS else 0
# Both bind every subdomain of the host to HTTPS, which only the domain's owner can decide.
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("BEDROCK_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("BEDROCK_HSTS_PRELOAD", False)
# Behind a proxy that terminates TLS, Django sees plain HTTP; trust its header only when told,
# since any client can send it to a server that is reached directly.
if env_bool("BEDROCK_BEHIND_HTTPS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_q",
    "bedrock.pipelines",
    "bedrock.runs",
    "bedrock.models",
    "bedrock.secrets",
    "bedrock.accounts",
    "bedrock.nomad",
    "bedrock.tracking",
    "bedrock.events",
    "bedrock.ui",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Before the session and the user are looked up: a static file needs neither.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "bedrock.accounts.middleware.TokenAuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "bedrock.urls"
WSGI_APPLICATION = "bedrock.wsgi.application"
ASGI_APPLICATION = "bedrock.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [PACKAGE_DIR / "templates"],
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
_SQLITE: dict[str, Any] = {
    "ENGINE": "django.db.backends.sqlite3",
    "NAME": str(BEDROCK_HOME / "bedrock.sqlite3"),
    # The web process and the worker write at once: wait for the lock rather than fail.
    "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE"},
}
DATABASE_URL = env_secret("DATABASE_URL")
_database: Mapping[str, Any]
if DATABASE_URL or env_str("DATABASE_URL_FILE"):  # an unreadable file is no SQLite either
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
DATABASES: dict[str, Mapping[str, Any]] = {"default": _database}
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
# The app serves its static files itself (WhiteNoise), straight from the apps' static directories,
# indexed once when a process starts: nothing is collected and nothing written, so an installed
# wheel serves them from site-packages as they are. Their names carry no hash, so browsers keep
# them a minute (WhiteNoise's default) and then revalidate.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"

# --- Storage ----------------------------------------------------------------------------------
# Model-version archives: the local filesystem, S3 (or any S3-compatible endpoint) or GCS. No
# credential is a Bedrock setting: S3 takes them from the environment (AWS_ACCESS_KEY_ID and
# AWS_SECRET_ACCESS_KEY, AWS_PROFILE) or the instance role, GCS from a key file or the
# application default credentials.
BEDROCK_STORAGE = env_str("BEDROCK_STORAGE", "local").lower()
BEDROCK_STORAGE_BUCKET = env_str("BEDROCK_STORAGE_BUCKET")
BEDROCK_STORAGE_PREFIX = env_str("BEDROCK_STORAGE_PREFIX").strip("/")
BEDROCK_S3_ENDPOINT_URL = env_str("BEDROCK_S3_ENDPOINT_URL")
BEDROCK_S3_REGION = env_str("BEDROCK_S3_REGION")
# on: endpoint/bucket/key; off: bucket.endpoint/key; unset: botocore's choice (path style for a
# custom endpoint, virtual-hosted for AWS).
BEDROCK_S3_PATH_STYLE = (
    env_bool("BEDROCK_S3_PATH_STYLE", False) if env_str("BEDROCK_S3_PATH_STYLE") else None
)
BEDROCK_GCS_CREDENTIALS = env_str("BEDROCK_GCS_CREDENTIALS")
BEDROCK_GCS_PROJECT = env_str("BEDROCK_GCS_PROJECT")
# The service account that signs download URLs through the IAM signBlob API, for credentials that
# cannot sign themselves and name no service account (a user's application default credentials).
BEDROCK_GCS_SIGNING_EMAIL = env_str("BEDROCK_GCS_SIGNING_EMAIL")
# How long a signed download URL stays valid. The membership check happens when Bedrock hands it
# out, so a short life keeps a forwarded URL from outliving the reason it was given.
BEDROCK_DOWNLOAD_URL_EXPIRY = env_duration("BEDROCK_DOWNLOAD_URL_EXPIRY", "5m")
# Retention keeps a version a batch scoring run used this recently, whatever its age: that run
# may well be rerun.
BEDROCK_RETENTION_RECENT_USE = env_duration("BEDROCK_RETENTION_RECENT_USE", "30d")


def _s3_options() -> dict[str, Any]:
    from boto3.s3.transfer import TransferConfig

    # Uploads are multipart, 8 MiB parts, four in flight. boto3 buffers up to
    # max_in_memory_upload_chunks parts of a stream (10 by default, and not a constructor
    # argument), so memory stays flat whatever the archive's size: about 85 MB above idle,
    # measured at 320 MiB and 1 GiB (parts, compression buffers and boto3's own).
    transfer = TransferConfig(
        multipart_threshold=8 << 20, multipart_chunksize=8 << 20, max_concurrency=4
    )
    transfer.max_in_memory_upload_chunks = 4
    return {
        "bucket_name": BEDROCK_STORAGE_BUCKET,
        "location": BEDROCK_STORAGE_PREFIX,
        "endpoint_url": BEDROCK_S3_ENDPOINT_URL or None,
        "region_name": BEDROCK_S3_REGION or None,
        "addressing_style": (
            None
            if BEDROCK_S3_PATH_STYLE is None
            else "path"
            if BEDROCK_S3_PATH_STYLE
            else "virtual"
        ),
        # Without it, boto3 signs URLs for a custom endpoint with SigV2.
        "signature_version": "s3v4",
        # django-storages overwrites by default; artefacts never are.
        "file_overwrite": False,
        "querystring_auth": True,
        "querystring_expire": int(BEDROCK_DOWNLOAD_URL_EXPIRY.total_seconds()),
        "transfer_config": transfer,
    }


def _gcs_options() -> dict[str, Any]:
    credentials = None
    if BEDROCK_GCS_CREDENTIALS:
        from google.oauth2 import service_account

        try:
            credentials = service_account.Credentials.from_service_account_file(
                BEDROCK_GCS_CREDENTIALS
            )
        except (OSError, ValueError, KeyError) as exc:
            PROBLEMS.append(
                ConfigProblem(
                    "bedrock.E024",
                    "BEDROCK_GCS_CREDENTIALS",
                    f"BEDROCK_GCS_CREDENTIALS={BEDROCK_GCS_CREDENTIALS!r} is not a readable "
                    f"service-account key file: {exc}.",
                    "Download a JSON key of the service account, or unset the variable to use "
                    "the application default credentials.",
                )
            )
    return {
        "bucket_name": BEDROCK_STORAGE_BUCKET,
        "location": BEDROCK_STORAGE_PREFIX,
        "project_id": BEDROCK_GCS_PROJECT or None,
        "credentials": credentials,
        # Application default credentials on GCE, GKE or Cloud Run hold no private key: signed
        # URLs are then signed by the IAM signBlob API, as the account they name or the one set.
        "iam_sign_blob": credentials is None or bool(BEDROCK_GCS_SIGNING_EMAIL),
        "sa_email": BEDROCK_GCS_SIGNING_EMAIL or None,
        # Resumable uploads in 8 MiB parts (a multiple of 256 KiB), so memory holds one part.
        "blob_chunk_size": 8 << 20,
        "file_overwrite": False,
        "querystring_auth": True,
        "expiration": BEDROCK_DOWNLOAD_URL_EXPIRY,
    }


_default_storage: dict[str, Any]
if BEDROCK_STORAGE == "s3":
    _default_storage = {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": _s3_options()}
elif BEDROCK_STORAGE == "gcs":
    _default_storage = {
        "BACKEND": "storages.backends.gcloud.GoogleCloudStorage",
        "OPTIONS": _gcs_options(),
    }
else:  # local, and the fallback while bedrock.E007 reports an unknown name
    _default_storage = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(BEDROCK_HOME / "artefacts")},
    }
STORAGES: dict[str, dict[str, Any]] = {
    "default": _default_storage,
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

# --- Web server (`bedrock serve`) ------------------------------------------------------------
# gunicorn's threaded workers (gthread): a process per core, since a request's Python holds one
# core while it runs, and threads in each to overlap the waits on the database. Measured with
# bench/pages.py on 2 cores and 20 connections: twice the cores in processes served fewer pages a
# second, and so did 4 threads a worker (connections beyond the threads wait for one), where 10
# served more than Django's development server on every page. Each thread keeps a database
# connection: workers x threads of them. Threaded workers also keep connections alive, and do not
# kill a long request (an artefact upload) at the timeout.
BEDROCK_SERVE_WORKERS = max(1, env_int("BEDROCK_SERVE_WORKERS", os.cpu_count() or 1))
BEDROCK_SERVE_THREADS = max(1, env_int("BEDROCK_SERVE_THREADS", 10))
# A worker whose main loop is silent this long is restarted; a long request (an artefact upload)
# is not, since a threaded worker's loop keeps answering while its threads work.
BEDROCK_SERVE_TIMEOUT = env_duration("BEDROCK_SERVE_TIMEOUT", "30s")

# --- Runs -------------------------------------------------------------------------------------
BEDROCK_EXECUTOR = env_str("BEDROCK_EXECUTOR", "local").lower()
BEDROCK_DEFAULT_MAX_RUN_TIME = env_duration("BEDROCK_DEFAULT_MAX_RUN_TIME", "72h")
BEDROCK_MAX_RUN_TIME_CAP = env_duration("BEDROCK_MAX_RUN_TIME_CAP", "7d")
BEDROCK_API_DOMAIN = env_str("BEDROCK_API_DOMAIN", "http://127.0.0.1:8000")
# The Docker network of the docker executor's steps. The default bridge reaches the internet and
# every host service listening on the bridge's gateway; a user-defined network with a firewall
# rule can keep the host out (see the README).
BEDROCK_DOCKER_NETWORK = env_str("BEDROCK_DOCKER_NETWORK", "bridge")
if BEDROCK_EXECUTOR == "docker" and "*" not in ALLOWED_HOSTS:
    # Containers call the API as host.docker.internal (a loopback BEDROCK_API_DOMAIN rewritten).
    ALLOWED_HOSTS = [*ALLOWED_HOSTS, "host.docker.internal"]
# A step being stopped gets SIGTERM, then SIGKILL after this long (as Nomad's KillTimeout).
BEDROCK_STOP_GRACE = env_duration("BEDROCK_STOP_GRACE", "30s")
# Parameters and secrets together, checked when a run is created: Linux refuses to start a program
# with an environment string over 128 KiB (MAX_ARG_STRLEN), so stay well under it.
BEDROCK_MAX_ENVIRONMENT_BYTES = env_int("BEDROCK_MAX_ENVIRONMENT_BYTES", 64 * 1024)
# Steps of one run running at once, and steps of every run on this machine running at once
# (local and Docker steps; each one a venv or a container competing for the same cores).
BEDROCK_MAX_PARALLEL_STEPS = max(1, env_int("BEDROCK_MAX_PARALLEL_STEPS", 8))
BEDROCK_MACHINE_MAX_STEPS = max(1, env_int("BEDROCK_MACHINE_MAX_STEPS", 2 * (os.cpu_count() or 1)))
# A supervisor that never claims its run (a crash at import, a locked database) is started again
# after this delay, doubled each time, at most this many times in all; then the run fails.
BEDROCK_SUPERVISOR_START_ATTEMPTS = max(1, env_int("BEDROCK_SUPERVISOR_START_ATTEMPTS", 3))
BEDROCK_SUPERVISOR_START_BACKOFF = env_duration("BEDROCK_SUPERVISOR_START_BACKOFF", "30s")
# How often a supervisor writes its heartbeat and looks for a stop request or a time limit, how
# often it looks again while a step runs, and how often a step waiting for a place on this
# machine asks again. The heartbeat must stay well under the 30 s after which a run is presumed
# dead; the test settings shorten all three so that stopping a run takes milliseconds.
BEDROCK_HEARTBEAT_SECONDS = 2.0
BEDROCK_SUPERVISOR_POLL_SECONDS = 0.5
BEDROCK_SLOT_POLL_SECONDS = 0.5

# --- Limits -----------------------------------------------------------------------------------
# Each bounds work a user can ask of the server; what exceeds one is refused up front, naming the
# setting. The bedrock.hcl defaults sit far above the 139 real files (at most 9 KB, 6 levels deep,
# under 1,000 tokens) and keep any document under a second of parser CPU.
BEDROCK_MAX_CONFIG_BYTES = env_size("BEDROCK_MAX_CONFIG_BYTES", "256Ki")
BEDROCK_MAX_CONFIG_DEPTH = env_int("BEDROCK_MAX_CONFIG_DEPTH", 32)
BEDROCK_MAX_CONFIG_TOKENS = env_int("BEDROCK_MAX_CONFIG_TOKENS", 10_000)
BEDROCK_MAX_STEPS = env_int("BEDROCK_MAX_STEPS", 100)
BEDROCK_MAX_RETRIES = env_int("BEDROCK_MAX_RETRIES", 10)
BEDROCK_MAX_STEP_CPUS = env_int("BEDROCK_MAX_STEP_CPUS", 1024)
BEDROCK_MAX_STEP_MEMORY = env_size("BEDROCK_MAX_STEP_MEMORY", "16Ti")
BEDROCK_MAX_STEP_GPUS = env_int("BEDROCK_MAX_STEP_GPUS", 64)
# A GraphQL or form body: room for the largest bedrock.hcl above, even JSON-escaped.
BEDROCK_MAX_REQUEST_BYTES = env_size("BEDROCK_MAX_REQUEST_BYTES", "1Mi")
DATA_UPLOAD_MAX_MEMORY_SIZE = BEDROCK_MAX_REQUEST_BYTES
# An artefact or stage upload: refused while it streams in, once past this.
BEDROCK_MAX_UPLOAD_BYTES = env_size("BEDROCK_MAX_UPLOAD_BYTES", "50Gi")
# What one archive may unpack to: its files' total size, its entries, how far an entry over 4 MiB
# may be compressed (deflate manages about 1030:1 on zeros; Bedrock's own archives stay near
# 230:1), and how many levels deep its paths go. Packing /artefact refuses the same.
BEDROCK_MAX_ARCHIVE_BYTES = env_size("BEDROCK_MAX_ARCHIVE_BYTES", "50Gi")
BEDROCK_MAX_ARCHIVE_ENTRIES = env_int("BEDROCK_MAX_ARCHIVE_ENTRIES", 50_000)
BEDROCK_MAX_ARCHIVE_RATIO = env_int("BEDROCK_MAX_ARCHIVE_RATIO", 1000)
BEDROCK_MAX_ARCHIVE_DEPTH = env_int("BEDROCK_MAX_ARCHIVE_DEPTH", 64)

# --- Tracking ---------------------------------------------------------------------------------
# What a run's steps may log (bedrock.tracking): a batch over a limit is refused whole.
BEDROCK_TRACKING_MAX_NAME = env_int("BEDROCK_TRACKING_MAX_NAME", 250)
BEDROCK_TRACKING_MAX_REQUEST_BYTES = env_size("BEDROCK_TRACKING_MAX_REQUEST_BYTES", "16Mi")
BEDROCK_TRACKING_MAX_POINTS_PER_REQUEST = env_int(
    "BEDROCK_TRACKING_MAX_POINTS_PER_REQUEST", 100_000
)
BEDROCK_TRACKING_MAX_POINTS_PER_RUN = env_int("BEDROCK_TRACKING_MAX_POINTS_PER_RUN", 1_000_000)
BEDROCK_TRACKING_MAX_METRICS_PER_RUN = env_int("BEDROCK_TRACKING_MAX_METRICS_PER_RUN", 1_000)
BEDROCK_TRACKING_MAX_PARAMS_PER_RUN = env_int("BEDROCK_TRACKING_MAX_PARAMS_PER_RUN", 1_000)
BEDROCK_TRACKING_MAX_PARAM_VALUE = env_int("BEDROCK_TRACKING_MAX_PARAM_VALUE", 6_000)
BEDROCK_TRACKING_MAX_CHARTS_PER_RUN = env_int("BEDROCK_TRACKING_MAX_CHARTS_PER_RUN", 100)
# The client's source (its pyproject.toml, bdrk/ and bedrock_client/), which the package index
# at /pypi/simple/ builds into the wheels steps install.
BEDROCK_CLIENT_SOURCE = Path(env_str("BEDROCK_CLIENT_SOURCE") or PACKAGE_DIR / "client")

# --- Git --------------------------------------------------------------------------------------
# Local paths as repository URLs suit a laptop; a shared server should not read its own disk.
BEDROCK_ALLOW_LOCAL_REPOS = env_bool("BEDROCK_ALLOW_LOCAL_REPOS", not DATABASE_URL)
BEDROCK_GIT_CACHE = BEDROCK_HOME / "git"
# Step and supervisor logs: written by the machine whose supervisor runs the run, read by every
# web process. Unset, BEDROCK_HOME/logs; web processes and workers on several machines share it.
BEDROCK_LOGS_DIR = env_str("BEDROCK_LOGS_DIR") or None
BEDROCK_GIT_TIMEOUT = env_int("BEDROCK_GIT_TIMEOUT", 120)
# A pipeline's page asks the server for the branch's head (`git ls-remote`); each process keeps
# the answer this long, so that a busy page does not start a Git process, and wait on the Git
# server, on every view. A push shows on the page at most this much later.
BEDROCK_GIT_HEAD_TTL = env_duration("BEDROCK_GIT_HEAD_TTL", "5s")

# --- Secrets ----------------------------------------------------------------------------------
# Fernet keys, newest first. Older keys still decrypt; `bedrock rotatesecrets` re-encrypts with
# the newest. The embedded setup generates one key in BEDROCK_HOME.
_raw_keys = env_secret("BEDROCK_SECRET_KEYS")
# Keys named by a file that cannot be read are not replaced by a new one (bedrock.E002, E014):
# what it encrypted would be lost with it.
if not _raw_keys and not env_str("BEDROCK_SECRET_KEYS_FILE"):
    from cryptography.fernet import Fernet

    _raw_keys = _home_file("secret-keys", lambda: Fernet.generate_key().decode())
BEDROCK_SECRET_KEYS = [key.strip() for key in _raw_keys.split(",") if key.strip()]

# --- Projects and API tokens ------------------------------------------------------------------
# Who may create a project: "anyone" signed in (who becomes its first admin), or "staff", the
# site's administrators and staff only. Another value is reported by bedrock.E070.
BEDROCK_PROJECT_CREATION = env_str("BEDROCK_PROJECT_CREATION", "anyone").strip().lower()
# The longest an API token may be created for; a token may also never expire.
BEDROCK_TOKEN_MAX_LIFETIME = env_duration("BEDROCK_TOKEN_MAX_LIFETIME", "365d")

# --- Webhooks ---------------------------------------------------------------------------------
# A project admin chooses where webhooks go; without this, an address that resolves inside the
# network (loopback, link-local and its cloud metadata service, private ranges) is refused.
BEDROCK_WEBHOOK_ALLOW_PRIVATE = env_bool("BEDROCK_WEBHOOK_ALLOW_PRIVATE", False)

# --- Nomad ------------------------------------------------------------------------------------
NOMAD_ADDR = env_str("NOMAD_ADDR")
NOMAD_TOKEN = env_secret("NOMAD_TOKEN")
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
# A step whose allocation Nomad reports "unknown" (its node cut off) this long fails as node lost;
# the job's StopOnClientAfter makes the cut-off client stop the step after as long.
BEDROCK_NOMAD_LOST_AFTER = env_duration("BEDROCK_NOMAD_LOST_AFTER", "15m")
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

# How a run's supervisor is started: "fork" (a detached process forked from the one starting it,
# Django already loaded; "process" when that one is inside a transaction), "process" (detached,
# `bedrock execute RUN_ID`, which boots Python and Django again), both surviving worker
# restarts, or "thread" (inside the starting process; for tests that share its database
# connection settings).
BEDROCK_SUPERVISOR = env_str("BEDROCK_SUPERVISOR", "fork")
BEDROCK_LOCAL_SANDBOX = env_bool("BEDROCK_LOCAL_SANDBOX", True)
# Without bubblewrap a local step is the server's own user (keys, database): only site
# administrators' runs execute then, unless the operator accepts the risk here.
BEDROCK_ALLOW_UNSANDBOXED = env_bool("BEDROCK_ALLOW_UNSANDBOXED", False)
# Whether a pipeline left at "the server's default" resolves its steps' pip installs as of the
# run's commit date (bedrock.runs.installs): old requirement files pin their direct dependencies
# only, and today's releases of the rest often break them.
BEDROCK_DATED_INSTALLS = env_bool("BEDROCK_DATED_INSTALLS", False)
# Environments that local steps' install lines made, kept for the next run with the same installs
# (bedrock.runs.installs.envcache): at most this much disk in all (0 keeps none), least recently
# used evicted first, and none older than the age, so that unpinned installs get new releases.
BEDROCK_ENV_CACHE_SIZE = env_size("BEDROCK_ENV_CACHE_SIZE", "10Gi")
BEDROCK_ENV_CACHE_MAX_AGE = env_duration("BEDROCK_ENV_CACHE_MAX_AGE", "7d")
# Directories the local executor looks in first for the Python a step's image held
# (bedrock/runs/executors/interpreters.py), before pyenv's, uv's and the PATH.
BEDROCK_PYTHONS = env_list("BEDROCK_PYTHONS")
