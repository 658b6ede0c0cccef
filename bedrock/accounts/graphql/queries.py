"""Queries of your own API tokens."""

from __future__ import annotations

import strawberry
import strawberry_django
from django.db.models import QuerySet
from strawberry import Info
from strawberry_django.relay import DjangoListConnection

from bedrock.accounts.graphql.types import ApiTokenType
from bedrock.accounts.models import ApiToken
from bedrock.accounts.selectors import api_tokens_for
from bedrock.graphql.viewer import viewer_of


@strawberry.type
class AccountQueries:
    @strawberry_django.connection(  # type: ignore[type-var]  # stubs want relay.Node
        DjangoListConnection[ApiTokenType],  # type: ignore[type-var]  # stubs want relay.Node
        description="Your API tokens, newest first.",
    )
    def api_tokens(self, info: Info) -> QuerySet[ApiToken]:
        return api_tokens_for(viewer_of(info).user)
