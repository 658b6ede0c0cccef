"""GraphQL types of secrets and API tokens: names and times, never a value or a token's hash."""

from __future__ import annotations

from datetime import datetime

import strawberry
import strawberry_django
from django.db.models import QuerySet
from strawberry import Info, auto

from bedrock.pipelines.selectors import projects_for
from bedrock.secrets.graphql.viewer import viewer_of
from bedrock.secrets.models import ApiToken, Secret


@strawberry_django.type(
    Secret, name="Secret", description="A pipeline's secret: its name and when it was last set."
)
class SecretType:
    name: auto
    updated_at: auto

    @classmethod
    def get_queryset(cls, queryset: QuerySet[Secret], info: Info, **kwargs) -> QuerySet[Secret]:
        viewer = viewer_of(info)
        if viewer.run is not None:
            return queryset.none()
        return queryset.filter(pipeline__project__in=projects_for(viewer.user))


@strawberry_django.type(
    ApiToken, name="ApiToken", description="One of your API tokens; the token itself is not kept."
)
class ApiTokenType:
    id: auto
    name: auto
    prefix: str = strawberry_django.field(description="The token's first characters.")
    created_at: auto
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None


@strawberry.type(description="A new API token. `token` is shown this once and never again.")
class CreatedApiToken:
    token: str
    api_token: ApiTokenType
