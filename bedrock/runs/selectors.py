"""Reads of runs and their steps scoped to a user, for pages and GraphQL alike."""

from __future__ import annotations

from django.db.models import QuerySet

from bedrock.pipelines.selectors import User, projects_for
from bedrock.runs.models import Run, RunStep


def runs_for(user: User) -> QuerySet[Run]:
    """Runs of the user's projects, with what a run's page and row show joined in."""
    return Run.objects.select_related(
        "pipeline__project",
        "pipeline__model",
        "triggered_by",
        "input_model_version__model",
        "output_model_version__model",
    ).filter(pipeline__project__in=projects_for(user))


def run_steps_for(user: User) -> QuerySet[RunStep]:
    return RunStep.objects.filter(run__pipeline__project__in=projects_for(user))
