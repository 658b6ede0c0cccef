"""Setting, removing and rolling back a model's aliases, through ``bedrock.models.aliases``.

Each returns the model, so a client reads its aliases and their history in the same answer.
"""

from __future__ import annotations

import strawberry
import strawberry_django
from strawberry import Info

from bedrock.graphql.errors import argument_names, get_visible
from bedrock.graphql.viewer import acting_user
from bedrock.models.aliases import model_alias_remove, model_alias_rollback, model_alias_set
from bedrock.models.graphql.types import ModelType
from bedrock.models.models import Model
from bedrock.models.selectors import model_versions_for, models_for


def _visible_model(info: Info, model_id: strawberry.ID) -> Model:
    return get_visible(models_for(acting_user(info)), model_id, "model")


@strawberry.type
class ModelAliasMutations:
    @strawberry_django.mutation(handle_django_errors=True, graphql_type=ModelType)
    def set_model_alias(
        self,
        info: Info,
        model_id: strawberry.ID,
        alias: str,
        version_id: strawberry.ID,
        note: str = "",
    ) -> Model:
        """Point an alias of the model at one of its versions, creating or moving it (project
        admins). Setting it to the version it names already changes nothing."""
        model = _visible_model(info, model_id)
        # Any version the caller may see: the service names one of another model as such.
        version = get_visible(model_versions_for(acting_user(info)), version_id, "model version")
        with argument_names(name="alias", version="version_id"):
            model_alias_set(
                actor=acting_user(info), model=model, name=alias, version=version, note=note
            )
        return model

    @strawberry_django.mutation(handle_django_errors=True, graphql_type=ModelType)
    def remove_model_alias(
        self, info: Info, model_id: strawberry.ID, alias: str, note: str = ""
    ) -> Model:
        """Remove an alias of the model (project admins); its history stays."""
        model = _visible_model(info, model_id)
        with argument_names(name="alias"):
            model_alias_remove(actor=acting_user(info), model=model, name=alias, note=note)
        return model

    @strawberry_django.mutation(handle_django_errors=True, graphql_type=ModelType)
    def rollback_model_alias(self, info: Info, model_id: strawberry.ID, alias: str) -> Model:
        """Move an alias back to the version it named before its last change (project admins)."""
        model = _visible_model(info, model_id)
        with argument_names(name="alias", version="alias"):
            model_alias_rollback(actor=acting_user(info), model=model, name=alias)
        return model
