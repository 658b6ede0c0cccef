"""Queries of your own API tokens."""

from __future__ import annotations

import strawberry
import strawberry_django
from django.db.models import QuerySet
from strawberry import Info
from strawberry_django.relay import DjangoListConnection

from bedrock.graphql.viewer import viewer_of
from bedrock.secrets.graphql.types import ApiTokenType
from bedrock.secrets.models import ApiToken


@strawberry.type
class SecretQueries:
    @strawberry_django.connection(
        DjangoListConnection[ApiTokenType], description="Your API tokens, newest first."
    )
    def api_tokens(self, info: Info) -> QuerySet[ApiToken]:
        viewer = viewer_of(info)
        if not viewer.signed_in:
            return ApiToken.objects.none()
        return ApiToken.objects.filter(user=viewer.user)
