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
"""

from __future__ import annotations

import binascii

from cryptography.fernet import Fernet
from django.conf import settings
from django.core.checks import Error, Tags, register

from bedrock.envconfig import PROBLEMS, format_duration

EXECUTORS = ("local", "docker", "nomad")
STORAGE_BACKENDS = ("local",)


@register(Tags.compatibility, deploy=False)
def check_environment(app_configs, **kwargs) -> list[Error]:
    return [
        Error(problem.message, hint=problem.hint or None, id=problem.check_id)
        for problem in PROBLEMS
    ]


@register(Tags.security)
def check_secret_keys(app_configs, **kwargs) -> list[Error]:
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
def check_runs(app_configs, **kwargs) -> list[Error]:
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
