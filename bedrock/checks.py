"""System checks for Bedrock's settings, each with a stable id.

| id           | what is wrong                                            |
|--------------|----------------------------------------------------------|
| bedrock.E001 | DATABASE_URL cannot be used                              |
| bedrock.E002 | BEDROCK_SECRET_KEYS is empty                             |
| bedrock.E003 | a key in BEDROCK_SECRET_KEYS is not a Fernet key         |
| bedrock.E004 | BEDROCK_EXECUTOR names no executor                       |
| bedrock.E005 | the default maximum run time exceeds the cap             |
| bedrock.E006 | the nomad executor is chosen but NOMAD_ADDR is missing   |
| bedrock.E007 | BEDROCK_STORAGE names no storage backend                 |
| bedrock.E010 | a boolean variable cannot be read                        |
| bedrock.E011 | an integer variable cannot be read                       |
| bedrock.E012 | a duration variable cannot be read                       |
| bedrock.E013 | a size variable (bytes, 256Ki, 50Gi) cannot be read      |
| bedrock.E014 | a *_FILE secret cannot be read, or is set beside NAME     |
| bedrock.E020 | NOMAD_ADDR is not an http:// or https:// URL              |
| bedrock.E021 | a Nomad TLS file is missing, or a client cert lacks a key |
| bedrock.E022 | the nomad executor is chosen but no hook image is set     |
| bedrock.E023 | S3 or GCS is chosen but BEDROCK_STORAGE_BUCKET is empty   |
| bedrock.E024 | BEDROCK_GCS_CREDENTIALS is not a service-account key file |
| bedrock.E025 | BEDROCK_DOWNLOAD_URL_EXPIRY is not between 1s and 7d      |
| bedrock.E026 | BEDROCK_NOMAD_JOB_PREFIX is not 1-40 of A-Z a-z 0-9 _ -   |
| bedrock.E027 | BEDROCK_NOMAD_LOST_AFTER is not a positive duration       |
| bedrock.W020 | Nomad jobs would call Bedrock at a loopback address       |
| bedrock.W030 | the local executor runs steps without a sandbox           |
| bedrock.W031 | DEBUG is on                                               |
| bedrock.W032 | local repositories are allowed on a shared database       |
| bedrock.E040 | BEDROCK_MAX_ENVIRONMENT_BYTES is not between 1 and 131072 |
| bedrock.E030 | a BEDROCK_MAX_* limit is not a positive number            |
| bedrock.W050 | BEDROCK_CLIENT_SOURCE holds no client for steps to install |
| bedrock.W060 | a directory of BEDROCK_PYTHONS does not exist              |
| bedrock.E070 | BEDROCK_PROJECT_CREATION is neither anyone nor staff       |
| bedrock.E071 | BEDROCK_TOKEN_MAX_LIFETIME is not a positive duration      |
| bedrock.E080 | BEDROCK_ENV_CACHE_MAX_AGE is not a positive duration       |
"""

from __future__ import annotations

import binascii
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography.fernet import Fernet
from django.apps import AppConfig
from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

from bedrock.envconfig import PROBLEMS, format_duration

# The tags every Bedrock check has: a command that needs no view or model checks asks for these.
BEDROCK_CHECK_TAGS = [Tags.compatibility, Tags.security]

EXECUTORS = ("local", "docker", "nomad")
# Limits of work a user may ask for; 0 or less would refuse every file, archive or request.
LIMITS = (
    "BEDROCK_MAX_CONFIG_BYTES",
    "BEDROCK_MAX_CONFIG_DEPTH",
    "BEDROCK_MAX_CONFIG_TOKENS",
    "BEDROCK_MAX_STEPS",
    "BEDROCK_MAX_STEP_CPUS",
    "BEDROCK_MAX_STEP_MEMORY",
    "BEDROCK_MAX_STEP_GPUS",
    "BEDROCK_MAX_REQUEST_BYTES",
    "BEDROCK_MAX_UPLOAD_BYTES",
    "BEDROCK_MAX_ARCHIVE_BYTES",
    "BEDROCK_MAX_ARCHIVE_ENTRIES",
    "BEDROCK_MAX_ARCHIVE_RATIO",
    "BEDROCK_MAX_ARCHIVE_DEPTH",
)
STORAGE_BACKENDS = ("local", "s3", "gcs")
PROJECT_CREATION = ("anyone", "staff")
# S3 and GCS both refuse signed URLs valid for longer than seven days.
MAX_DOWNLOAD_URL_EXPIRY = timedelta(days=7)


@register(Tags.compatibility, deploy=False)
def check_environment(app_configs: Sequence[AppConfig] | None, **kwargs: Any) -> list[Error]:
    return [
        Error(problem.message, hint=problem.hint or None, id=problem.check_id)
        for problem in PROBLEMS
    ]


