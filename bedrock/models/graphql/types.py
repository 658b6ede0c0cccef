"""GraphQL types of models and model versions; a version's archive is reached by `downloadUrl`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import strawberry
import strawberry_django
from django.db.models import QuerySet
from django.urls import reverse
from strawberry import Info, auto
from strawberry_django.relay import DjangoListConnection

from bedrock.models.graphql.filters import (
    ModelFilter,
    ModelOrder,
    ModelVersionFilter,
    ModelVersionOrder,
)
from bedrock.models.models import Model, ModelVersion
from bedrock.pipelines.graphql.scalars import BigInt
from bedrock.pipelines.selectors import projects_for
from bedrock.secrets.graphql.viewer import viewer_of

if TYPE_CHECKING:
    from bedrock.pipelines.graphql.types import ProjectType
    from bedrock.runs.graphql.types import RunType


@strawberry_django.type(
    Model,
    name="Model",
    description="A trained model: the versions its training pipelines publish.",
    filters=ModelFilter,
    ordering=ModelOrder,
)
class ModelType:
    id: auto
    project: Annotated[ProjectType, strawberry.lazy("bedrock.pipelines.graphql.types")]
    name: auto
    description: auto
    created_at: auto
    versions: DjangoListConnection[
        Annotated[ModelVersionType, strawberry.lazy("bedrock.models.graphql.types")]
    ] = strawberry_django.connection(description="Newest first.")


@strawberry_django.type(
    ModelVersion,
    name="ModelVersion",
    description="One published /artefact archive (ZIP), complete and verified.",
    filters=ModelVersionFilter,
    ordering=ModelVersionOrder,
)
class ModelVersionType:
    id: auto
    model: ModelType
    number: auto
    # The training run that produced this version. (A strawberry_django.field() here, for a
    # description, sends strawberry into a loop while the two modules import each other.)
    run: Annotated[RunType, strawberry.lazy("bedrock.runs.graphql.types")] | None
    size: BigInt = strawberry_django.field(description="Archive size in bytes.")
    sha256: auto
    file_count: auto
    created_at: auto

    @strawberry_django.field(only=["number", "model__name"], select_related=["model"])
    def filename(self, root: ModelVersion) -> str:
        return root.filename

    @strawberry_django.field(
        only=["id"],
        description="Where to GET the ZIP, with the same credentials as this request.",
    )
    def download_url(self, root: ModelVersion, info: Info) -> str:
        path = reverse("model_version_download", args=[root.pk])
        return info.context.request.build_absolute_uri(path)

    @classmethod
    def get_queryset(
        cls, queryset: QuerySet[ModelVersion], info: Info, **kwargs
    ) -> QuerySet[ModelVersion]:
        # Also applied to nested lists (a model's versions): a run token sees its input version.
        viewer = viewer_of(info)
        if viewer.run is not None:
            if viewer.run.input_model_version_id is None:
                return queryset.none()
            return queryset.filter(pk=viewer.run.input_model_version_id)
        return queryset.filter(model__project__in=projects_for(viewer.user))
