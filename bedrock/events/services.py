"""Recording events. Callers record inside the transaction that made the change, so an event
exists exactly when its change does."""

from __future__ import annotations

from typing import Any

from bedrock.actors import Actor, person
from bedrock.events.models import Event, EventKind
from bedrock.pipelines.models import Project


def event_record(
    *, project: Project, kind: EventKind, payload: dict[str, Any], actor: Actor
) -> Event:
    """Record that ``kind`` happened in ``project``; ``payload`` is JSON of ids and names."""
    return Event.objects.create(project=project, kind=kind, payload=payload, actor=person(actor))
