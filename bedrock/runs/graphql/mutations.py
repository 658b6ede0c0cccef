"""Starting and stopping runs through ``bedrock.runs.services``."""

from __future__ import annotations

import strawberry
import strawberry_django
from django.core.exceptions import ValidationError
from strawberry import Info
from strawberry.scalars import JSON

from bedrock.graphql.errors import argument_names, get_visible_pipeline, get_visible_run
from bedrock.graphql.scalars import parse_id
from bedrock.graphql.viewer import acting_user
from bedrock.runs.graphql.types import RunType
from bedrock.runs.models import Run, Trigger
from bedrock.runs.services import run_create, run_stop


def _invalid(argument: str, message: str) -> ValidationError:
    return ValidationError({argument: ValidationError(message, code="invalid")})


@strawberry.type
class RunMutations:
    @strawberry_django.mutation(handle_django_errors=True, graphql_type=RunType)
    def start_run(
        self,
        info: Info,
        pipeline_id: strawberry.ID,
        ref: str | None = None,
        parameters: JSON | None = None,
        model_version_id: strawberry.ID | None = None,
        idempotency_key: str | None = None,
        model_alias: str | None = None,
    ) -> Run:
        """Start a run (project developers and admins).

        The run comes back ACCEPTED, or REJECTED with its `failureReason` when it cannot start.
        The same `idempotencyKey` on the same pipeline returns the run the first call created;
        with another ref, parameters or model version it is a `conflict` on `idempotencyKey`.
        A batch scoring run takes `modelVersionId`, or `modelAlias` (`churn@production`, or
        `production` when one model of the project has it): the run records the version the
        alias names now, and a rerun uses that version.
        """
        user = acting_user(info)
        pipeline = get_visible_pipeline(user, pipeline_id)
        if parameters is not None and (
            not isinstance(parameters, dict)
            or any(isinstance(value, dict | list) for value in parameters.values())
        ):
            raise _invalid(
                "parameters", 'Give an object of names to values, such as {"EPOCHS": "10"}.'
            )
        version = None
        if model_version_id is not None:
            version = parse_id(model_version_id)
            if version is None:
                raise _invalid("model_version_id", f"{model_version_id!r} is not an id.")
        with argument_names(pipeline="pipeline_id"):
            return run_create(
                actor=user,
                pipeline=pipeline,
                ref=ref or None,
                parameters=parameters,
                model_version_id=version,
                trigger=Trigger.API,
                idempotency_key=idempotency_key or None,
                model_alias=model_alias or None,
            )

    @strawberry_django.mutation(handle_django_errors=True, graphql_type=RunType)
    def stop_run(self, info: Info, id: strawberry.ID) -> Run:
        """Ask a run to stop (project developers and admins); it ends as STOPPED."""
        user = acting_user(info)
        return run_stop(actor=user, run=get_visible_run(user, id))
