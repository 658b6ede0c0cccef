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

from bedrock.actors import Actor, Staff, System, is_site_administrator, person, require_role
from bedrock.envconfig import format_duration
from bedrock.models.models import Model
from bedrock.pipelines.models import Membership, Pipeline, Project, Role


class _Unset(enum.Enum):
    UNSET = enum.auto()


# A field of pipeline_update left as it is; None is a value some fields take (``model``).
UNSET = _Unset.UNSET

# What one person or one project may hold, so that no one fills the database by looping a call.
MAX_PROJECTS_ADMINISTERED = 100
MAX_MEMBERS_PER_PROJECT = 1000


def limit_reached(field: str, message: str) -> ValidationError:
    """The refusal of one more of something past its limit, on the field that asked for it."""
    return ValidationError({field: ValidationError(message, code="limit")})


def may_create_projects(actor: Actor) -> bool:
    """Whether ``BEDROCK_PROJECT_CREATION`` lets ``actor`` create a project."""
    if isinstance(actor, Staff) or is_site_administrator(actor):
        return True
    user = cast("AuthUser", actor)
    if not user.is_authenticated or not user.is_active:
        return False
    return settings.BEDROCK_PROJECT_CREATION == "anyone" or user.is_staff


def project_create(*, actor: Actor, name: str, description: str = "") -> Project:
    """Create a project. A person who creates one becomes its first admin, in the same
    transaction; the site's operators (the admin, commands) create it without members."""
    if not may_create_projects(actor):
        raise PermissionDenied("Only site administrators may create projects on this site.")
    project = Project(name=name, description=description)
    project.full_clean()
    # person() is typed for any auth user, but the one it returns is signed in: a User.
    creator = None if isinstance(actor, Staff) else cast("AuthUser | None", person(actor))
    if creator is not None and not is_site_administrator(actor):
        held = Membership.objects.filter(user=creator, role=Role.ADMIN).count()
        if held >= MAX_PROJECTS_ADMINISTERED:
            raise limit_reached(
                "name",
                f"You administer {held} projects, the most one person may create "
                f"({MAX_PROJECTS_ADMINISTERED}); ask a site administrator for more.",
            )
    with transaction.atomic():
        project.save()
        if creator is not None:
            Membership.objects.create(project=project, user=creator, role=Role.ADMIN)
    return project


def project_update(
    *,
    actor: Actor,
    project: Project,
    name: str | _Unset = UNSET,
    description: str | _Unset = UNSET,
) -> Project:
    """Change the name or description given; those left UNSET keep their value."""
    require_role(actor, project, Role.ADMIN, "Only a project admin may edit the project.")
    if name is not UNSET:
        project.name = name
    if description is not UNSET:
        project.description = description
    project.full_clean()
    project.save()
    return project


def project_delete(*, actor: Actor, project: Project) -> None:
    """Delete a project with its memberships. One with pipelines or models cannot be
    (ProtectedError): those are history."""
    if not isinstance(actor, Staff) and not is_site_administrator(actor):
        raise PermissionDenied("Only a site administrator may delete projects.")
    project.delete()


def _member_user(username: str) -> AuthUser:
    user = AuthUser.objects.filter(username=username, is_active=True).first()
    if user is None:
        raise ValidationError(
            {"username": ValidationError(f"There is no user named {username!r}.", code="not_found")}
        )
    return user


def _keep_an_admin(actor: Actor, project: Project, leaving: Membership, role: str | None) -> None:
    """Refuse to take the admin role from the project's last admin (``role`` None: removal).

    The site's operators may: they can always give the role back, which a team cannot.
    """
    if isinstance(actor, Staff | System) or leaving.role != Role.ADMIN or role == Role.ADMIN:
        return
    # Locked, so that two admins demoting each other at once cannot both succeed.
    admins = Membership.objects.select_for_update().filter(project=project, role=Role.ADMIN)
    if not admins.exclude(pk=leaving.pk).exists():
        what = "remove" if role is None else "demote"
        raise ValidationError(
            {
                "username": ValidationError(
                    f"{leaving.user.username} is the last admin of {project.name}: give another "
                    f"member the admin role before you {what} them.",
                    code="last_admin",
                )
            }
        )


def _locked_membership(project: Project, **user: Any) -> Membership | None:
    """The project's membership of the user, locked until the transaction ends."""
    memberships = Membership.objects.select_for_update().select_related("user")
    return memberships.filter(project=project, **user).first()


def membership_set(*, actor: Actor, project: Project, username: str, role: str) -> Membership:
    """Give the user named ``username`` the ``role`` in ``project``, replacing any they held."""
    require_role(actor, project, Role.ADMIN, "Only a project admin may change its members.")
    if role not in Role.values:
        raise ValidationError({"role": f"Choose one of: {', '.join(Role.values)}."})
    user = _member_user(username)
    with transaction.atomic():
        current = _locked_membership(project, user=user)
        if current is None:
            if project.memberships.count() >= MAX_MEMBERS_PER_PROJECT:
                raise limit_reached(
                    "username",
                    f"{project.name} has {MAX_MEMBERS_PER_PROJECT} members, the most a project "
                    f"may have.",
                )
            return Membership.objects.create(project=project, user=user, role=role)
        _keep_an_admin(actor, project, current, role)
        current.role = role
        current.save(update_fields=["role"])
        return current


def membership_remove(*, actor: Actor, project: Project, username: str) -> None:
    """Take the user named ``username`` out of ``project``."""
    require_role(actor, project, Role.ADMIN, "Only a project admin may change its members.")
    with transaction.atomic():
        current = _locked_membership(project, user__username=username)
        if current is None:
            raise ValidationError(
                {
                    "username": ValidationError(
                        f"{username} is not a member of {project.name}.", code="not_found"
                    )
                }
            )
        _keep_an_admin(actor, project, current, None)
        current.delete()


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
