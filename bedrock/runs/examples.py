"""The example project `bedrock up` loads: churn prediction, trained and batch-scored locally."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import transaction

from bedrock.models.models import Model
from bedrock.pipelines import git
from bedrock.pipelines.models import Pipeline, PipelineKind, Project

EXAMPLE_SOURCE = Path(settings.BASE_DIR) / "examples" / "churn"
PROJECT = "example"
MODEL = "churn-model"
TRAINING = "churn-train"
SCORING = "churn-score"


@dataclass(frozen=True)
class Example:
    project: Project
    model: Model
    training: Pipeline
    scoring: Pipeline


def example_repository() -> Path:
    """The example as a Git repository in BEDROCK_HOME, committed from examples/churn."""
    destination = Path(settings.BEDROCK_HOME) / "examples" / "churn"
    git.init_repository(EXAMPLE_SOURCE, destination, message="Bedrock example: churn prediction")
    return destination


@transaction.atomic
def example_load() -> Example:
    """Create (or find) the example project, model and pipelines. Safe to run twice."""
    repository = str(example_repository())
    project, _ = Project.objects.get_or_create(
        name=PROJECT, defaults={"description": "Churn prediction, the example Bedrock ships."}
    )
    model, _ = Model.objects.get_or_create(
        project=project, name=MODEL, defaults={"description": "Who is likely to churn."}
    )
    training, _ = Pipeline.objects.get_or_create(
        project=project,
        name=TRAINING,
        defaults={"git_url": repository, "kind": PipelineKind.TRAINING, "model": model},
    )
    scoring, _ = Pipeline.objects.get_or_create(
        project=project,
        name=SCORING,
        defaults={"git_url": repository, "kind": PipelineKind.BATCH_SCORING},
    )
    return Example(project=project, model=model, training=training, scoring=scoring)
