from __future__ import annotations

import pytest

from bedrock.actors import SYSTEM
from bedrock.events.models import Event, EventKind
from bedrock.events.services import event_record
from tests import factories

pytestmark = pytest.mark.django_db


def test_an_event_records_who_acted_and_a_system_event_records_no_one() -> None:
    project = factories.project()
    alice = factories.user("alice")
    by_person = event_record(
        project=project,
        kind=EventKind.MODEL_ALIAS_SET,
        payload={"alias": "production"},
        actor=alice,
    )
    by_system = event_record(
        project=project, kind=EventKind.MODEL_VERSION_PUBLISHED, payload={"number": 1}, actor=SYSTEM
    )
    assert by_person.actor == alice
    assert by_system.actor is None
    assert list(Event.objects.filter(project=project).values_list("kind", flat=True)) == [
        EventKind.MODEL_VERSION_PUBLISHED,
        EventKind.MODEL_ALIAS_SET,
    ]