@register(Tags.security)
def check_secret_keys(app_configs: Sequence[AppConfig] | None, **kwargs: Any) -> list[Error]:
    keys = list(getattr(settings, "BEDROCK_SECRET_KEYS", []) or [])
    hint = (
        "Generate one with: python -c 'from cryptography.fernet import Fernet; "
        "print(Fernet.generate_key().decode())'. List keys newest first, comma-separated."
    )
    if not keys:
        return [Error("BEDROCK_SECRET_KEYS holds no key.", hint=hint, id="bedrock.E002")]
    errors = []
    for position, key in enumerate(keys, start=1):
        try:
            Fernet(key)
        except (ValueError, binascii.Error, TypeError):
            errors.append(
                Error(
                    f"Key {position} of BEDROCK_SECRET_KEYS is not a Fernet key "
                    "(32 url-safe base64-encoded bytes).",
                    hint=hint,
                    id="bedrock.E003",
                )
            )
    return errors


@register(Tags.compatibility)
def check_runs(app_configs: Sequence[AppConfig] | None, **kwargs: Any) -> list[Error]:
    errors = []
    if settings.BEDROCK_EXECUTOR not in EXECUTORS:
        errors.append(
            Error(
                f"BEDROCK_EXECUTOR={settings.BEDROCK_EXECUTOR!r} is not an executor.",
                hint=f"Use one of: {', '.join(EXECUTORS)}.",
                id="bedrock.E004",
            )
        )
    if settings.BEDROCK_DEFAULT_MAX_RUN_TIME > settings.BEDROCK_MAX_RUN_TIME_CAP:
        errors.append(
            Error(
                "BEDROCK_DEFAULT_MAX_RUN_TIME "
                f"({format_duration(settings.BEDROCK_DEFAULT_MAX_RUN_TIME)}) exceeds "
                f"BEDROCK_MAX_RUN_TIME_CAP ({format_duration(settings.BEDROCK_MAX_RUN_TIME_CAP)}).",
                id="bedrock.E005",
            )
        )
    if settings.BEDROCK_EXECUTOR == "nomad" and not settings.NOMAD_ADDR:
        errors.append(
            Error(
                "BEDROCK_EXECUTOR is nomad but NOMAD_ADDR is not set.",
                hint="Set NOMAD_ADDR to the cluster's HTTP API, such as https://nomad.internal:4646.",
                id="bedrock.E006",
            )
        )
    if settings.BEDROCK_STORAGE not in STORAGE_BACKENDS:
        errors.append(
            Error(
                f"BEDROCK_STORAGE={settings.BEDROCK_STORAGE!r} is not a storage backend.",
                hint=f"Use one of: {', '.join(STORAGE_BACKENDS)}.",
                id="bedrock.E007",
            )
        )
    return errors


@register(Tags.compatibility)
def check_storage(app_configs: Sequence[AppConfig] | None, **kwargs: Any) -> list[Error]:
    errors = []
    if settings.BEDROCK_STORAGE in ("s3", "gcs") and not settings.BEDROCK_STORAGE_BUCKET:
        errors.append(
            Error(
                f"BEDROCK_STORAGE is {settings.BEDROCK_STORAGE} but BEDROCK_STORAGE_BUCKET is "
                "not set.",
                hint="Set BEDROCK_STORAGE_BUCKET to the bucket that holds model versions; "
                "BEDROCK_STORAGE_PREFIX, optional, keeps them under one folder of it.",
                id="bedrock.E023",
            )
        )
    expiry = settings.BEDROCK_DOWNLOAD_URL_EXPIRY
    if not timedelta(seconds=1) <= expiry <= MAX_DOWNLOAD_URL_EXPIRY:
        errors.append(
            Error(
                f"BEDROCK_DOWNLOAD_URL_EXPIRY={format_duration(expiry)} is not between 1s and "
                "7d, the longest S3 and GCS sign a URL for.",
                hint="A few minutes is enough: a download starts as soon as the URL is handed out.",
                id="bedrock.E025",
            )
        )
    return errors


