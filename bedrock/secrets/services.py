"""Secrets. Values go in; nothing here ever hands a secret value back to a person."""

from __future__ import annotations

from typing import cast

from django.contrib.auth.models import User as AuthUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from bedrock.actors import Actor, person, require_role
from bedrock.pipelines.environment import (
    ENVIRONMENT_NAME_RULE,
    GIT_CREDENTIAL_NAMES,
    environment_size_problem,
    is_environment_name,
    nul_byte_problem,
    refused_secret_name,
)
from bedrock.pipelines.models import Pipeline, Role
from bedrock.secrets.models import Secret

# A shorter value cannot be masked in logs without masking ordinary text with it.
SECRET_MIN_LENGTH = 4


def secret_problems(*, name: str, value: str | None) -> dict[str, str]:
    """Why a secret cannot be stored, by field ("name", "value"); empty when it can. ``value``
    None checks the name alone. The UI, the API and the admin all check secrets here."""
    problems: dict[str, str] = {}
    if not is_environment_name(name):
        problems["name"] = (
            f"A secret name is an environment variable name: {ENVIRONMENT_NAME_RULE}."
        )
    elif refused := refused_secret_name(name):
        problems["name"] = refused[0].upper() + refused[1:] + "."
    if value is None:
        return problems
    if value == "":
        problems["value"] = "A secret needs a value; delete it instead."
    elif problem := nul_byte_problem(value, "The value"):
        problems["value"] = problem + "."
    elif len(value) < SECRET_MIN_LENGTH:
        problems["value"] = (
            f"A secret needs at least {SECRET_MIN_LENGTH} characters: a shorter value cannot be "
            "masked in logs without masking ordinary text."
        )
    elif problem := environment_size_problem({name: value}, "The secret"):
        problems["value"] = problem + "."
    return problems


def secret_validate(*, name: str, value: str) -> None:
    if problems := secret_problems(name=name, value=value):
        raise ValidationError(problems)


def secret_set(*, actor: Actor, pipeline: Pipeline, name: str, value: str) -> Secret:
    """Create or replace a pipeline's secret."""
    require_role(
        actor,
        pipeline.project,
        Role.DEVELOPER,
        "Only project developers and admins may set secrets.",
    )
    secret_validate(name=name, value=value)
    secret = Secret.objects.filter(pipeline=pipeline, name=name).first() or Secret(
        pipeline=pipeline, name=name
    )
    secret.value = value
    secret.updated_at = timezone.now()
    # person() is typed for any auth user, but the one it returns is signed in: a User.
    secret.updated_by = cast("AuthUser | None", person(actor))
    secret.full_clean(validate_unique=False)
    secret.save()
    return secret


def secret_delete(*, actor: Actor, pipeline: Pipeline, name: str) -> bool:
    require_role(
        actor,
        pipeline.project,
        Role.DEVELOPER,
        "Only project developers and admins may delete secrets.",
    )
    deleted, _ = Secret.objects.filter(pipeline=pipeline, name=name).delete()
    return deleted > 0


def secret_values_for(*, pipeline: Pipeline, names: list[str] | tuple[str, ...]) -> dict[str, str]:
    """The decrypted values a run needs. For the executors only; never for display."""
    return dict(
        Secret.objects.filter(pipeline=pipeline, name__in=names).values_list("name", "value")
    )


def secrets_rotate() -> int:
    """Re-encrypt every secret under the newest key. Returns how many were rewritten.

    Each value is decrypted with whichever key still opens it and written back, which the field
    encrypts under the newest key. Safe to run twice; a value no key opens stops the command.
    """
    count = 0
    for pk in Secret.objects.values_list("pk", flat=True).iterator():
        with transaction.atomic():
            secret = Secret.objects.select_for_update().only("value").get(pk=pk)
            Secret.objects.filter(pk=pk).update(value=secret.value)
        count += 1
    return count


GIT_SECRET_NAMES = GIT_CREDENTIAL_NAMES


def git_credentials_for(pipeline: Pipeline):
    """The pipeline's Git credentials, from its reserved secrets, or None for a public repo."""
    from bedrock.pipelines.git import GitCredentials

    return GitCredentials.from_secrets(secret_values_for(pipeline=pipeline, names=GIT_SECRET_NAMES))
