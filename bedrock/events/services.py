"""Recording events, and the webhooks that hear of them.

Callers record inside the transaction that made the change, so an event, and the deliveries of
it to the project's webhooks, exist exactly when its change does.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from django.contrib.auth.models import User as AuthUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from bedrock.actors import Actor, person, require_role
from bedrock.events.delivery import WebhookAddressError, deliveries_create, deliveries_start
from bedrock.events.delivery import url_check as _url_check
from bedrock.events.models import DeliveryStatus, Event, EventKind, Webhook, WebhookDelivery
from bedrock.pipelines.models import Project, Role

MAX_WEBHOOKS_PER_PROJECT = 20
# Test events one webhook may be sent in an hour: enough to debug a receiver, not a flood.
MAX_TESTS_PER_HOUR = 20
# Finished deliveries and test events are kept this long; the other events are history.
DELIVERY_LOG_KEPT = timedelta(days=30)
# A kind a webhook can subscribe to; the test event goes only to the webhook it tests.
SUBSCRIBABLE_KINDS = [kind for kind in EventKind if kind != EventKind.WEBHOOK_TEST]
ADMINS_ONLY = "Only project admins manage webhooks."


def event_record(
    *, project: Project, kind: EventKind, payload: dict[str, Any], actor: Actor
) -> Event:
    """Record that ``kind`` happened in ``project``; ``payload`` is JSON of ids and names."""
    event = Event.objects.create(
        project=project, kind=kind, payload=payload, actor=cast("AuthUser | None", person(actor))
    )
    deliveries_create(event)
    return event


@dataclass(frozen=True)
class CreatedWebhook:
    """A new webhook and its signing secret, which is shown this once and never again."""

    webhook: Webhook
    secret: str = field(repr=False)


def _kinds(kinds: Iterable[str]) -> list[str]:
    chosen = list(dict.fromkeys(kinds))
    unknown = [kind for kind in chosen if kind not in SUBSCRIBABLE_KINDS]
    if unknown:
        raise ValidationError(
            {
                "kinds": ValidationError(
                    f"Unknown event kind {', '.join(unknown)}; expected some of "
                    f"{', '.join(SUBSCRIBABLE_KINDS)} (none means all).",
                    code="invalid",
                )
            }
        )
    return [kind for kind in SUBSCRIBABLE_KINDS if kind in chosen]


def _description(description: str) -> str:
    description = description.strip()
    if len(description) > 200:
        raise ValidationError(
            {"description": ValidationError("At most 200 characters.", code="max_length")}
        )
    return description


def url_check(url: str) -> str:
    """The URL, stripped, or a ValidationError on ``url`` saying why it cannot receive webhooks."""
    url = url.strip()
    try:
        _url_check(url)
    except WebhookAddressError as exc:
        raise ValidationError({"url": ValidationError(str(exc), code="invalid")}) from exc
    return url


def webhook_create(
    *,
    actor: Actor,
    project: Project,
    url: str,
    kinds: Iterable[str] = (),
    description: str = "",
) -> CreatedWebhook:
    """A webhook of ``project`` (project admins), returned with its secret this once."""
    require_role(actor, project, Role.ADMIN, ADMINS_ONLY)
    url = url_check(url)
    chosen, description = _kinds(kinds), _description(description)
    secret = "whsec_" + secrets.token_urlsafe(32)
    with transaction.atomic():
        # The project row is locked so that two creations at once cannot pass the limit together.
        Project.objects.select_for_update().filter(pk=project.pk).first()
        if Webhook.objects.filter(project=project).count() >= MAX_WEBHOOKS_PER_PROJECT:
            raise ValidationError(
                f"The project {project} has {MAX_WEBHOOKS_PER_PROJECT} webhooks already, "
                "the most it may have; delete one first.",
                code="too_many",
            )
        webhook = Webhook.objects.create(
            project=project,
            url=url,
            kinds=chosen,
            description=description,
            secret=secret,
            created_by=cast("AuthUser | None", person(actor)),
        )
    return CreatedWebhook(webhook=webhook, secret=secret)


def webhook_update(
    *, actor: Actor, webhook: Webhook, kinds: Iterable[str], active: bool, description: str
) -> Webhook:
    """Change what a webhook hears of and whether it is on (project admins); not its URL."""
    require_role(actor, webhook.project, Role.ADMIN, ADMINS_ONLY)
    webhook.kinds, webhook.description = _kinds(kinds), _description(description)
    webhook.active = active
    webhook.save(update_fields=["kinds", "description", "active"])
    return webhook


def webhook_delete(*, actor: Actor, webhook: Webhook) -> None:
    """Delete a webhook and its delivery log (project admins)."""
    require_role(actor, webhook.project, Role.ADMIN, ADMINS_ONLY)
    webhook.delete()


@transaction.atomic
def webhook_test(*, actor: Actor, webhook: Webhook) -> WebhookDelivery:
    """Send a test event to this webhook alone (project admins), whether or not it is active."""
    require_role(actor, webhook.project, Role.ADMIN, ADMINS_ONLY)
    recent = webhook.deliveries.filter(
        event__kind=EventKind.WEBHOOK_TEST, created_at__gte=timezone.now() - timedelta(hours=1)
    )
    if recent.count() >= MAX_TESTS_PER_HOUR:
        raise ValidationError(
            f"This webhook was sent {MAX_TESTS_PER_HOUR} test events in the last hour, the most "
            f"allowed; try again later."
        )
    event = Event.objects.create(
        project=webhook.project,
        kind=EventKind.WEBHOOK_TEST,
        payload={"webhook": {"id": webhook.pk}},
        actor=cast("AuthUser | None", person(actor)),
    )
    return deliveries_start(event, [webhook])[0]


@transaction.atomic
def webhook_redeliver(*, actor: Actor, delivery: WebhookDelivery) -> WebhookDelivery:
    """Send a delivery's event to its webhook again, as a new delivery (project admins)."""
    webhook = delivery.webhook
    require_role(actor, webhook.project, Role.ADMIN, ADMINS_ONLY)
    return deliveries_start(delivery.event, [webhook])[0]


def deliveries_prune(now: datetime | None = None) -> int:
    """Forget what is past ``DELIVERY_LOG_KEPT``: finished deliveries and test events. The
    reconciler calls this; how many rows went."""
    before = (now or timezone.now()) - DELIVERY_LOG_KEPT
    finished = WebhookDelivery.objects.filter(created_at__lt=before).exclude(
        status=DeliveryStatus.PENDING
    )
    count = finished.delete()[0]
    tests = Event.objects.filter(kind=EventKind.WEBHOOK_TEST, created_at__lt=before)
    return count + tests.exclude(deliveries__status=DeliveryStatus.PENDING).delete()[0]


def webhook_secrets_rotate() -> int:
    """Re-encrypt every webhook's signing secret under the newest key; how many were rewritten.

    A secret never changes after its webhook is created, so writing back what was read needs no
    lock. Part of ``bedrock rotatesecrets``.
    """
    count = 0
    for webhook in Webhook.objects.only("secret").iterator():
        count += Webhook.objects.filter(pk=webhook.pk).update(secret=webhook.secret)
    return count
