"""Reads of runs and their steps scoped to a user, for pages and GraphQL alike."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from bedrock.pipelines.selectors import User, projects_for, remember_role, role_of
from bedrock.runs.models import Run, RunStep


def run_scope(user: User) -> Q:
    """The runs the user may see, as a condition on runs: a list filters by it in place, where a
    ``pk IN (every visible run)`` subquery would read every run before the first page."""
    return Q(pipeline__project__in=projects_for(user))


def run_step_scope(user: User) -> Q:
    return Q(run__pipeline__project__in=projects_for(user))


def runs_for(user: User) -> QuerySet[Run]:
    """Runs of the user's projects, with what a run's page and row show joined in."""
    return Run.objects.select_related(
        "pipeline__project",
        "pipeline__model",
        "triggered_by",
        "input_model_version__model",
        "output_model_version__model",
    ).filter(run_scope(user))


def run_steps_for(user: User) -> QuerySet[RunStep]:
    return RunStep.objects.filter(run_step_scope(user))


def run_with_role(user: User, pk: int) -> tuple[Run, str] | None:
    """A run the user may see and their role in its project, in one read."""
    run = runs_for(user).annotate(caller_role=role_of(user, "pipeline__project")).filter(pk=pk)
    found = run.first()
    if found is None:
        return None
    remember_role(found.pipeline.project, user, found.caller_role)
    return found, found.caller_role
