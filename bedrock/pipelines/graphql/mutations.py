"""Mutations of projects, their members and pipelines, and checking a bedrock.hcl. Each calls
the service the UI calls."""

from __future__ import annotations

from typing import Any

import strawberry
import strawberry_django
from django.core.exceptions import ValidationError
from strawberry import UNSET, Info

from bedrock.envconfig import parse_duration
from bedrock.graphql.errors import argument_names, get_visible, get_visible_pipeline
from bedrock.graphql.scalars import parse_id
from bedrock.graphql.viewer import acting_user
from bedrock.models.selectors import models_for
from bedrock.pipelines import spec
from bedrock.pipelines.graphql.filters import (
    DatedInstallsEnum,
    PipelineKindEnum,
    PublishPolicyEnum,
    RoleEnum,
)
from bedrock.pipelines.graphql.types import (
    ConfigCheck,
    ConfigProblemType,
    MembershipType,
    PipelineType,
    ProjectType,
)
from bedrock.pipelines.models import Membership, Pipeline, Project
from bedrock.pipelines.selectors import User, projects_for
from bedrock.pipelines.services import (
    membership_remove,
    membership_set,
    pipeline_archive,
    pipeline_create,
    pipeline_update,
    project_create,
    project_update,
)


@strawberry.input(description="A new pipeline. Only a project admin may create one.")
class CreatePipelineInput:
    project_id: strawberry.ID
    name: str
    git_url: str = strawberry.field(description="https:// or ssh:// (or user@host:path) URL.")
    kind: PipelineKindEnum
    branch: str | None = strawberry.field(default=UNSET, description="main unless given.")
    config_path: str | None = strawberry.field(
        default=UNSET, description="bedrock.hcl unless given."
    )
    model_id: strawberry.ID | None = strawberry.field(
        default=UNSET, description="The model a training pipeline publishes versions of."
    )
    max_run_time: str | None = strawberry.field(
        default=UNSET, description="Such as 90s, 30m, 72h or 7d; the site default unless given."
    )
    dated_installs: DatedInstallsEnum | None = strawberry.field(
        default=UNSET, description="DEFAULT unless given."
    )
    publish_policy: PublishPolicyEnum | None = strawberry.field(
        default=UNSET, description="BRANCH unless given."
    )


@strawberry.input(description="What to change in a pipeline; fields left out stay as they are.")
class UpdatePipelineInput:
    name: str | None = UNSET
    git_url: str | None = UNSET
    kind: PipelineKindEnum | None = UNSET
    branch: str | None = UNSET
    config_path: str | None = UNSET
    model_id: strawberry.ID | None = strawberry.field(
        default=UNSET, description="null removes the model (for a batch scoring pipeline)."
    )
    max_run_time: str | None = strawberry.field(default=UNSET, description="Such as 72h.")
    dated_installs: DatedInstallsEnum | None = UNSET
    publish_policy: PublishPolicyEnum | None = UNSET


def _pipeline_fields(user: User, data: CreatePipelineInput | UpdatePipelineInput) -> dict[str, Any]:
    """The service's keyword arguments from what the client sent, ids turned into objects."""
    fields: dict[str, Any] = {}
    for name in ("name", "git_url", "branch", "config_path"):
        value = getattr(data, name)
        if value is not UNSET and value is not None:
            fields[name] = value
    for name in ("kind", "dated_installs", "publish_policy"):
        choice = getattr(data, name)
        if choice is not UNSET and choice is not None:
            fields[name] = choice.value
    if data.model_id is None:
        fields["model"] = None
    elif data.model_id is not UNSET:
        model = models_for(user).filter(pk=parse_id(data.model_id) or 0).first()
        if model is None:
            raise ValidationError(
                {
                    "model_id": ValidationError(
                        f"There is no model with id {data.model_id}.", code="not_found"
                    )
                }
            )
        fields["model"] = model
    if data.max_run_time is not UNSET and data.max_run_time is not None:
        try:
            fields["max_run_time"] = parse_duration(data.max_run_time.strip())
        except ValueError as exc:
            raise ValidationError(
                {"max_run_time": ValidationError(f"{exc}.", code="invalid")}
            ) from None
    return fields


