"""GraphQL types of models and model versions; a version's archive is reached by `downloadUrl`,
the files inside it by `files`."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlencode

import strawberry
import strawberry_django
from django.core.exceptions import ObjectDoesNotExist
from django.db.models import Prefetch, Q, QuerySet
from django.urls import reverse
from strawberry import Info, auto
from strawberry_django.relay import DjangoListConnection

from bedrock.graphql.scalars import BigInt
from bedrock.graphql.types import ScopedType
from bedrock.models.aliases import alias_changes_for, aliases_for
from bedrock.models.artefacts import BrowseError
from bedrock.models.graphql.filters import (
    ModelFilter,
    ModelOrder,
    ModelVersionFilter,
    ModelVersionOrder,
)
from bedrock.models.models import Model, ModelAlias, ModelAliasChange, ModelVersion
from bedrock.models.selectors import model_version_scope, model_versions_for, models_for
from bedrock.models.services import model_version_files
from bedrock.pipelines.models import Pipeline
from bedrock.runs.models import Run
from bedrock.tracking.graphql.types import MetricType
from bedrock.tracking.models import Metric

if TYPE_CHECKING:
    from bedrock.pipelines.graphql.types import ProjectType
    from bedrock.runs.graphql.types import RunType


# --- aliases ---
@strawberry_django.filter_type(ModelAliasChange)
class ModelAliasChangeFilter:
    alias: str | None = strawberry_django.filter_field(description="One alias's changes only.")


def _username(user: Any) -> str | None:
    return user.username if user is not None else None


@strawberry_django.type(
    ModelAlias, name="ModelAlias", description="A name such as production, naming one version."
)
class ModelAliasType(ScopedType, selector=aliases_for):
    name: auto
    version: Annotated[ModelVersionType, strawberry.lazy("bedrock.models.graphql.types")]
    updated_at: auto

    @strawberry_django.field(
        select_related=["updated_by"],
        only=["updated_by__username"],
        description="The username of who last set or moved it; null for the platform.",
    )
    def updated_by(self, root: ModelAlias) -> str | None:
        return _username(root.updated_by)


@strawberry_django.type(
    ModelAliasChange,
    name="ModelAliasChange",
    description="One change of an alias: set (no fromVersion), moved, or removed (no toVersion).",
)
class ModelAliasChangeType(ScopedType, selector=alias_changes_for):
    id: auto
    alias: auto
    from_version: (
        Annotated[ModelVersionType, strawberry.lazy("bedrock.models.graphql.types")] | None
    )
    to_version: Annotated[ModelVersionType, strawberry.lazy("bedrock.models.graphql.types")] | None
    note: auto
    created_at: auto

    @strawberry_django.field(
        select_related=["actor"],
        only=["actor__username"],
        description="The username of who made the change; null for the platform.",
    )
    def actor(self, root: ModelAliasChange) -> str | None:
        return _username(root.actor)


# --- end of aliases ---


@strawberry_django.type(
    Model,
    name="Model",
    description="A trained model: the versions its training pipelines publish.",
    filters=ModelFilter,
    ordering=ModelOrder,
)
class ModelType(ScopedType, selector=models_for):
    id: auto
    project: Annotated[ProjectType, strawberry.lazy("bedrock.pipelines.graphql.types")]
    name: auto
    description: auto
    created_at: auto
    versions: DjangoListConnection[  # type: ignore[type-var]  # stubs want relay.Node
        Annotated[ModelVersionType, strawberry.lazy("bedrock.models.graphql.types")]
    ] = strawberry_django.connection(description="Newest first.")
    # --- aliases ---
    aliases: list[ModelAliasType] = strawberry_django.field(
        description="The model's aliases, by name."
    )
    alias_history: DjangoListConnection[ModelAliasChangeType] = strawberry_django.connection(  # type: ignore[type-var]  # stubs want relay.Node
        field_name="alias_changes",
        filters=ModelAliasChangeFilter,
        description="Every change of the model's aliases, newest first; "
        '`filters: {alias: "production"}` for one alias.',
    )
    # --- end of aliases ---

    @classmethod
    def scope_for_run(cls, queryset: QuerySet[Model], run: Run) -> QuerySet[Model]:
        # The pipeline's model, and the model of the version the run scores with.
        pipeline_model = Pipeline.objects.filter(pk=run.pipeline_id).values("model_id")
        scoring = ModelVersion.objects.filter(scoring_runs=run.pk).values("model_id")
        return queryset.filter(Q(pk__in=pipeline_model) | Q(pk__in=scoring))


def training_run(info: Info) -> Prefetch[Any]:
    """A version's training run, scoped as `run` is: merged with the optimizer's own prefetch
    when the query asks for `run` too."""
    from bedrock.runs.graphql.types import RunType  # the two modules import each other

    return Prefetch("run", queryset=RunType.get_queryset(Run.objects.only("pk"), info))


def training_run_metrics(info: Info) -> Prefetch[Any]:
    """The metrics of a version's training run the caller may read, under an attribute of their
    own: the query may ask for the run's `metrics` too, with other columns.

    A lookup of its own rather than one nested in `training_run`'s: Django walks the prefetches
    nested under a reverse relation twice, and may swap the run objects in between (a run's
    `outputModelVersion.run` is that run), so this lookup must be able to run on either.
    """
    metrics = MetricType.get_queryset(Metric.objects.all(), info)
    return Prefetch("run__metrics", queryset=metrics, to_attr="visible_metrics")


# Files per page at most: a page is built from the central directory in one pass, and a client
# that wants them all asks for the next page.
MAX_FILES_PER_PAGE = 1000


@strawberry.type(name="ModelVersionFile", description="One file inside a model version's archive.")
class ModelVersionFileType:
    name: str = strawberry.field(description="Its path inside the archive, with / separators.")
    size: BigInt = strawberry.field(description="Its size in bytes, uncompressed.")
    compressed_size: BigInt = strawberry.field(description="The bytes it takes in the archive.")
    url: str = strawberry.field(
        description="Where to GET this file alone, with the same credentials as this request."
    )


@strawberry.type(
    name="ModelVersionFilePage",
    description="Some of a model version's files, in archive order, and how many there are.",
)
class ModelVersionFilePage:
    total_count: int
    items: list[ModelVersionFileType]


@strawberry_django.type(
    ModelVersion,
    name="ModelVersion",
    description="One published /artefact archive (ZIP), complete and verified.",
    filters=ModelVersionFilter,
    ordering=ModelVersionOrder,
)
class ModelVersionType(ScopedType, selector=model_versions_for, scope=model_version_scope):
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
    ref: str = strawberry_django.field(description="The ref its training run was asked for.")
    branch: str = strawberry_django.field(
        description="The pipeline's branch when the run was of it; empty for a tag, a commit or "
        "another branch."
    )
    description: auto
    deprecated_at: datetime | None = strawberry_django.field(
        description="When it stopped being offered for new runs; it is still downloadable."
    )
    deleted_at: datetime | None = strawberry_django.field(
        description="When its archive was deleted; it can no longer be downloaded or scored with."
    )

    @strawberry_django.field(only=["number", "model__name"], select_related=["model"])
    def filename(self, root: ModelVersion) -> str:
        return root.filename

    @strawberry_django.field(
        only=["id", "deleted_at"],
        description=(
            "Where to GET the ZIP, with the same credentials as this request. Bedrock checks "
            "membership, then redirects to a signed storage URL valid for a few minutes (or "
            "streams the file, with Range support, from local storage). Null once the version "
            "is deleted."
        ),
    )
    def download_url(self, root: ModelVersion, info: Info) -> str | None:
        """Bedrock's own URL, never the signed storage URL itself.

        A signed URL is a bearer credential that skips Bedrock's membership check: put in API
        answers it would be logged, cached and passed on with them, and it would have expired by
        the time a client follows a result it kept. Bedrock's URL checks membership when it is
        followed and signs a fresh URL then, so a download never bypasses the check.
        """
        if root.deleted_at is not None:
            return None
        path = reverse("model_version_download", args=[root.pk])
        return info.context.request.build_absolute_uri(path)

    @strawberry_django.field(
        only=["id", "storage_key", "size"],
        description=(
            "The files inside the archive (directories left out), read from its central "
            f"directory without downloading it; `limit` at most {MAX_FILES_PER_PAGE}."
        ),
    )
    def files(
        self, root: ModelVersion, info: Info, offset: int = 0, limit: int = 100
    ) -> ModelVersionFilePage:
        # Offsets, not cursors: an archive never changes, so a page's offset always means the
        # same files. Every page costs the same few ranged reads of the central directory.
        if offset < 0:
            raise ValueError(f"offset must be 0 or more, got {offset}.")
        if not 1 <= limit <= MAX_FILES_PER_PAGE:
            raise ValueError(f"limit must be between 1 and {MAX_FILES_PER_PAGE}, got {limit}.")
        try:
            entries = model_version_files(version=root)
        except FileNotFoundError:
            raise ValueError("The archive of this model version is missing from storage.") from None
        except BrowseError as exc:
            raise ValueError(f"The archive of this model version cannot be listed: {exc}") from None
        path = reverse("model_version_file", args=[root.pk])
        request = info.context.request
        return ModelVersionFilePage(
            total_count=len(entries),
            items=[
                ModelVersionFileType(
                    name=entry.name,
                    size=BigInt(entry.size),
                    compressed_size=BigInt(entry.compressed_size),
                    url=request.build_absolute_uri(f"{path}?{urlencode({'name': entry.name})}"),
                )
                for entry in entries[offset : offset + limit]
            ],
        )

    @strawberry_django.field(
        only=["run"],
        prefetch_related=[training_run, training_run_metrics],
        graphql_type=list[MetricType],
        description="The metrics of the training run that produced this version.",
    )
    def metrics(self, root: ModelVersion, info: Info) -> list[Metric]:
        try:
            run = root.run
        except ObjectDoesNotExist:  # the training run is not the caller's to read
            return []
        if not hasattr(run, "visible_metrics"):  # reached where the optimizer did not prefetch
            return list(MetricType.get_queryset(Metric.objects.filter(run=run.pk), info))
        return run.visible_metrics

    # --- aliases ---
    @strawberry_django.field(
        only=["id"],
        prefetch_related=[
            Prefetch("aliases", queryset=ModelAlias.objects.only("id", "name", "version_id"))
        ],
        description="The names of the aliases pointing at this version.",
    )
    def aliases(self, root: ModelVersion) -> list[str]:
        return sorted(alias.name for alias in root.aliases.all())

    # --- end of aliases ---

    @classmethod
    def scope_for_run(cls, queryset: QuerySet[ModelVersion], run: Run) -> QuerySet[ModelVersion]:
        # The version the run scores with, if any.
        if run.input_model_version_id is None:
            return queryset.none()
        return queryset.filter(pk=run.input_model_version_id)
