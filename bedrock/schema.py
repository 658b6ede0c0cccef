"""The one GraphQL schema, served at /graphql: each app's queries and mutations, composed.

The optimizer turns each query into a fixed number of SQL queries however many rows it lists;
the limits keep one request from asking for an unbounded amount of work.
"""

from __future__ import annotations

import strawberry
from strawberry.extensions import MaxAliasesLimiter, MaxTokensLimiter, QueryDepthLimiter
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types
from strawberry_django.optimizer import DjangoOptimizerExtension

from bedrock.accounts.graphql.mutations import AccountMutations
from bedrock.accounts.graphql.queries import AccountQueries
from bedrock.accounts.graphql.scope import ReadOnlyTokens
from bedrock.events.graphql.mutations import WebhookMutations
from bedrock.graphql.scalars import SCALAR_MAP
from bedrock.graphqlview import RequestChecks
from bedrock.models.graphql.alias_mutations import ModelAliasMutations
from bedrock.models.graphql.mutations import ModelMutations
from bedrock.models.graphql.queries import ModelQueries
from bedrock.models.graphql.version_mutations import ModelVersionMutations
from bedrock.pipelines.graphql.mutations import PipelineMutations, ProjectMutations
from bedrock.pipelines.graphql.queries import PipelineQueries
from bedrock.runs.graphql.mutations import RunMutations
from bedrock.runs.graphql.queries import RunQueries
from bedrock.secrets.graphql.mutations import SecretMutations

MAX_DEPTH = 12
MAX_ALIASES = 20
MAX_TOKENS = 5000

Query = merge_types("Query", (PipelineQueries, RunQueries, ModelQueries, AccountQueries))
Mutation = merge_types(
    "Mutation",
    (
        ProjectMutations,
        PipelineMutations,
        ModelMutations,
        ModelAliasMutations,
        ModelVersionMutations,
        RunMutations,
        SecretMutations,
        AccountMutations,
        WebhookMutations,
    ),
)

schema = strawberry.Schema(
    query=Query,
    mutation=Mutation,
    config=StrawberryConfig(scalar_map=SCALAR_MAP),
    extensions=[
        DjangoOptimizerExtension,
        lambda: QueryDepthLimiter(max_depth=MAX_DEPTH),
        lambda: MaxAliasesLimiter(max_alias_count=MAX_ALIASES),
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
        RequestChecks,
        ReadOnlyTokens,
    ],
)
