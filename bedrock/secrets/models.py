from __future__ import annotations

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
