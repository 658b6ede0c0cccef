"""Aliases of a model (``production``, ``staging``…): names pointing at versions, moved by project
admins, with every change kept as history and recorded as an event.

Each change locks the model row first, so concurrent moves of one model's aliases serialise and
each history row's ``from_version`` is the version the alias really named just before.
"""

from __future__ import annotations

from typing import Any, cast

from django.contrib.auth.models import User as AuthUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from bedrock.actors import Actor, person, require_role
from bedrock.events.models import EventKind
from bedrock.events.services import event_record
from bedrock.models.models import (
    Model,
    ModelAlias,
    ModelAliasChange,
    ModelVersion,
    alias_name_validator,
)
from bedrock.pipelines.models import Project, Role
from bedrock.pipelines.selectors import User, projects_for

# Enough for every stage and experiment a team names; a model with more is a listing nobody reads.
MAX_ALIASES_PER_MODEL = 50
MAX_NOTE_LENGTH = 1000
REFUSAL = "Only a project admin may change a model's aliases."


def model_alias_set(
    *, actor: Actor, model: Model, name: str, version: ModelVersion, note: str = ""
) -> ModelAlias:
    """Point the alias ``name`` of ``model`` at ``version``, creating it or moving it.

    Setting an alias to the version it already names changes nothing and records nothing.
    """
    require_role(actor, model.project, Role.ADMIN, REFUSAL)
    name = _checked_name(name)
    _check_note(note)
    _check_version(model, version)
    with transaction.atomic():
        _lock(model)
        alias = ModelAlias.objects.filter(model=model, name=name).select_related("version").first()
        if alias is not None and alias.version_id == version.pk:
            return alias
        if alias is None:
            if ModelAlias.objects.filter(model=model).count() >= MAX_ALIASES_PER_MODEL:
                raise ValidationError(
                    {
                        "name": f"The model {model.name} has {MAX_ALIASES_PER_MODEL} aliases "
                        "already, the most it may have; remove one first."
                    }
                )
            alias = ModelAlias(model=model, name=name)
            previous = None
        else:
            previous = alias.version
        alias.version = version
        alias.updated_at = timezone.now()
        alias.updated_by = _who(actor)
        alias.save()
        _record(actor, model, name, previous, version, note, EventKind.MODEL_ALIAS_SET)
        return alias


def model_alias_remove(*, actor: Actor, model: Model, name: str, note: str = "") -> None:
    """Remove the alias ``name`` of ``model``; its history stays."""
    require_role(actor, model.project, Role.ADMIN, REFUSAL)
    _check_note(note)
    with transaction.atomic():
        _lock(model)
        alias = ModelAlias.objects.filter(model=model, name=name).select_related("version").first()
        if alias is None:
            raise ValidationError({"name": _no_alias(model, name)})
        alias.delete()
        _record(actor, model, name, alias.version, None, note, EventKind.MODEL_ALIAS_REMOVED)


def model_alias_rollback(*, actor: Actor, model: Model, name: str) -> ModelAlias:
    """Move the alias ``name`` back to the version it named before its last change.

    A rollback is a change like any other: rolling back twice returns to where it started.
    """
    require_role(actor, model.project, Role.ADMIN, REFUSAL)
    with transaction.atomic():
        _lock(model)
        last = (
            ModelAliasChange.objects.filter(model=model, alias=name)
            .select_related("from_version")
            .first()
        )
        if last is None or last.from_version is None:
            raise ValidationError({"name": _nothing_to_roll_back(model, name, last)})
        return model_alias_set(
            actor=actor,
            model=model,
            name=name,
            version=last.from_version,
            note=f"Rolled back to v{last.from_version.number}.",
        )


def aliases_for(user: User) -> QuerySet[ModelAlias]:
    return ModelAlias.objects.filter(model__project__in=projects_for(user))


def alias_changes_for(user: User) -> QuerySet[ModelAliasChange]:
    return ModelAliasChange.objects.filter(model__project__in=projects_for(user))


