"""Mutations of model versions: describe, deprecate (and undo it), delete. Each calls the service
the model page calls; a version outside the caller's projects is reported as not found."""

from __future__ import annotations

import strawberry
import strawberry_django
from strawberry import Info

from bedrock.graphql.errors import get_visible
from bedrock.graphql.viewer import acting_user
from bedrock.models.graphql.types import ModelVersionType
from bedrock.models.models import ModelVersion
from bedrock.models.selectors import model_versions_for
from bedrock.models.services import (
    model_version_delete,
    model_version_deprecate,
    model_version_undeprecate,
    model_version_update,
)
from bedrock.pipelines.selectors import User


def _version(info: Info, id: strawberry.ID) -> tuple[User, ModelVersion]:
    user = acting_user(info)
    return user, get_visible(model_versions_for(user), id, "model version")


@strawberry.type
class ModelVersionMutations:
    @strawberry_django.mutation(handle_django_errors=True, graphql_type=ModelVersionType)
    def update_model_version(self, info: Info, id: strawberry.ID, description: str) -> ModelVersion:
        """Describe a version (at most 10,000 characters). A project developer or admin."""
        user, version = _version(info, id)
        return model_version_update(actor=user, version=version, description=description)

    @strawberry_django.mutation(handle_django_errors=True, graphql_type=ModelVersionType)
    def deprecate_model_version(self, info: Info, id: strawberry.ID) -> ModelVersion:
        """Stop offering a version for new runs; it stays downloadable. A project admin."""
        user, version = _version(info, id)
        return model_version_deprecate(actor=user, version=version)

    @strawberry_django.mutation(handle_django_errors=True, graphql_type=ModelVersionType)
    def undeprecate_model_version(self, info: Info, id: strawberry.ID) -> ModelVersion:
        """Offer a deprecated version again. A project admin."""
        user, version = _version(info, id)
        return model_version_undeprecate(actor=user, version=version)

    @strawberry_django.mutation(handle_django_errors=True, graphql_type=ModelVersionType)
    def delete_model_version(self, info: Info, id: strawberry.ID) -> ModelVersion:
        """Delete a version's archive, keeping the version as a tombstone. A project admin;
        refused while an alias points at it."""
        user, version = _version(info, id)
        return model_version_delete(actor=user, version=version)
