"""Reads of models and versions scoped to a user."""

from __future__ import annotations

from django.db.models import QuerySet

from bedrock.models.models import Model, ModelVersion
from bedrock.pipelines.selectors import User, projects_for


def models_for(user: User) -> QuerySet[Model]:
    return Model.objects.select_related("project").filter(project__in=projects_for(user))


def model_versions_for(user: User) -> QuerySet[ModelVersion]:
    return ModelVersion.objects.select_related("model__project", "run__pipeline").filter(
        model__project__in=projects_for(user)
    )
