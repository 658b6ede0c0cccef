"""Runs and their steps in GraphQL; a run's token hash, runner and heartbeat stay private."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
import strawberry_django
from django.db.models import QuerySet
from django.urls import reverse
from strawberry import Info, auto
from strawberry.scalars import JSON
from strawberry_django.relay import DjangoListConnection

from bedrock.envconfig import format_duration
from bedrock.graphql.scalars import BigInt
from bedrock.graphql.types import ScopedType
from bedrock.runs.graphql.filters import (
    RunFilter,
    RunOrder,
    RunStatusEnum,
    RunStepFilter,
    TriggerEnum,
)
from bedrock.runs.models import TERMINAL_STATUSES, Run, RunStep
from bedrock.runs.selectors import run_scope, run_step_scope, run_steps_for, runs_for
from bedrock.runs.workspace import read_log
from bedrock.tracking.graphql.types import (
    ChartType,
    MetricType,
    ParamType,
    logged_params_prefetch,
    run_params,
)

LOG_CHUNK = 1 << 20
LOG_START = BigInt(0)  # the default offset: the log from its first byte

if TYPE_CHECKING:
    from bedrock.models.graphql.types import ModelVersionType
    from bedrock.pipelines.graphql.types import PipelineType


@strawberry.type(description="Part of a step's log, and the offset to ask for next.")
class LogChunk:
    text: str
    next_offset: BigInt = strawberry.field(
        description="Pass this as `offset` next time to follow the log as it grows."
    )
    complete: bool = strawberry.field(
        description="The step has ended and this chunk reaches the end of its log."
    )


@strawberry_django.type(
    RunStep,
    name="RunStep",
    description="One step of a run, with its attempts, times and log.",
    filters=RunStepFilter,
)
class RunStepType(ScopedType, selector=run_steps_for, scope=run_step_scope):
    id: auto
    name: auto
    position: auto
    depends_on: list[str]
    status: RunStatusEnum
    attempts: auto
    retry_limit: auto
    started_at: datetime | None
    finished_at: datetime | None
    exit_code: int | None
    failure_reason: auto

    @strawberry_django.field(only=["log_key", "status"])
    def log(self, root: RunStep, offset: BigInt = LOG_START) -> LogChunk:
        """The log from byte ``offset``, at most 1 MiB at a time."""
        if offset < 0:
            raise ValueError("offset must be 0 or more: pass the nextOffset of the last chunk.")
        text, next_offset = read_log(root.log_key, offset, LOG_CHUNK)
        complete = root.status in TERMINAL_STATUSES and next_offset - offset < LOG_CHUNK
        return LogChunk(text=text, next_offset=BigInt(next_offset), complete=complete)

    @classmethod
    def scope_for_run(cls, queryset: QuerySet[RunStep], run: Run) -> QuerySet[RunStep]:
        return queryset.filter(run=run.pk)


@strawberry_django.type(
    Run,
    name="Run",
    description="One execution of a pipeline at one exact commit.",
    filters=RunFilter,
    ordering=RunOrder,
)
class RunType(ScopedType, selector=runs_for, scope=run_scope):
    id: auto
    number: auto
    pipeline: Annotated[PipelineType, strawberry.lazy("bedrock.pipelines.graphql.types")]
    status: RunStatusEnum
    ref: auto
    branch: str = strawberry_django.field(
        description="The branch the ref named when the run was created; empty for a tag or commit."
    )
    commit_sha: auto
    config_text: auto
    parameters: JSON
    input_model_version: (
        Annotated[ModelVersionType, strawberry.lazy("bedrock.models.graphql.types")] | None
    )
    # The version a training run published; a plain annotation, see ModelVersionType.run.
    output_model_version: (
        Annotated[ModelVersionType, strawberry.lazy("bedrock.models.graphql.types")] | None
    )
    trigger: TriggerEnum
    idempotency_key: str | None
    created_at: auto
    started_at: datetime | None
    finished_at: datetime | None
    failure_reason: auto
    exit_code: int | None
    unpublished_reason: str = strawberry_django.field(
        description="Why a training run published no version though it succeeded (its "
        "pipeline's publish policy); its archive is kept at `outputArchiveUrl`. Empty otherwise."
    )
    installs_as_of: datetime | None = strawberry_django.field(
        description="The date the steps' pip installs resolved packages as of (the commit's); "
        "null: the latest releases."
    )
    steps: DjangoListConnection[RunStepType] = strawberry_django.connection(  # type: ignore[type-var]  # stubs want relay.Node
        description="The steps in plan (dependency) order."
    )
    metrics: list[MetricType] = strawberry_django.field(
        description="What the run's steps logged, by name: each metric's latest value, and its "
        "series in `points`."
    )
    charts: list[ChartType] = strawberry_django.field(description="By name.")

    @strawberry_django.field(
        only=["parameters"],
        prefetch_related=[logged_params_prefetch],
        description="The run's effective parameters (source RUN), then those its steps logged "
        "(source STEP), each by name; a name may be in both.",
    )
    def params(self, root: Run) -> list[ParamType]:
        return run_params(root)

    @strawberry_django.field(
        only=["input_model_alias"],
        description="The model alias a batch scoring run was started with, as model@alias; "
        "inputModelVersion is the version it named then. Null when started with a version.",
    )
    def input_model_alias(self, root: Run) -> str | None:
        return root.input_model_alias or None

    @strawberry_django.field(
        only=["output_archive_key"],
        description="Where to GET the archive a run kept instead of publishing it, with the same "
        "credentials as this request; null when it kept none.",
    )
    def output_archive_url(self, root: Run, info: Info) -> str | None:
        if not root.output_archive_key:
            return None
        path = reverse("run_output_download", args=[root.pk])
        return info.context.request.build_absolute_uri(path)

    @strawberry_django.field(only=["max_run_time"], description="Such as 72h, 30m or 7d.")
    def max_run_time(self, root: Run) -> str:
        return format_duration(root.max_run_time)

    @strawberry_django.field(
        select_related=["triggered_by"],
        only=["triggered_by__username"],
        description="The username of who started the run; null for a schedule.",
    )
    def triggered_by(self, root: Run) -> str | None:
        return root.triggered_by.username if root.triggered_by is not None else None

    @classmethod
    def scope_for_run(cls, queryset: QuerySet[Run], run: Run) -> QuerySet[Run]:
        return queryset.filter(pk=run.pk)
