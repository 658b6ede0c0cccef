"""Setting and deleting secrets."""

from __future__ import annotations

import strawberry
import strawberry_django
from strawberry import Info

from bedrock.graphql.errors import get_visible_pipeline
from bedrock.graphql.viewer import acting_user
from bedrock.secrets.graphql.types import SecretType
from bedrock.secrets.models import Secret
from bedrock.secrets.services import secret_delete, secret_set


@strawberry.type(description="The outcome of deleting a secret.")
class DeletedSecret:
    name: str
    deleted: bool = strawberry.field(description="False if the pipeline had no such secret.")


@strawberry.type
class SecretMutations:
    @strawberry_django.mutation(handle_django_errors=True, graphql_type=SecretType)
    def set_secret(self, info: Info, pipeline_id: strawberry.ID, name: str, value: str) -> Secret:
        """Create or replace a pipeline's secret (project developers and admins)."""
        user = acting_user(info)
        pipeline = get_visible_pipeline(user, pipeline_id)
        return secret_set(actor=user, pipeline=pipeline, name=name, value=value)

    @strawberry_django.mutation(handle_django_errors=True)
    def delete_secret(self, info: Info, pipeline_id: strawberry.ID, name: str) -> DeletedSecret:
        """Delete a pipeline's secret (project developers and admins)."""
        user = acting_user(info)
        pipeline = get_visible_pipeline(user, pipeline_id)
        deleted = secret_delete(actor=user, pipeline=pipeline, name=name)
        return DeletedSecret(name=name, deleted=deleted)
