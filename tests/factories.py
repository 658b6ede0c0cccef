"""Small builders for test data: plain functions, as the domain needs no factory library."""

from __future__ import annotations

import itertools

from django.contrib.auth import get_user_model

from bedrock.models.models import Model
from bedrock.pipelines.models import Membership, Pipeline, PipelineKind, Project, Role

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
