"""Reads of API tokens scoped to a user."""

from __future__ import annotations

from django.db.models import QuerySet

from bedrock.accounts.models import ApiToken
from bedrock.pipelines.selectors import User


def api_tokens_for(user: User) -> QuerySet[ApiToken]:
    """The user's own API tokens; a site administrator revokes others' but lists only their own."""
    if not user.is_authenticated or not user.is_active:
        return ApiToken.objects.none()
    return ApiToken.objects.filter(user=user)
