"""Mutations of pipelines, and checking a bedrock.hcl. Each calls the service the UI calls."""

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
from bedrock.pipelines.graphql.filters import DatedInstallsEnum, PipelineKindEnum, PublishPolicyEnum
from bedrock.pipelines.graphql.types import ConfigCheck, ConfigProblemType, PipelineType
from bedrock.pipelines.models import Pipeline
from bedrock.pipelines.selectors import User, projects_for
from bedrock.pipelines.services import pipeline_archive, pipeline_create, pipeline_update


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


def _pipeline(info: Info, pipeline_id: strawberry.ID) -> tuple[User, Pipeline]:
    user = acting_user(info)
    return user, get_visible_pipeline(user, pipeline_id)


@strawberry.type
class PipelineMutations:
    @strawberry_django.mutation(handle_django_errors=True, graphql_type=PipelineType)
    def create_pipeline(self, info: Info, data: CreatePipelineInput) -> Pipeline:
        """Create a pipeline in a project you administer."""
        user = acting_user(info)
        project = get_visible(projects_for(user), data.project_id, "project")
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
