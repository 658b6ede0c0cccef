"""The example project `bedrock up` loads: churn prediction, trained and batch-scored locally."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction

from bedrock.actors import SYSTEM
from bedrock.models.models import Model
from bedrock.models.services import model_create
from bedrock.pipelines import git
from bedrock.pipelines.models import Pipeline, PipelineKind, Project
from bedrock.pipelines.services import pipeline_create, project_create

EXAMPLE_SOURCE = Path(settings.PACKAGE_DIR) / "examples" / "churn"
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
    """The example as a Git repository in BEDROCK_HOME, committed from the package's copy."""
    destination = Path(settings.BEDROCK_HOME) / "examples" / "churn"
    git.init_repository(EXAMPLE_SOURCE, destination, message="Bedrock example: churn prediction")
    return destination


@transaction.atomic
def example_load() -> Example:
    """Create (or find) the example project, model and pipelines. Safe to run twice."""
    repository = str(example_repository())
    project = Project.objects.filter(name=PROJECT).first() or project_create(
        actor=SYSTEM, name=PROJECT, description="Churn prediction, the example Bedrock ships."
    )
    model = Model.objects.filter(project=project, name=MODEL).first() or model_create(
        actor=SYSTEM, project=project, name=MODEL, description="Who is likely to churn."
    )
    training = _pipeline(
        project, TRAINING, git_url=repository, kind=PipelineKind.TRAINING, model=model
    )
    scoring = _pipeline(project, SCORING, git_url=repository, kind=PipelineKind.BATCH_SCORING)
    return Example(project=project, model=model, training=training, scoring=scoring)


def _pipeline(project: Project, name: str, **fields: Any) -> Pipeline:
    found = Pipeline.objects.filter(project=project, name=name).first()
    return found or pipeline_create(actor=SYSTEM, project=project, name=name, **fields)
