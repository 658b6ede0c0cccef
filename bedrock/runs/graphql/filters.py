"""Filters and orderings of runs: by pipeline, status, time and a metric's latest value."""

from __future__ import annotations

from typing import TYPE_CHECKING

import strawberry
import strawberry_django
from django.db.models import OrderBy, Q, QuerySet
from strawberry import UNSET, auto

from bedrock.graphql.filters import DateTimeFilter, IDFilter, IntFilter, TextFilter
from bedrock.graphql.scalars import choices_enum
from bedrock.runs.models import Run, RunStatus, RunStep, Trigger
from bedrock.tracking.graphql.filters import MetricOrder, MetricValueFilter, by_metric, with_metric

if TYPE_CHECKING:
    # The enums are built at runtime, which mypy cannot follow; their members mirror these.
    RunStatusEnum = RunStatus
    TriggerEnum = Trigger
else:
    RunStatusEnum = choices_enum(
        RunStatus,
        "RunStatus",
        "ACCEPTED, QUEUED, RUNNING, STOPPING and UNKNOWN are active; REJECTED, SUCCEEDED, FAILED "
        "and STOPPED are final.",
    )
    TriggerEnum = choices_enum(Trigger, "RunTrigger", "What started a run.")


@strawberry.input(description="Compare a run status.")
class RunStatusFilter:
    exact: RunStatusEnum | None = UNSET
    in_list: list[RunStatusEnum] | None = UNSET


@strawberry_django.filter_type(Run)
class RunFilter:
    id: IDFilter | None
    pipeline_id: IDFilter | None
    number: IntFilter | None
    status: RunStatusFilter | None
    ref: TextFilter | None
    created_at: DateTimeFilter | None
    started_at: DateTimeFilter | None
    finished_at: DateTimeFilter | None

    @strawberry_django.filter_field(description="Runs with this metric, its latest value compared.")
    def metric(self, value: MetricValueFilter, prefix: str) -> Q:
        return with_metric(value, f"{prefix}pk")


@strawberry_django.order_type(Run)
class RunOrder:
    id: auto
    number: auto
    created_at: auto
    started_at: auto
    finished_at: auto

    @strawberry_django.order_field(
        description="By a metric's latest value, runs without it last; equal values newest first."
    )
    def metric(
        self, queryset: QuerySet[Run], value: MetricOrder, prefix: str
    ) -> tuple[QuerySet[Run], list[OrderBy | str]]:
        return by_metric(queryset, value, f"{prefix}pk")


@strawberry_django.filter_type(RunStep)
class RunStepFilter:
    name: TextFilter | None
    status: RunStatusFilter | None
