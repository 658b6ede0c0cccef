"""Scalars, enums and id handling shared by every app's GraphQL types.

Ids are the database ids as GraphQL ``ID``s, the same numbers the UI's URLs, the ``bedrock``
command and a run's ``BEDROCK_PIPELINE_RUN_ID`` use.
"""

from __future__ import annotations

import enum
from typing import NewType

import strawberry
from django.db import models
from strawberry.types.scalar import ScalarDefinition

BigInt = NewType("BigInt", int)

# For the schema's StrawberryConfig(scalar_map=...).
SCALAR_MAP: dict[object, ScalarDefinition] = {
    BigInt: strawberry.scalar(
        name="BigInt",
        serialize=int,
        parse_value=int,
        description="An integer that may exceed 32 bits, such as a size in bytes.",
    )
}


def choices_enum(choices: type[models.TextChoices], name: str, description: str) -> type:
    """A GraphQL enum mirroring Django choices, named after the choices' names (``BATCH_SCORING``).

    Its members are ``str``, so the plain strings the ORM returns serialise as members.
    """
    members = [(member.name, member.value) for member in choices]
    # The name and members are arguments, where mypy's functional-enum support wants literals.
    mirrored = enum.Enum(name, members, type=str)  # type: ignore[misc]  # name is not a literal
    return strawberry.enum(mirrored, name=name, description=description)


def parse_id(value: strawberry.ID | str | int | None) -> int | None:
    """A database id from a client's ``ID``, or None when it cannot be one (so: not found)."""
    if value is None:
        return None
    text = str(value).strip()
    if not text.isdigit() or len(text) > 18:
        return None
    return int(text)
