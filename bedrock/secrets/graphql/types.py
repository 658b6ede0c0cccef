"""The GraphQL type of secrets: names and times, never a value."""

from __future__ import annotations

import strawberry_django
from strawberry import auto

from bedrock.graphql.types import ScopedType
from bedrock.secrets.models import Secret
from bedrock.secrets.selectors import secrets_for


@strawberry_django.type(
    Secret, name="Secret", description="A pipeline's secret: its name and when it was last set."
)
class SecretType(ScopedType, selector=secrets_for):
    name: auto
    updated_at: auto
