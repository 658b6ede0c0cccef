"""Setting and deleting secrets, creating and revoking API tokens."""

from __future__ import annotations

import strawberry
import strawberry_django
from django.core.exceptions import ValidationError
from strawberry import Info

from bedrock.graphql.errors import get_visible
from bedrock.graphql.viewer import acting_user
from bedrock.pipelines.selectors import pipelines_for
from bedrock.secrets.graphql.types import ApiTokenType, CreatedApiToken, SecretType
from bedrock.secrets.models import ApiToken
from bedrock.secrets.services import (
    api_token_create,
    api_token_revoke,
    secret_delete,
    secret_set,
)


@strawberry.type(description="The outcome of deleting a secret.")
class DeletedSecret:
    name: str
    deleted: bool = strawberry.field(description="False if the pipeline had no such secret.")


@strawberry.type
class SecretMutations:
    @strawberry_django.mutation(handle_django_errors=True)
    def set_secret(
        self, info: Info, pipeline_id: strawberry.ID, name: str, value: str
    ) -> SecretType:
        """Create or replace a pipeline's secret (project developers and admins)."""
        user = acting_user(info)
        pipeline = get_visible(pipelines_for(user, include_archived=True), pipeline_id, "pipeline")
        return secret_set(actor=user, pipeline=pipeline, name=name, value=value)

    @strawberry_django.mutation(handle_django_errors=True)
    def delete_secret(self, info: Info, pipeline_id: strawberry.ID, name: str) -> DeletedSecret:
        """Delete a pipeline's secret (project developers and admins)."""
        user = acting_user(info)
        pipeline = get_visible(pipelines_for(user, include_archived=True), pipeline_id, "pipeline")
        deleted = secret_delete(actor=user, pipeline=pipeline, name=name)
        return DeletedSecret(name=name, deleted=deleted)

    @strawberry_django.mutation(handle_django_errors=True)
    def create_api_token(self, info: Info, name: str = "") -> CreatedApiToken:
        """Create an API token for yourself. The token is in this answer and nowhere else."""
        user = acting_user(info)
        if len(name) > 100:
            too_long = ValidationError("At most 100 characters.", code="invalid")
            raise ValidationError({"name": too_long})
        created = api_token_create(user=user, name=name)
        return CreatedApiToken(token=created.plaintext, api_token=created.token)

    @strawberry_django.mutation(handle_django_errors=True)
    def revoke_api_token(self, info: Info, id: strawberry.ID) -> ApiTokenType:
        """Revoke one of your API tokens (a site administrator may revoke anyone's)."""
        user = acting_user(info)
        tokens = ApiToken.objects.all() if user.is_superuser else user.api_tokens.all()
        return api_token_revoke(actor=user, token=get_visible(tokens, id, "API token"))
