"""Changes to projects and pipelines. The admin, the UI, the API and commands all call these."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from bedrock.envconfig import format_duration
from bedrock.pipelines.models import Membership, Pipeline, Project, Role
from bedrock.pipelines.selectors import User, has_role

PIPELINE_FIELDS = ("name", "git_url", "branch", "config_path", "kind", "model", "max_run_time")


def project_create(*, name: str, description: str = "", owner: User | None = None) -> Project:
    """Create a project; its owner, if given, becomes its first admin."""
    project = Project(name=name, description=description)
    project.full_clean()
    with transaction.atomic():
        project.save()
        if owner is not None:
            Membership.objects.create(project=project, user=owner, role=Role.ADMIN)
    return project


def membership_set(*, project: Project, user: User, role: str) -> Membership:
    if role not in Role.values:
        raise ValidationError({"role": f"Choose one of: {', '.join(Role.values)}."})
    membership, _ = Membership.objects.update_or_create(
        project=project, user=user, defaults={"role": role}
    )
    return membership


def _check_max_run_time(
    *, actor: User | None, new: timedelta | None, current: timedelta | None
) -> None:
    """Only site administrators may set a limit above the site default (72 h unless configured).

    A limit an administrator already raised may be kept by anyone who edits the pipeline.
    """
    if new is None or actor is None or actor.is_superuser:
        return
    allowed = max(settings.BEDROCK_DEFAULT_MAX_RUN_TIME, current or timedelta(0))
    if new > allowed:
        raise ValidationError(
            {
                "max_run_time": (
                    f"Only a site administrator may raise the maximum run time above "
                    f"{format_duration(allowed)}."
                )
            }
        )


def pipeline_create(*, actor: User | None, project: Project, **fields: Any) -> Pipeline:
    """Create a pipeline. ``actor`` None means the system itself (``bedrock up``, fixtures)."""
    if actor is not None and not has_role(actor, project, Role.ADMIN):
        raise PermissionDenied("Only a project admin may create pipelines.")
    unknown = set(fields) - set(PIPELINE_FIELDS)
    if unknown:
        raise TypeError(f"unknown pipeline fields: {', '.join(sorted(unknown))}")
    _check_max_run_time(actor=actor, new=fields.get("max_run_time"), current=None)
    pipeline = Pipeline(project=project, created_by=actor, **fields)
    pipeline.full_clean()
    pipeline.save()
    return pipeline


def pipeline_update(*, actor: User | None, pipeline: Pipeline, **fields: Any) -> Pipeline:
    if actor is not None and not has_role(actor, pipeline.project, Role.ADMIN):
        raise PermissionDenied("Only a project admin may edit pipelines.")
    unknown = set(fields) - set(PIPELINE_FIELDS)
    if unknown:
        raise TypeError(f"unknown pipeline fields: {', '.join(sorted(unknown))}")
    current = Pipeline.objects.values_list("max_run_time", flat=True).get(pk=pipeline.pk)
    _check_max_run_time(actor=actor, new=fields.get("max_run_time"), current=current)
    for field, value in fields.items():
        setattr(pipeline, field, value)
    pipeline.full_clean()
    pipeline.save()
    return pipeline


def pipeline_archive(*, actor: User | None, pipeline: Pipeline) -> Pipeline:
    """Archive a pipeline: it keeps its runs and models but starts no new runs."""
    if actor is not None and not has_role(actor, pipeline.project, Role.ADMIN):
        raise PermissionDenied("Only a project admin may archive pipelines.")
    Pipeline.objects.filter(pk=pipeline.pk, archived_at__isnull=True).update(
        archived_at=timezone.now()
    )
    pipeline.refresh_from_db(fields=["archived_at"])
    return pipeline
