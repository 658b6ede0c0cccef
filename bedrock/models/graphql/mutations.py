"""Mutations of models: creating one and editing its name, description and retention. Each calls
the service the UI calls."""

from __future__ import annotations

from typing import Any

import strawberry
import strawberry_django
from django.core.exceptions import NON_FIELD_ERRORS
from strawberry import UNSET, Info

from bedrock.graphql.errors import argument_names, get_visible
from bedrock.graphql.viewer import acting_user
from bedrock.models.graphql.types import ModelType
from bedrock.models.models import Model
from bedrock.models.selectors import models_for
from bedrock.models.services import model_create, model_update
from bedrock.pipelines.graphql.mutations import project_of

# A model's one error not on a field is its name taken in the project (a unique pair).
NAME_TAKEN: dict[str, str] = {str(NON_FIELD_ERRORS): "name"}


@strawberry.input(description="A new model, for a project you administer.")
class CreateModelInput:
    project_id: strawberry.ID
    name: str = strawberry.field(
        description="Letters, digits, '-', '_' and '.'; unique in its project."
    )
    description: str = ""


@strawberry.input(description="What to change in a model; fields left out stay as they are.")
class UpdateModelInput:
    name: str | None = UNSET
    description: str | None = UNSET
    keep_versions: int | None = strawberry.field(
        default=UNSET,
        description="Retention: keep the newest this many versions (at least 1), with those an "
        "alias points at or a run used recently. null keeps every version.",
    )


@strawberry.type
class ModelMutations:
    @strawberry_django.mutation(handle_django_errors=True, graphql_type=ModelType)
    def create_model(self, info: Info, data: CreateModelInput) -> Model:
        """Create a model for a project's training pipelines to publish versions of."""
        user, project = project_of(info, data.project_id)
        with argument_names(**NAME_TAKEN):
            return model_create(
                actor=user, project=project, name=data.name, description=data.description
            )

    @strawberry_django.mutation(handle_django_errors=True, graphql_type=ModelType)
    def update_model(self, info: Info, id: strawberry.ID, data: UpdateModelInput) -> Model:
        """Rename, describe or set the retention of a model of a project you administer."""
        user = acting_user(info)
        model = get_visible(models_for(user), id, "model")
        changes: dict[str, Any] = {"name": model.name, "description": model.description}
        for name in ("name", "description"):
            if (value := getattr(data, name)) is not UNSET and value is not None:
                changes[name] = value
        if data.keep_versions is not UNSET:
            changes["keep_versions"] = data.keep_versions
        with argument_names(**NAME_TAKEN):
            return model_update(actor=user, model=model, **changes)
