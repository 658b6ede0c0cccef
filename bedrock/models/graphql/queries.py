"""Queries of models and model versions."""

from __future__ import annotations

import strawberry
import strawberry_django
from django.db.models import QuerySet
from strawberry import Info
from strawberry_django.relay import DjangoListConnection

from bedrock.graphql.scalars import parse_id
from bedrock.graphql.viewer import viewer_of
from bedrock.models.graphql.types import ModelType, ModelVersionType
from bedrock.models.models import Model, ModelVersion
from bedrock.models.selectors import models_for


@strawberry.type
class ModelQueries:
    @strawberry_django.connection(  # type: ignore[type-var]  # stubs want relay.Node
        DjangoListConnection[ModelType],  # type: ignore[type-var]  # stubs want relay.Node
        description="Models of your projects.",
    )
    def models(self, info: Info) -> QuerySet[Model]:
        return models_for(viewer_of(info).user).select_related(None)

    @strawberry_django.field(
        description="A model; null if you cannot see it.", graphql_type=ModelType | None
    )
    def model(self, info: Info, id: strawberry.ID) -> QuerySet[Model] | None:
        pk = parse_id(id)
        if pk is None:
            return None
        return models_for(viewer_of(info).user).select_related(None).filter(pk=pk)

    @strawberry_django.field(
        description="A model version; null if you cannot see it. A run's token sees the version "
        "its run scores with.",
        graphql_type=ModelVersionType | None,
    )
    def model_version(self, info: Info, id: strawberry.ID) -> QuerySet[ModelVersion] | None:
        # ModelVersionType.get_queryset limits this to what the caller may see.
        pk = parse_id(id)
        return ModelVersion.objects.filter(pk=pk) if pk is not None else None
