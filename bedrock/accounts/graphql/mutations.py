"""Creating and revoking API tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry
import strawberry_django
from django.core.exceptions import ValidationError
from strawberry import Info

from bedrock.accounts.graphql.types import ApiTokenType, CreatedApiToken
from bedrock.accounts.models import ApiToken
from bedrock.accounts.services import api_token_create, api_token_revoke
from bedrock.graphql.errors import get_visible
from bedrock.graphql.viewer import acting_user


@strawberry.type
class AccountMutations:
    @strawberry_django.mutation(handle_django_errors=True)
    def create_api_token(
        self,
        info: Info,
        name: str = "",
        expires_at: Annotated[
            datetime | None,
            strawberry.argument(
                description="When it stops working: in the future, at most "
                "BEDROCK_TOKEN_MAX_LIFETIME away (365 days unless configured). null never "
                "expires."
            ),
        ] = None,
        read_only: Annotated[
            bool, strawberry.argument(description="Queries only: every mutation is refused.")
        ] = False,
    ) -> CreatedApiToken:
        """Create an API token for yourself. The token is in this answer and nowhere else."""
        user = acting_user(info)
        if len(name) > 100:
            too_long = ValidationError("At most 100 characters.", code="invalid")
            raise ValidationError({"name": too_long})
        created = api_token_create(user=user, name=name, expires_at=expires_at, read_only=read_only)
        return CreatedApiToken(token=created.plaintext, api_token=created.token)

    @strawberry_django.mutation(handle_django_errors=True, graphql_type=ApiTokenType)
    def revoke_api_token(self, info: Info, id: strawberry.ID) -> ApiToken:
        """Revoke one of your API tokens (a site administrator may revoke anyone's)."""
        user = acting_user(info)
        tokens = ApiToken.objects.all() if user.is_superuser else user.api_tokens.all()
        return api_token_revoke(actor=user, token=get_visible(tokens, id, "API token"))
