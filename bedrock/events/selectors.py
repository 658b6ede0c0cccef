"""Reads of webhooks scoped to a user: only a project's admins see its webhooks, whose URLs
may carry a receiver's own token."""

from __future__ import annotations

from django.db.models import QuerySet

from bedrock.events.models import Webhook, WebhookDelivery
from bedrock.pipelines.models import Project, Role
from bedrock.pipelines.selectors import User, projects_for


def _admin_projects(user: User) -> QuerySet[Project]:
    projects = projects_for(user)
    if not user.is_authenticated or user.is_superuser:
        return projects
    return projects.filter(memberships__user=user.pk, memberships__role=Role.ADMIN)


def webhooks_for(user: User) -> QuerySet[Webhook]:
    # The secret is never shown, so it is never read (nor decrypted) for a page or the API.
    webhooks = Webhook.objects.select_related("project").defer("secret")
    return webhooks.filter(project__in=_admin_projects(user))


def webhook_deliveries_for(user: User) -> QuerySet[WebhookDelivery]:
    return WebhookDelivery.objects.select_related("event", "webhook").filter(
        webhook__in=webhooks_for(user)
    )
