"""django-q2 entry points: load by id, call a service. Queued on commit; safe to run twice."""

from __future__ import annotations

from bedrock.events import delivery


def webhook_delivery_send(delivery_id: int) -> bool:
    return delivery.delivery_attempt(delivery_id)