def alias_history(model: Model, name: str | None = None) -> QuerySet[ModelAliasChange]:
    """The model's alias changes (or one alias's), newest first, with what a listing shows."""
    changes = ModelAliasChange.objects.filter(model=model).select_related(
        "from_version", "to_version", "actor"
    )
    return changes.filter(alias=name) if name is not None else changes


def alias_resolve(project: Project, asked: str) -> ModelAlias:
    """The alias a run asks for, ``model@alias`` or a bare alias unique in ``project``.

    Raises ValidationError on ``model_alias`` naming what was asked, and for an ambiguous bare
    alias, the ``model@alias`` forms to choose from.
    """
    aliases = ModelAlias.objects.filter(model__project=project).select_related("model", "version")
    model_name, _, alias_name = asked.strip().rpartition("@")
    if model_name:
        aliases = aliases.filter(model__name=model_name)
    found = list(aliases.filter(name=alias_name)[:MAX_ALIASES_PER_MODEL])
    if not found:
        raise ValidationError(
            {
                "model_alias": ValidationError(
                    f"There is no model alias {asked!r} in the project {project}.", code="invalid"
                )
            }
        )
    if len(found) > 1:
        choices = ", ".join(str(alias) for alias in found)
        raise ValidationError(
            {
                "model_alias": ValidationError(
                    f"Several models of the project {project} have the alias {asked!r}: "
                    f"say which, one of {choices}.",
                    code="ambiguous",
                )
            }
        )
    return found[0]


def _who(actor: Actor) -> AuthUser | None:
    # person() is typed for any auth user; the one it returns is signed in.
    return cast("AuthUser | None", person(actor))


def _lock(model: Model) -> None:
    Model.objects.select_for_update().filter(pk=model.pk).first()


def _checked_name(name: str) -> str:
    name = name.strip()
    try:
        alias_name_validator(name)
    except ValidationError as error:
        raise ValidationError(
            {"name": f"{name!r} is not an alias name. {error.messages[0]}"}
        ) from None
    return name


def _check_note(note: str) -> None:
    if len(note) > MAX_NOTE_LENGTH:
        raise ValidationError(
            {"note": f"At most {MAX_NOTE_LENGTH} characters; this note has {len(note)}."}
        )


def _check_version(model: Model, version: ModelVersion) -> None:
    if version.model_id != model.pk:
        raise ValidationError({"version": f"{version} is not a version of the model {model.name}."})
    if version.deleted_at is not None:
        raise ValidationError({"version": f"{version} is deleted; choose another version."})
    if version.deprecated_at is not None:
        raise ValidationError({"version": f"{version} is deprecated; choose another version."})


def _no_alias(model: Model, name: str) -> str:
    return f"The model {model.name} has no alias {name!r}."


def _nothing_to_roll_back(model: Model, name: str, last: ModelAliasChange | None) -> str:
    if last is None:
        return f"The alias {name!r} of {model.name} has no history to roll back."
    return (
        f"The alias {name!r} of {model.name} named no version before its last change; "
        "set it to a version instead."
    )


def _record(
    actor: Actor,
    model: Model,
    name: str,
    previous: ModelVersion | None,
    version: ModelVersion | None,
    note: str,
    kind: EventKind,
) -> None:
    ModelAliasChange.objects.create(
        model=model,
        alias=name,
        from_version=previous,
        to_version=version,
        actor=_who(actor),
        note=note,
    )
    payload: dict[str, Any] = {
        "model_id": model.pk,
        "model_name": model.name,
        "alias": name,
        "from_version_id": previous.pk if previous is not None else None,
        "from_version_number": previous.number if previous is not None else None,
        "to_version_id": version.pk if version is not None else None,
        "to_version_number": version.number if version is not None else None,
    }
    event_record(project=model.project, kind=kind, payload=payload, actor=actor)
