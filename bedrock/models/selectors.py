"""Reads of models and versions scoped to a user."""

from __future__ import annotations

from django.db.models import Q, QuerySet

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


def model_version_scope(user: User) -> Q:
    """The versions the user may see, as a condition on versions: a model's list of versions
    filters by it in place, where ``pk IN (every visible version)`` would read them all first."""
    return Q(model__project__in=projects_for(user))


def model_versions_for(user: User) -> QuerySet[ModelVersion]:
    return ModelVersion.objects.select_related("model__project", "run__pipeline").filter(
        model_version_scope(user)
    )
