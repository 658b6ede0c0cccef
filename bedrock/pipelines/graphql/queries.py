"""Queries of projects and pipelines, scoped by ``bedrock.pipelines.selectors``."""

from __future__ import annotations

import strawberry
import strawberry_django
from django.db.models import QuerySet
from strawberry import Info
from strawberry_django.relay import DjangoListConnection

from bedrock.graphql.scalars import parse_id
from bedrock.graphql.viewer import viewer_of
from bedrock.pipelines.graphql.types import PipelineType, ProjectType
from bedrock.pipelines.models import Pipeline, Project
from bedrock.pipelines.selectors import pipelines_for, projects_for


@strawberry.type
class PipelineQueries:
    @strawberry_django.connection(  # type: ignore[type-var]  # stubs want relay.Node
        DjangoListConnection[ProjectType],  # type: ignore[type-var]  # stubs want relay.Node
        description="The projects you are a member of.",
    )
    def projects(self, info: Info) -> QuerySet[Project]:
        return projects_for(viewer_of(info).user)

    @strawberry_django.connection(  # type: ignore[type-var]  # stubs want relay.Node
        DjangoListConnection[PipelineType],  # type: ignore[type-var]  # stubs want relay.Node
        description="Pipelines of your projects; archived ones only with `includeArchived`.",
    )
    def pipelines(self, info: Info, include_archived: bool = False) -> QuerySet[Pipeline]:
        # The optimizer chooses the joins; the selector's own select_related would clash with it.
        user = viewer_of(info).user
        return pipelines_for(user, include_archived=include_archived).select_related(None)

    @strawberry_django.field(
        description="A pipeline, archived or not; null if you cannot see it.",
        graphql_type=PipelineType | None,
    )
    def pipeline(self, info: Info, id: strawberry.ID) -> QuerySet[Pipeline] | None:
        pk = parse_id(id)
        if pk is None:
            return None
        user = viewer_of(info).user
        return pipelines_for(user, include_archived=True).select_related(None).filter(pk=pk)
