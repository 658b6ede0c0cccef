"""Small builders for test data: plain functions, as the domain needs no factory library."""

from __future__ import annotations

import itertools

from django.contrib.auth import get_user_model

from bedrock.models.models import Model, ModelVersion
from bedrock.pipelines.models import Membership, Pipeline, PipelineKind, Project, Role
from bedrock.runs.models import Run
from bedrock.tracking.models import Chart, ChartKind, Metric
from bedrock.tracking.series import new_chunk

_seq = itertools.count(1)


def user(username: str | None = None, **fields):
    username = username or f"user{next(_seq)}"
    return get_user_model().objects.create_user(
        username=username, password="pw-" + username, **fields
    )


def project(name: str | None = None) -> Project:
    return Project.objects.create(name=name or f"project-{next(_seq)}")


def member(project: Project, who, role: str = Role.VIEWER) -> Membership:
    return Membership.objects.create(project=project, user=who, role=role)


def model(project: Project, name: str | None = None) -> Model:
    return Model.objects.create(project=project, name=name or f"model-{next(_seq)}")


def pipeline(project: Project, *, kind: str = PipelineKind.TRAINING, **fields) -> Pipeline:
    if kind == PipelineKind.TRAINING and "model" not in fields:
        fields["model"] = model(project)
    fields.setdefault("name", f"pipeline-{next(_seq)}")
    fields.setdefault("git_url", "https://git.example.com/team/repo.git")
    return Pipeline.objects.create(project=project, kind=kind, **fields)


def metric(run, name: str, values: list[float], *, chunk: int = 1000, step_name: str = "train"):
    """A metric of ``run`` with the series ``values`` at x 0, 1, 2…, stored ``chunk`` at a time,
    its summary row written as the ingestion service writes it."""
    series = Metric.objects.create(
        run=run,
        name=name,
        step_name=step_name,
        count=len(values),
        latest_value=values[-1],
        latest_x=len(values) - 1,
        min_value=min(values),
        max_value=max(values),
    )
    for seq, start in enumerate(range(0, len(values), chunk)):
        part = values[start : start + chunk]
        stamps = [1764600000.0 + start + offset for offset in range(len(part))]
        new_chunk(series, seq, list(range(start, start + len(part))), part, stamps).save()
    return series


def chart(run, name: str = "binary_classifier", **data):
    return Chart.objects.create(
        run=run, name=name, kind=ChartKind.BINARY_CLASSIFIER, data=data, step_name="train"
    )


def model_version(model: Model, run: Run, number: int = 1) -> ModelVersion:
    """A version as a run publishes it, its archive never read."""
    return ModelVersion.objects.create(
        model=model,
        number=number,
        run=run,
        storage_key=f"models/{model.pk}/v{number}.zip",
        size=1,
        file_count=1,
        sha256=f"{number:02x}" * 32,
    )
