"""GraphQL types of projects and pipelines. Every field is listed; nothing is exposed by default."""

from __future__ import annotations

import enum
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Annotated

import strawberry
import strawberry_django
from strawberry import auto
from strawberry_django.relay import DjangoListConnection

from bedrock.envconfig import format_duration
from bedrock.graphql.types import ScopedType
from bedrock.pipelines.graphql.filters import (
    DatedInstallsEnum,
    PipelineFilter,
    PipelineKindEnum,
    PipelineOrder,
    ProjectFilter,
    ProjectOrder,
    PublishPolicyEnum,
    RoleEnum,
)
from bedrock.pipelines.models import Membership, Pipeline, Project
from bedrock.pipelines.selectors import memberships_for, pipelines_for, projects_for
from bedrock.pipelines.spec.model import Problem

if TYPE_CHECKING:
    from django.db.models import QuerySet

    from bedrock.events.graphql.types import WebhookType
    from bedrock.models.graphql.types import ModelType
    from bedrock.runs.graphql.types import RunType
    from bedrock.runs.models import Run
    from bedrock.secrets.graphql.types import SecretType


@strawberry_django.type(
    Project,
    name="Project",
    description="A team: its pipelines and models belong to it; members hold a role in it.",
    filters=ProjectFilter,
    ordering=ProjectOrder,
)
class ProjectType(ScopedType, selector=projects_for):
    id: auto
    name: auto
    description: auto
    created_at: auto
    memberships: list[MembershipType] = strawberry_django.field(
        name="members", description="Who holds which role in the project, by username."
    )
    webhooks: list[Annotated[WebhookType, strawberry.lazy("bedrock.events.graphql.types")]] = (
        strawberry_django.field(description="Listed to the project's admins only.")
    )

    @classmethod
    def scope_for_run(cls, queryset: QuerySet[Project], run: Run) -> QuerySet[Project]:
        return queryset.filter(pipelines=run.pipeline_id)


@strawberry_django.type(Membership, name="Membership", description="A user's role in one project.")
class MembershipType(ScopedType, selector=memberships_for):
    role: RoleEnum
    created_at: auto

    @strawberry_django.field(only=["user__username"], select_related=["user"])
    def username(self, root: Membership) -> str:
        return root.user.username


@strawberry_django.type(
    Pipeline,
    name="Pipeline",
    description="A Git repository and the bedrock.hcl in it, run as training or batch scoring.",
    filters=PipelineFilter,
    ordering=PipelineOrder,
)
class PipelineType(ScopedType, selector=partial(pipelines_for, include_archived=True)):
    id: auto
    project: ProjectType
    name: auto
    git_url: auto
    branch: auto
    config_path: auto
    kind: PipelineKindEnum
    dated_installs: DatedInstallsEnum = strawberry_django.field(
        description="Whether runs' pip installs resolve as of their commit's date."
    )
    publish_policy: PublishPolicyEnum = strawberry_django.field(
        description="Which runs publish model versions."
    )
    model: Annotated[ModelType, strawberry.lazy("bedrock.models.graphql.types")] | None
    created_at: auto
    archived_at: datetime | None
    runs: DjangoListConnection[  # type: ignore[type-var]  # stubs want relay.Node
        Annotated[RunType, strawberry.lazy("bedrock.runs.graphql.types")]
    ] = strawberry_django.connection(description="The pipeline's runs, newest first.")
    secrets: DjangoListConnection[  # type: ignore[type-var]  # stubs want relay.Node
        Annotated[SecretType, strawberry.lazy("bedrock.secrets.graphql.types")]
    ] = strawberry_django.connection(description="Names and update times; never the values.")

    @strawberry_django.field(only=["max_run_time"], description="Such as 72h, 30m or 7d.")
    def max_run_time(self, root: Pipeline) -> str:
        return format_duration(root.max_run_time)

    @strawberry_django.field(only=["archived_at"])
    def archived(self, root: Pipeline) -> bool:
        return root.archived

    @classmethod
    def scope_for_run(cls, queryset: QuerySet[Pipeline], run: Run) -> QuerySet[Pipeline]:
        return queryset.filter(pk=run.pipeline_id)


@strawberry.enum(name="ProblemSeverity")
class ProblemSeverity(enum.Enum):
    ERROR = "error"
    WARNING = "warning"


@strawberry.type(
    name="ConfigProblem",
    description="One error or warning in a bedrock.hcl, with where it is when that is known.",
)
class ConfigProblemType:
    path: str = strawberry.field(description="The key path, such as train.step.train.image.")
    message: str
    line: int | None = strawberry.field(description="1-based.")
    column: int | None = strawberry.field(description="1-based.")
    severity: ProblemSeverity

    @classmethod
    def from_problem(cls, problem: Problem) -> ConfigProblemType:
        return cls(
            path=problem.path,
            message=problem.message,
            line=problem.line,
            column=problem.column,
            severity=ProblemSeverity(problem.severity),
        )


@strawberry.type(description="The outcome of checking a bedrock.hcl.")
class ConfigCheck:
    valid: bool = strawberry.field(description="No errors; warnings may remain.")
    problems: list[ConfigProblemType] = strawberry.field(description="In file order.")
