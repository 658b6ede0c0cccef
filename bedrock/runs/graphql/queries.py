"""Queries of runs; ``RunType.get_queryset`` limits them to what the caller may see."""

from __future__ import annotations

import strawberry
import strawberry_django
from django.db.models import QuerySet
from strawberry import Info

from bedrock.graphql.connections import CountedConnection
from bedrock.graphql.scalars import parse_id
from bedrock.runs.graphql.types import RunType
from bedrock.runs.models import Run


@strawberry.type
class RunQueries:
    @strawberry_django.connection(  # type: ignore[type-var]  # stubs want relay.Node
        CountedConnection[RunType],  # type: ignore[type-var]  # stubs want relay.Node
        description="Runs of your projects' pipelines, newest first; filter by pipeline, status "
        "and time.",
    )
    def runs(self, info: Info) -> QuerySet[Run]:
        return Run.objects.all()

    @strawberry_django.field(
        description="A run with its steps; null if you cannot see it.", graphql_type=RunType | None
    )
    def run(self, info: Info, id: strawberry.ID) -> QuerySet[Run] | None:
        pk = parse_id(id)
        return Run.objects.filter(pk=pk) if pk is not None else None
