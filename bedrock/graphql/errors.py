"""Errors a client can act on, turned into ``OperationInfo`` by strawberry-django.

PermissionDenied becomes kind PERMISSION, ValidationError kind VALIDATION (with the camelCased
argument in ``field``), and NotFound kind ERROR with code ``not_found``. Anything outside the
caller's projects is reported exactly like an id that does not exist.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

import strawberry
from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.db.models import Model, QuerySet

from bedrock.graphql.scalars import parse_id
from bedrock.pipelines.models import Pipeline
from bedrock.pipelines.selectors import User, pipeline_with_role
from bedrock.runs.models import Run
from bedrock.runs.selectors import run_with_role

M = TypeVar("M", bound=Model)


class NotFound(ObjectDoesNotExist):
    code = "not_found"

    def __init__(self, what: str, value: object) -> None:
        super().__init__(f"There is no {what} with id {value}.")


def get_visible(queryset: QuerySet[M], value: strawberry.ID | str | int | None, what: str) -> M:
    """The object with id ``value`` among those the caller may see, or NotFound."""
    pk = parse_id(value)
    found = queryset.filter(pk=pk).first() if pk is not None else None
    if found is None:
        raise NotFound(what, value)
    return found


def get_visible_pipeline(user: User, value: strawberry.ID | str | int | None) -> Pipeline:
    """The pipeline with id ``value`` the user may see, archived or not, or NotFound.

    The user's role in its project is read in the same query and kept with it, so the service's
    permission check asks the database nothing more.
    """
    pk = parse_id(value)
    found = pipeline_with_role(user, pk) if pk is not None else None
    if found is None:
        raise NotFound("pipeline", value)
    return found[0]


def get_visible_run(user: User, value: strawberry.ID | str | int | None) -> Run:
    """The run with id ``value`` the user may see, or NotFound; its project's role read with it."""
    pk = parse_id(value)
    found = run_with_role(user, pk) if pk is not None else None
    if found is None:
        raise NotFound("run", value)
    return found[0]


@contextmanager
def argument_names(**renames: str) -> Iterator[None]:
    """Report a service's field errors under the argument the client sent.

    ``argument_names(model="model_id")`` turns an error on ``model`` into one on ``modelId``.
    """
    try:
        yield
    except ValidationError as error:
        if not hasattr(error, "error_dict"):
            raise
        raise ValidationError(
            {renames.get(field, field): errors for field, errors in error.error_dict.items()}
        ) from error
