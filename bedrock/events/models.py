"""What happened in a project that others may want to hear of: a new model version, an alias
moved. Kept as history and sent to the project's webhooks."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from bedrock.pipelines.models import Project
from bedrock.secrets.crypto import EncryptedTextField

# Receivers are admins' own services: a URL long enough for any query string, no longer.
WEBHOOK_URL_MAX_LENGTH = 2000
# A response is kept only to show why a receiver refused; its first bytes say so.
RESPONSE_EXCERPT_BYTES = 1024


def _person() -> models.ForeignKey:
    """Who did something; the record outlives the account, as done by no one."""
    return models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )


class EventKind(models.TextChoices):
    MODEL_VERSION_PUBLISHED = "model_version.published", "A model version was published"
    MODEL_ALIAS_SET = "model_alias.set", "A model alias was set or moved"
    MODEL_ALIAS_REMOVED = "model_alias.removed", "A model alias was removed"
    MODEL_VERSION_DEPRECATED = "model_version.deprecated", "A model version was deprecated"
    MODEL_VERSION_DELETED = "model_version.deleted", "A model version was deleted"
    RUN_FINISHED = "run.finished", "A run ended"
    WEBHOOK_TEST = "webhook.test", "A test event sent from the webhook's page"


class Event(models.Model):
    """One thing that happened in a project, with what a listener needs to act on it.

    ``payload`` holds ids and names only, never a secret: it is sent as is to webhooks.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=40, choices=EventKind.choices, db_index=True)
    payload = models.JSONField(default=dict)
    actor = _person()
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["project", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.kind} in {self.project} at {self.created_at:%Y-%m-%d %H:%M:%S}"


class Webhook(models.Model):
    """An address a project's events are POSTed to, signed with a secret only the receiver knows.

    ``kinds`` lists the event kinds it wants; empty means every kind. The secret is stored
    encrypted, shown once when the webhook is created, and never read again except to sign.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="webhooks")
    url = models.CharField("URL", max_length=WEBHOOK_URL_MAX_LENGTH)
    description = models.CharField(max_length=200, blank=True)
    kinds = models.JSONField(default=list, blank=True)
    active = models.BooleanField(default=True)
    secret = EncryptedTextField(editable=False)
    created_by = _person()
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["project", "id"]

    def __str__(self) -> str:
        return f"webhook {self.pk} of {self.project} to {self.url}"

    def subscribes_to(self, kind: str) -> bool:
        return not self.kinds or kind in self.kinds


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"


class WebhookDelivery(models.Model):
    """Sending one event to one webhook, attempt after attempt until it is delivered or fails.

    ``next_attempt_at`` is when an attempt is due; claiming an attempt moves it to when the
    following one would be, so a worker that dies mid-send leaves the retry already scheduled.
    """

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries")
    attempts = models.PositiveIntegerField(default=0)
    status = models.CharField(
        max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    next_attempt_at = models.DateTimeField(null=True, blank=True, default=timezone.now)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=200, blank=True)
    response_excerpt = models.TextField(blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "webhook deliveries"
        indexes = [models.Index(fields=["status", "next_attempt_at"])]

    def __str__(self) -> str:
        return f"delivery {self.pk} of event {self.event_id} to webhook {self.webhook_id}"
