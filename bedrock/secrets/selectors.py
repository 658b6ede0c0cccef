"""Reads of secrets scoped to a user: names and times, never a value."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from bedrock.pipelines.models import Pipeline
from bedrock.pipelines.selectors import User, projects_for
from bedrock.secrets.models import Secret


def secrets_for(user: User) -> QuerySet[Secret]:
    return Secret.objects.filter(pipeline__project__in=projects_for(user))


def secret_rows_for(pipeline: Pipeline) -> list[dict[str, Any]]:
    """The pipeline's secrets as ``name``, ``updated_at`` and ``updated_by__username``, by name.

    The caller has already checked the pipeline is visible; a value is never loaded for a page.
    """
    rows = Secret.objects.filter(pipeline=pipeline).values(
        "name", "updated_at", "updated_by__username"
    )
    return [dict(row) for row in rows]