@register(Tags.compatibility)
def check_nomad(app_configs: Sequence[AppConfig] | None, **kwargs: Any) -> list[Error | Warning]:
    """Only when runs go to Nomad: a mistake here would surface as every run failing."""
    if settings.BEDROCK_EXECUTOR != "nomad" or not settings.NOMAD_ADDR:
        return []  # E006 covers a missing address
    problems: list[Error | Warning] = []
    address = urlsplit(settings.NOMAD_ADDR)
    if address.scheme not in ("http", "https") or not address.hostname:
        problems.append(
            Error(
                f"NOMAD_ADDR={settings.NOMAD_ADDR!r} is not an http:// or https:// URL.",
                hint="Such as https://nomad.internal:4646.",
                id="bedrock.E020",
            )
        )
    for name in ("NOMAD_CACERT", "NOMAD_CLIENT_CERT", "NOMAD_CLIENT_KEY"):
        path = getattr(settings, name)
        if path and not Path(path).is_file():
            problems.append(Error(f"{name}={path!r} is not a readable file.", id="bedrock.E021"))
    if bool(settings.NOMAD_CLIENT_CERT) != bool(settings.NOMAD_CLIENT_KEY):
        problems.append(
            Error(
                "NOMAD_CLIENT_CERT and NOMAD_CLIENT_KEY go together; only one is set.",
                id="bedrock.E021",
            )
        )
    if not settings.BEDROCK_NOMAD_HOOK_IMAGE:
        problems.append(
            Error(
                "BEDROCK_NOMAD_HOOK_IMAGE is empty; step jobs need it for their fetch and "
                "upload tasks.",
                hint="Build deploy/Dockerfile, push it where Nomad clients pull from, and name it.",
                id="bedrock.E022",
            )
        )
    problems += _job_prefix_problems()
    problems += _lost_after_problems()
    domain = urlsplit(settings.BEDROCK_API_DOMAIN).hostname or ""
    if domain in ("localhost", "127.0.0.1", "::1"):
        problems.append(
            Warning(
                f"BEDROCK_API_DOMAIN={settings.BEDROCK_API_DOMAIN!r} is a loopback address, "
                "which step jobs on Nomad clients cannot reach.",
                hint="Set it to the URL at which Nomad clients reach this server.",
                id="bedrock.W020",
            )
        )
    return problems


def _job_prefix_problems() -> list[Error | Warning]:
    # Job IDs start with the prefix and name the jobs' variables, whose paths Nomad refuses
    # outside [A-Za-z0-9-_~/] or past 128 characters: every step would fail to start.
    from bedrock.nomad.jobs import JOB_ID_SAFE, JOB_PREFIX_MAX

    prefix = settings.BEDROCK_NOMAD_JOB_PREFIX
    if JOB_ID_SAFE.match(prefix) and len(prefix) <= JOB_PREFIX_MAX:
        return []
    return [
        Error(
            f"BEDROCK_NOMAD_JOB_PREFIX={prefix!r} is not 1 to {JOB_PREFIX_MAX} letters, digits, "
            "'-' or '_'; Nomad would refuse the variable paths of the jobs it names.",
            hint="Such as bedrock or bedrock-prod: one prefix per installation sharing a "
            "namespace.",
            id="bedrock.E026",
        )
    ]


def _lost_after_problems() -> list[Error]:
    # Nomad refuses a negative StopOnClientAfter, and a zero one would fail every step at once.
    lost_after = settings.BEDROCK_NOMAD_LOST_AFTER
    if lost_after >= timedelta(seconds=1):
        return []
    return [
        Error(
            f"BEDROCK_NOMAD_LOST_AFTER={format_duration(lost_after)} is not a positive duration.",
            hint="How long a step's node may stay cut off before the step fails, such as 15m.",
            id="bedrock.E027",
        )
    ]


@register(Tags.security)
def check_isolation(app_configs: Sequence[AppConfig] | None, **kwargs: Any) -> list[Warning]:
    """What lets a step, or a visitor, see more of the server than it should."""
    problems: list[Warning] = []
    if settings.BEDROCK_EXECUTOR == "local":
        from bedrock.runs.executors.local import sandbox_problem

        if problem := sandbox_problem():
            if getattr(settings, "BEDROCK_ALLOW_UNSANDBOXED", False):
                consequence = (
                    "BEDROCK_ALLOW_UNSANDBOXED is on, so every developer's steps run as the "
                    "server's own user and can read its keys and database."
                )
            else:
                consequence = "Only site administrators' runs will execute; others are rejected."
            problems.append(
                Warning(
                    f"The local executor has no sandbox: {problem}. {consequence}",
                    hint="Install bubblewrap (apt-get install bubblewrap), or run steps with "
                    "BEDROCK_EXECUTOR=docker or nomad.",
                    id="bedrock.W030",
                )
            )
    if settings.DEBUG:
        problems.append(
            Warning(
                "BEDROCK_DEBUG is on: error pages show settings, paths and code to anyone.",
                hint="Unset BEDROCK_DEBUG on any server others can reach.",
                id="bedrock.W031",
            )
        )
    engine = settings.DATABASES["default"]["ENGINE"]
    if settings.BEDROCK_ALLOW_LOCAL_REPOS and not engine.endswith("sqlite3"):
        problems.append(
            Warning(
                "BEDROCK_ALLOW_LOCAL_REPOS is on with a shared database: any project developer "
                "can point a pipeline at a directory of this server.",
                hint="Unset BEDROCK_ALLOW_LOCAL_REPOS (it is off by default with DATABASE_URL), "
                "and serve repositories over https or ssh.",
                id="bedrock.W032",
            )
        )
    return problems