def project_of(info: Info, project_id: strawberry.ID) -> tuple[User, Project]:
    """The acting user and the project with ``project_id`` they may see, or NotFound."""
    user = acting_user(info)
    return user, get_visible(projects_for(user), project_id, "project")


def _pipeline(info: Info, pipeline_id: strawberry.ID) -> tuple[User, Pipeline]:
    user = acting_user(info)
    return user, get_visible_pipeline(user, pipeline_id)


@strawberry.type
class PipelineMutations:
    @strawberry_django.mutation(handle_django_errors=True, graphql_type=PipelineType)
    def create_pipeline(self, info: Info, data: CreatePipelineInput) -> Pipeline:
        """Create a pipeline in a project you administer."""
        user, project = project_of(info, data.project_id)
        with argument_names(model="model_id"):
            return pipeline_create(actor=user, project=project, **_pipeline_fields(user, data))

    @strawberry_django.mutation(handle_django_errors=True, graphql_type=PipelineType)
    def update_pipeline(self, info: Info, id: strawberry.ID, data: UpdatePipelineInput) -> Pipeline:
        """Change a pipeline of a project you administer."""
        user, pipeline = _pipeline(info, id)
        with argument_names(model="model_id"):
            return pipeline_update(actor=user, pipeline=pipeline, **_pipeline_fields(user, data))

    @strawberry_django.mutation(handle_django_errors=True, graphql_type=PipelineType)
    def archive_pipeline(self, info: Info, id: strawberry.ID) -> Pipeline:
        """Archive a pipeline: it keeps its runs and models but starts no new runs."""
        user, pipeline = _pipeline(info, id)
        return pipeline_archive(actor=user, pipeline=pipeline)

    @strawberry_django.mutation(handle_django_errors=True)
    def validate_config(self, info: Info, text: str, filename: str = "bedrock.hcl") -> ConfigCheck:
        """Check a bedrock.hcl: every error and warning with its key path, line and column."""
        acting_user(info)
        # spec.check refuses text over BEDROCK_MAX_CONFIG_BYTES before parsing it.
        problems = spec.check(text, filename=filename)
        return ConfigCheck(
            valid=not any(problem.is_error for problem in problems),
            problems=[ConfigProblemType.from_problem(problem) for problem in problems],
        )


@strawberry.input(description="A new project; you become its first admin.")
class CreateProjectInput:
    name: str = strawberry.field(description="Letters, digits, '-', '_' and '.'; unique.")
    description: str = ""


@strawberry.input(description="What to change in a project; fields left out stay as they are.")
class UpdateProjectInput:
    name: str | None = UNSET
    description: str | None = UNSET


@strawberry.type
class ProjectMutations:
    @strawberry_django.mutation(handle_django_errors=True, graphql_type=ProjectType)
    def create_project(self, info: Info, data: CreateProjectInput) -> Project:
        """Create a project and become its admin (unless the site keeps this to its staff)."""
        user = acting_user(info)
        return project_create(actor=user, name=data.name, description=data.description)

    @strawberry_django.mutation(handle_django_errors=True, graphql_type=ProjectType)
    def update_project(self, info: Info, id: strawberry.ID, data: UpdateProjectInput) -> Project:
        """Rename or describe a project you administer."""
        user, project = project_of(info, id)
        changes = {
            name: value
            for name in ("name", "description")
            if (value := getattr(data, name)) is not UNSET and value is not None
        }
        return project_update(actor=user, project=project, **changes)

    @strawberry_django.mutation(handle_django_errors=True, graphql_type=MembershipType)
    def set_membership(
        self, info: Info, project_id: strawberry.ID, username: str, role: RoleEnum
    ) -> Membership:
        """Add someone to a project you administer, or change their role."""
        user, project = project_of(info, project_id)
        return membership_set(actor=user, project=project, username=username, role=role.value)

    @strawberry_django.mutation(handle_django_errors=True, graphql_type=ProjectType)
    def remove_membership(self, info: Info, project_id: strawberry.ID, username: str) -> Project:
        """Take someone out of a project you administer; the project's last admin stays."""
        user, project = project_of(info, project_id)
        membership_remove(actor=user, project=project, username=username)
        return project
