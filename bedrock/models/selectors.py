"""Reads of models and versions scoped to a user."""

from __future__ import annotations

from django.db.models import QuerySet

from bedrock.models.models import Model, ModelVersion
from bedrock.pipelines.selectors import User, projects_for, remember_role, role_of


def models_for(user: User) -> QuerySet[Model]:
    return Model.objects.select_related("project").filter(project__in=projects_for(user))


def model_with_role(user: User, pk: int) -> tuple[Model, str] | None:
    """A model the user may see and their role in its project, in one read."""
    model = models_for(user).annotate(caller_role=role_of(user, "project")).filter(pk=pk).first()
    if model is None:
        return None
    remember_role(model.project, user, model.caller_role)
    return model, model.caller_role


def model_versions_for(user: User) -> QuerySet[ModelVersion]:
    return ModelVersion.objects.select_related("model__project", "run__pipeline").filter(
        model__project__in=projects_for(user)
    )