# Linux refuses to start a program with an environment string longer than this (MAX_ARG_STRLEN).
MAX_ARG_STRLEN = 128 * 1024


@register(Tags.compatibility)
def check_environment_limit(app_configs: Sequence[AppConfig] | None, **kwargs: Any) -> list[Error]:
    limit = settings.BEDROCK_MAX_ENVIRONMENT_BYTES
    if 0 < limit <= MAX_ARG_STRLEN:
        return []
    return [
        Error(
            f"BEDROCK_MAX_ENVIRONMENT_BYTES={limit} is not between 1 and {MAX_ARG_STRLEN}: "
            "over it, Linux refuses to start a step whose parameter or secret is that long "
            "(Argument list too long).",
            hint="Leave it unset for 65536 (64 KiB).",
            id="bedrock.E040",
        )
    ]


@register(Tags.compatibility)
def check_limits(app_configs: Sequence[AppConfig] | None, **kwargs: Any) -> list[Error]:
    # BEDROCK_MAX_RETRIES may be 0: no step is then retried.
    bad = [name for name in LIMITS if getattr(settings, name) <= 0]
    if settings.BEDROCK_MAX_RETRIES < 0:
        bad.append("BEDROCK_MAX_RETRIES")
    return [
        Error(
            f"{name}={getattr(settings, name)} refuses everything it bounds.",
            hint="Set a positive number, or unset it for the default in the README.",
            id="bedrock.E030",
        )
        for name in bad
    ]


@register(Tags.compatibility)
def check_client_source(app_configs: Sequence[AppConfig] | None, **kwargs: Any) -> list[Warning]:
    # A warning, not an error: Bedrock works without it, but every step that pins bdrk fails.
    from bedrock.tracking.wheels import ClientSourceError, client_version

    try:
        client_version()
    except ClientSourceError as exc:
        hint = "Leave BEDROCK_CLIENT_SOURCE unset for the client inside the bedrock package."
        return [Warning(str(exc), hint=hint, id="bedrock.W050")]
    return []


@register(Tags.compatibility)
def check_pythons(app_configs: Sequence[AppConfig] | None, **kwargs: Any) -> list[Warning]:
    # A warning, not an error: the local executor falls back to pyenv, uv, the PATH, then the
    # server's own Python, and says so in each step's log.
    missing = [path for path in settings.BEDROCK_PYTHONS if not Path(path).is_dir()]
    if not missing:
        return []
    return [
        Warning(
            f"BEDROCK_PYTHONS names {', '.join(missing)}, which is not a directory: the local "
            "executor finds no interpreter for steps' images there.",
            hint="Name installations (a prefix with bin/pythonX.Y), directories of them, or "
            "directories of pythonX.Y programs, separated by commas.",
            id="bedrock.W060",
        )
    ]


@register(Tags.security)
def check_teams(app_configs: Sequence[AppConfig] | None, **kwargs: Any) -> list[Error]:
    errors = []
    creation = settings.BEDROCK_PROJECT_CREATION
    if creation not in PROJECT_CREATION:
        errors.append(
            Error(
                f"BEDROCK_PROJECT_CREATION={creation!r} is neither 'anyone' nor 'staff'.",
                hint="'anyone' lets every signed-in user create a project (and become its "
                "admin); 'staff' keeps that to the site's administrators and staff.",
                id="bedrock.E070",
            )
        )
    if not timedelta(0) < settings.BEDROCK_TOKEN_MAX_LIFETIME:
        errors.append(
            Error(
                "BEDROCK_TOKEN_MAX_LIFETIME is not a positive duration: no token could be created.",
                hint="Such as 90d or 365d; a token may still be created to never expire.",
                id="bedrock.E071",
            )
        )
    return errors


@register(Tags.compatibility)
def check_env_cache(app_configs: Sequence[AppConfig] | None, **kwargs: Any) -> list[Error]:
    # A size that cannot be read is bedrock.E013 (PROBLEMS); 0 is allowed: it keeps nothing.
    if timedelta(0) < settings.BEDROCK_ENV_CACHE_MAX_AGE:
        return []
    return [
        Error(
            "BEDROCK_ENV_CACHE_MAX_AGE is not a positive duration: every kept environment "
            "would be too old to reuse.",
            hint="Such as 7d or 24h; to keep no environments, set BEDROCK_ENV_CACHE_SIZE=0.",
            id="bedrock.E080",
        )
    ]
