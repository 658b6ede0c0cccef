"""The GraphQL types of webhooks: never the secret, which only the creation returns, once."""

from __future__ import annotations

import strawberry
import strawberry_django
from strawberry import auto

from bedrock.events.models import Webhook, WebhookDelivery
from bedrock.events.selectors import webhook_deliveries_for, webhooks_for
from bedrock.graphql.types import ScopedType

RECENT_DELIVERIES = 20


@strawberry_django.type(
    WebhookDelivery,
    name="WebhookDelivery",
    description="Sending one event to one webhook, with the last attempt's answer.",
)
class WebhookDeliveryType(ScopedType, selector=webhook_deliveries_for):
    id: auto
    attempts: auto
    status: str = strawberry_django.field(description="pending, delivered or failed.")
    next_attempt_at: auto
    last_status_code: auto
    last_error: auto
    response_excerpt: auto = strawberry_django.field(description="The answer's first KB.")
    delivered_at: auto
    created_at: auto

    @strawberry_django.field(only=["event_id"])
    def event_id(self, root: WebhookDelivery) -> strawberry.ID:
        return strawberry.ID(str(root.event_id))

    @strawberry_django.field(select_related=["event"], only=["event__kind"])
    def event_kind(self, root: WebhookDelivery) -> str:
        return root.event.kind


@strawberry_django.type(
    Webhook,
    name="Webhook",
    description="An address a project's events are POSTed to, signed (project admins only).",
)
class WebhookType(ScopedType, selector=webhooks_for):
    id: auto
    url: auto
    description: auto
    active: auto
    created_at: auto

    @strawberry_django.field(only=["kinds"], description="The event kinds it wants; empty: all.")
    def kinds(self, root: Webhook) -> list[str]:
        return list(root.kinds)

    @strawberry_django.field(
        graphql_type=list[WebhookDeliveryType],
        description=f"The newest deliveries, at most {RECENT_DELIVERIES}.",
    )
    def recent_deliveries(self, root: Webhook) -> list[WebhookDelivery]:
        deliveries = root.deliveries.select_related("event").order_by("-created_at", "-id")
        return list(deliveries[:RECENT_DELIVERIES])


@strawberry.type(name="CreatedWebhook", description="A new webhook and its signing secret.")
class CreatedWebhookType:
    webhook: WebhookType
    secret: str = strawberry.field(
        description="Signs every delivery; returned this once and never again."
    )
