"""Creating, revoking and checking API tokens. A token's plaintext is shown once, when created."""

from __future__ import annotations

import secrets as _random
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.contrib.auth.models import User as AuthUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from bedrock.accounts.models import TOKEN_PREFIX, ApiToken, hash_token
from bedrock.envconfig import format_duration
from bedrock.pipelines.selectors import User

# Working tokens one person may hold: enough for every machine, not a table filled by a loop.
MAX_USABLE_TOKENS = 100


@dataclass(frozen=True)
class CreatedToken:
    token: ApiToken
    plaintext: str  # shown to its owner once, then gone


def api_token_create(
    *,
    user: AuthUser,
    name: str = "",
    expires_at: datetime | None = None,
    read_only: bool = False,
) -> CreatedToken:
    """A new token for ``user``; ``expires_at`` None never expires, else it is in the future and
    at most ``BEDROCK_TOKEN_MAX_LIFETIME`` away."""
    if expires_at is not None:
        if timezone.is_naive(expires_at):  # a client that sent no zone means the site's
            expires_at = timezone.make_aware(expires_at)
        _check_expiry(expires_at)
    if ApiToken.objects.usable().filter(user=user).count() >= MAX_USABLE_TOKENS:
        raise ValidationError(
            {
                "name": ValidationError(
                    f"You have {MAX_USABLE_TOKENS} tokens that work, the most one person may "
                    f"have: revoke one you no longer use.",
                    code="limit",
                )
            }
        )
    plaintext = TOKEN_PREFIX + _random.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user,
        name=name,
        prefix=plaintext[: len(TOKEN_PREFIX) + 6],
        key_hash=hash_token(plaintext),
        expires_at=expires_at,
        read_only=read_only,
    )
    return CreatedToken(token=token, plaintext=plaintext)


def _check_expiry(expires_at: datetime) -> None:
    now = timezone.now()
    longest = settings.BEDROCK_TOKEN_MAX_LIFETIME
    if expires_at <= now:
        problem = "Choose an expiry in the future."
    elif expires_at > now + longest:
        problem = (
            f"A token may be valid for at most {format_duration(longest)} "
            f"(BEDROCK_TOKEN_MAX_LIFETIME): choose an earlier expiry."
        )
    else:
        return
    raise ValidationError({"expires_at": ValidationError(problem, code="invalid")})


def api_token_revoke(*, actor: User, token: ApiToken) -> ApiToken:
    if token.user_id != actor.pk and not actor.is_superuser:
        raise PermissionDenied("You may revoke only your own tokens.")
    ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    token.refresh_from_db(fields=["revoked_at"])
    return token


def api_token_authenticate(plaintext: str) -> AuthUser | None:
    """The user a token belongs to, or None; records when it was last used."""
    token = api_token_use(plaintext)
    return token.user if token is not None else None


def api_token_use(plaintext: str) -> ApiToken | None:
    """The usable token (with its user) ``plaintext`` is, or None; records when it was last
    used."""
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
    return token
