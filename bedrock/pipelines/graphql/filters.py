"""Filters and orderings of projects and pipelines, and the pipeline kind they compare."""

from __future__ import annotations

from typing import TYPE_CHECKING

import strawberry
import strawberry_django
from strawberry import UNSET, auto

from bedrock.graphql.filters import DateTimeFilter, IDFilter, TextFilter
from bedrock.graphql.scalars import choices_enum
from bedrock.pipelines.models import (
    DatedInstalls,
    Pipeline,
    PipelineKind,
    Project,
    PublishPolicy,
    Role,
)

if TYPE_CHECKING:
    # The enum is built at runtime, which mypy cannot follow; its members mirror these.
    PipelineKindEnum = PipelineKind
    DatedInstallsEnum = DatedInstalls
    PublishPolicyEnum = PublishPolicy
    RoleEnum = Role
else:
    PipelineKindEnum = choices_enum(
        PipelineKind,
        "PipelineKind",
        "TRAINING runs `train` and publishes model versions; "
        "BATCH_SCORING runs `batch_score` with a chosen model version.",
    )
    DatedInstallsEnum = choices_enum(
        DatedInstalls,
        "DatedInstalls",
        "Whether the steps' pip installs resolve as of the run's commit date: ON, OFF (the "
        "latest releases) or DEFAULT (as the server is set).",
    )
    PublishPolicyEnum = choices_enum(
        PublishPolicy,
        "PublishPolicy",
        "Which training runs publish model versions: BRANCH, runs of the pipeline's branch "
        "only (a run of another ref keeps its archive with the run); ANY, runs of any ref.",
    )
    RoleEnum = choices_enum(
        Role,
        "Role",
        "A member's role in a project: VIEWER reads, DEVELOPER also starts and stops runs, "
        "ADMIN also changes the project, its pipelines, models and members.",
    )


@strawberry.input(description="Compare a pipeline kind.")
class PipelineKindFilter:
    exact: PipelineKindEnum | None = UNSET
    in_list: list[PipelineKindEnum] | None = UNSET


@strawberry_django.filter_type(Project)
class ProjectFilter:
    id: IDFilter | None
    name: TextFilter | None


@strawberry_django.order_type(Project)
class ProjectOrder:
    name: auto
    created_at: auto


@strawberry_django.filter_type(Pipeline)
class PipelineFilter:
    id: IDFilter | None
    project_id: IDFilter | None
    name: TextFilter | None
    kind: PipelineKindFilter | None
    created_at: DateTimeFilter | None


@strawberry_django.order_type(Pipeline)
class PipelineOrder:
    id: auto
    name: auto
    created_at: auto
