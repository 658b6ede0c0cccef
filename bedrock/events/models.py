"""What happened in a project that others may want to hear of: a new model version, an alias
moved. Kept as history and sent to the project's webhooks."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from bedrock.pipelines.models import Project


class EventKind(models.TextChoices):
    MODEL_VERSION_PUBLISHED = "model_version.published", "A model version was published"
    MODEL_ALIAS_SET = "model_alias.set", "A model alias was set or moved"
    MODEL_ALIAS_REMOVED = "model_alias.removed", "A model alias was removed"
    MODEL_VERSION_DEPRECATED = "model_version.deprecated", "A model version was deprecated"
    MODEL_VERSION_DELETED = "model_version.deleted", "A model version was deleted"
    RUN_FINISHED = "run.finished", "A run ended"


class Event(models.Model):
    """One thing that happened in a project, with what a listener needs to act on it.

    ``payload`` holds ids and names only, never a secret: it is sent as is to webhooks.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=40, choices=EventKind.choices, db_index=True)
    payload = models.JSONField(default=dict)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["project", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.kind} in {self.project} at {self.created_at:%Y-%m-%d %H:%M:%S}"
