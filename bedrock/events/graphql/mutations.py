"""Creating and deleting webhooks. Each calls the service the UI calls."""

from __future__ import annotations

import strawberry
import strawberry_django
from strawberry import Info

from bedrock.events.graphql.types import CreatedWebhookType
from bedrock.events.models import Webhook
from bedrock.events.services import webhook_create, webhook_delete
from bedrock.graphql.errors import get_visible
from bedrock.graphql.viewer import acting_user
from bedrock.pipelines.selectors import projects_for


@strawberry.type(description="The outcome of deleting a webhook.")
class DeletedWebhook:
    id: strawberry.ID


@strawberry.type
class WebhookMutations:
    @strawberry_django.mutation(handle_django_errors=True)
    def create_webhook(
        self,
        info: Info,
        project_id: strawberry.ID,
        url: str,
        kinds: list[str] | None = None,
        description: str = "",
    ) -> CreatedWebhookType:
        """Add a webhook to a project (project admins); the secret is in this answer only."""
        user = acting_user(info)
        project = get_visible(projects_for(user), project_id, "project")
        created = webhook_create(
            actor=user, project=project, url=url, kinds=kinds or (), description=description
        )
        # strawberry resolves the type's fields on the model instance.
        return CreatedWebhookType(webhook=created.webhook, secret=created.secret)  # type: ignore[arg-type]

    @strawberry_django.mutation(handle_django_errors=True)
    def delete_webhook(self, info: Info, id: strawberry.ID) -> DeletedWebhook:
        """Delete a webhook and its delivery log (project admins)."""
        user = acting_user(info)
        visible = Webhook.objects.select_related("project").filter(project__in=projects_for(user))
        webhook = get_visible(visible, id, "webhook")
        webhook_delete(actor=user, webhook=webhook)
        return DeletedWebhook(id=id)
