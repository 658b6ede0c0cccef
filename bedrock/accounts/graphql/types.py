"""GraphQL types of API tokens: names and times, never a token or its hash."""

from __future__ import annotations

from datetime import datetime

import strawberry
import strawberry_django
from strawberry import auto

from bedrock.accounts.models import ApiToken
from bedrock.accounts.selectors import api_tokens_for
from bedrock.graphql.types import ScopedType


@strawberry_django.type(
    ApiToken, name="ApiToken", description="One of your API tokens; the token itself is not kept."
)
class ApiTokenType(ScopedType, selector=api_tokens_for):
    id: auto
    name: auto
    prefix: str = strawberry_django.field(description="The token's first characters.")
    created_at: auto
    last_used_at: datetime | None
    expires_at: datetime | None
    read_only: bool = strawberry_django.field(description="Queries only; mutations are refused.")
    revoked_at: datetime | None


@strawberry.type(description="A new API token. `token` is shown this once and never again.")
class CreatedApiToken:
    token: str
    # The token's model, served as an ApiToken: strawberry resolves its fields from it.
    api_token: ApiToken = strawberry.field(graphql_type=ApiTokenType)
