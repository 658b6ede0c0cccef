"""Changes to projects and pipelines. The admin, the UI, the API and commands all call these."""

from __future__ import annotations

import enum
from datetime import timedelta
from typing import Any, cast

from django.conf import settings
from django.contrib.auth.models import User as AuthUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from bedrock.actors import Actor, Staff, is_site_administrator, person, require_role
from bedrock.envconfig import format_duration
from bedrock.models.models import Model
from bedrock.pipelines.models import Membership, Pipeline, Project, Role
from bedrock.pipelines.selectors import User


class _Unset(enum.Enum):
    UNSET = enum.auto()


# A field of pipeline_update left as it is; None is a value some fields take (``model``).
UNSET = _Unset.UNSET


def project_create(
    *, actor: Actor, name: str, description: str = "", owner: AuthUser | None = None
) -> Project:
    """Create a project; its owner, if given, becomes its first admin."""
    # Projects are made by the site's operators (the admin, commands), never by members.
    if not isinstance(actor, Staff) and not is_site_administrator(actor):
        raise PermissionDenied("Only a site administrator may create projects.")
    project = Project(name=name, description=description)
    project.full_clean()
    with transaction.atomic():
        project.save()
        if owner is not None:
            Membership.objects.create(project=project, user=owner, role=Role.ADMIN)
    return project


def project_update(*, actor: Actor, project: Project, name: str, description: str) -> Project:
    require_role(actor, project, Role.ADMIN, "Only a project admin may edit the project.")
    project.name, project.description = name, description
    project.full_clean()
    project.save()
    return project


def project_delete(*, actor: Actor, project: Project) -> None:
    """Delete a project with its memberships. One with pipelines or models cannot be
    (ProtectedError): those are history."""
    if not isinstance(actor, Staff) and not is_site_administrator(actor):
        raise PermissionDenied("Only a site administrator may delete projects.")
    project.delete()


def membership_set(*, actor: Actor, project: Project, user: User, role: str) -> Membership:
    """Give ``user`` the ``role`` in ``project``, replacing the role they held."""
    require_role(actor, project, Role.ADMIN, "Only a project admin may change its members.")
    if role not in Role.values:
        raise ValidationError({"role": f"Choose one of: {', '.join(Role.values)}."})
    membership, _ = Membership.objects.update_or_create(
        project=project, user=user, defaults={"role": role}
    )
    return membership


def membership_remove(*, actor: Actor, membership: Membership) -> None:
    require_role(
        actor, membership.project, Role.ADMIN, "Only a project admin may change its members."
    )
    membership.delete()


def max_run_time_problem(
    *, actor: Actor, new: timedelta | None, current: timedelta | None
) -> str | None:
    """Why ``actor`` may not set the limit ``new``, or None. Only site administrators may set a
    limit above the site default (72 h unless configured); a limit an administrator already
    raised may be kept by anyone who edits the pipeline."""
    if new is None or is_site_administrator(actor):
        return None
    allowed = max(settings.BEDROCK_DEFAULT_MAX_RUN_TIME, current or timedelta(0))
    if new <= allowed:
        return None
    return (
        f"Only a site administrator may raise the maximum run time above "
        f"{format_duration(allowed)}."
    )


def _check_max_run_time(*, actor: Actor, new: timedelta | None, current: timedelta | None) -> None:
    if problem := max_run_time_problem(actor=actor, new=new, current=current):
        raise ValidationError({"max_run_time": problem})


def pipeline_create(
    *,
    actor: Actor,
    project: Project,
    name: str,
    git_url: str,
    kind: str,
    model: Model | None = None,
    branch: str | None = None,
    config_path: str | None = None,
    max_run_time: timedelta | None = None,
    dated_installs: str | None = None,
    publish_policy: str | None = None,
) -> Pipeline:
    """Create a pipeline. ``None`` for branch, config path, run-time limit, dated installs or
    publish policy keeps the default."""
    require_role(actor, project, Role.ADMIN, "Only a project admin may create pipelines.")
    _check_max_run_time(actor=actor, new=max_run_time, current=None)
    defaults = {"branch": branch, "config_path": config_path, "max_run_time": max_run_time}
    defaults["dated_installs"] = dated_installs
    defaults["publish_policy"] = publish_policy
    pipeline = Pipeline(
        project=project,
        name=name,
        git_url=git_url,
        kind=kind,
        model=model,
        # person() is typed for any auth user, but the one it returns is signed in: a User.
        created_by=cast("AuthUser | None", person(actor)),
        **{field: value for field, value in defaults.items() if value is not None},
    )
    pipeline.full_clean()
    pipeline.save()
    return pipeline


def pipeline_update(
    *,
    actor: Actor,
    pipeline: Pipeline,
    name: str | _Unset = UNSET,
    git_url: str | _Unset = UNSET,
    kind: str | _Unset = UNSET,
    model: Model | _Unset | None = UNSET,
    branch: str | _Unset = UNSET,
    config_path: str | _Unset = UNSET,
    max_run_time: timedelta | _Unset = UNSET,
    dated_installs: str | _Unset = UNSET,
    publish_policy: str | _Unset = UNSET,
) -> Pipeline:
    """Change the fields given; those left UNSET keep their value."""
    require_role(actor, pipeline.project, Role.ADMIN, "Only a project admin may edit pipelines.")
    given: dict[str, Any] = {
        "name": name,
        "git_url": git_url,
        "kind": kind,
        "model": model,
        "branch": branch,
        "config_path": config_path,
        "max_run_time": max_run_time,
        "dated_installs": dated_installs,
        "publish_policy": publish_policy,
    }
    changes = {field: value for field, value in given.items() if value is not UNSET}
    if "max_run_time" in changes:
        current = Pipeline.objects.values_list("max_run_time", flat=True).get(pk=pipeline.pk)
        _check_max_run_time(actor=actor, new=changes["max_run_time"], current=current)
    for field, value in changes.items():
        setattr(pipeline, field, value)
    pipeline.full_clean()
    pipeline.save()
    return pipeline


def pipeline_archive(*, actor: Actor, pipeline: Pipeline) -> Pipeline:
    """Archive a pipeline: it keeps its runs and models but starts no new runs."""
    require_role(actor, pipeline.project, Role.ADMIN, "Only a project admin may archive pipelines.")
    Pipeline.objects.filter(pk=pipeline.pk, archived_at__isnull=True).update(
        archived_at=timezone.now()
    )
    pipeline.refresh_from_db(fields=["archived_at"])
    return pipeline


def pipeline_delete(*, actor: Actor, pipeline: Pipeline) -> None:
    """Delete a pipeline with its secrets. One that has runs cannot be (ProtectedError): archive
    it instead."""
    require_role(actor, pipeline.project, Role.ADMIN, "Only a project admin may delete pipelines.")
    pipeline.delete()
