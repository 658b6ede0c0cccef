from __future__ import annotations

import hashlib

from django.conf import settings
from django.db import models
from django.utils import timezone

from bedrock.pipelines.environment import validate_environment_name
from bedrock.pipelines.models import Pipeline
from bedrock.secrets.crypto import EncryptedTextField

secret_name_validator = validate_environment_name


class Secret(models.Model):
    """A pipeline's secret. The value is encrypted at rest and never shown back to anyone."""

    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="secrets")
    name = models.CharField(max_length=200, validators=[secret_name_validator])
    value = EncryptedTextField()
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        editable=False,
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["pipeline", "name"], name="secret_unique_name"),
        ]
        ordering = ["pipeline", "name"]

    def __str__(self) -> str:
        return f"{self.pipeline} secret {self.name}"

    def __repr__(self) -> str:
        return f"<Secret {self.name} of pipeline {self.pipeline_id}>"


TOKEN_PREFIX = "bdrk_"  # noqa: S105  (a marker, not a credential)


def hash_token(token: str) -> str:
    """Tokens are 256 random bits, so a plain SHA-256 is enough and lets us look them up."""
    return hashlib.sha256(token.encode()).hexdigest()


class ApiTokenQuerySet(models.QuerySet):
    def usable(self) -> ApiTokenQuerySet:
        now = timezone.now()
        return self.filter(revoked_at__isnull=True, user__is_active=True).filter(
            models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now)
        )


class ApiToken(models.Model):
    """A user's token for the API. Only its hash is stored; the token is shown once."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(
        max_length=16, editable=False, help_text="The token's first characters, to recognise it."
    )
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name or 'unnamed'}) of {self.user}"

    @property
    def is_usable(self) -> bool:
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or self.expires_at > timezone.now()
