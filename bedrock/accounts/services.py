"""Creating, revoking and checking API tokens. A token's plaintext is shown once, when created."""

from __future__ import annotations

import secrets as _random
from dataclasses import dataclass

from django.contrib.auth.models import User as AuthUser
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from bedrock.accounts.models import TOKEN_PREFIX, ApiToken, hash_token
from bedrock.pipelines.selectors import User


@dataclass(frozen=True)
class CreatedToken:
    token: ApiToken
    plaintext: str  # shown to its owner once, then gone


def api_token_create(*, user: AuthUser, name: str = "") -> CreatedToken:
    plaintext = TOKEN_PREFIX + _random.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user,
        name=name,
        prefix=plaintext[: len(TOKEN_PREFIX) + 6],
        key_hash=hash_token(plaintext),
    )
    return CreatedToken(token=token, plaintext=plaintext)


def api_token_revoke(*, actor: User, token: ApiToken) -> ApiToken:
    if token.user_id != actor.pk and not actor.is_superuser:
        raise PermissionDenied("You may revoke only your own tokens.")
    ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    token.refresh_from_db(fields=["revoked_at"])
    return token


def api_token_authenticate(plaintext: str) -> AuthUser | None:
    """The user a token belongs to, or None; records when it was last used."""
    if not plaintext.startswith(TOKEN_PREFIX):
        return None
    token = (
        ApiToken.objects.usable()
        .select_related("user")
        .filter(key_hash=hash_token(plaintext))
        .first()
    )
    if token is None:
        return None
    now = timezone.now()
    # Write at most once a minute: a busy scheduler should not turn every read into a write.
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token.user
