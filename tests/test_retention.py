"""Retention: the reconciler deletes the versions a model no longer keeps, never one in use."""

from __future__ import annotations

import itertools
from datetime import timedelta
from pathlib import Path

import pytest
from django.test import Client
from django.utils import timezone

from bedrock.events.models import Event, EventKind
from bedrock.models.models import ModelAlias, ModelVersion
from bedrock.models.retention import retention_notes, versions_retain
from bedrock.models.services import model_version_publish
from bedrock.pipelines.models import PipelineKind, Role
from bedrock.runs.models import Run, RunStatus
from bedrock.runs.services import runs_reconcile
from tests import factories

pytestmark = pytest.mark.django_db
_numbers = itertools.count(1)


@pytest.fixture
def model(local_storage, tmp_path: Path):
    """A model with eight versions, v1 to v8, each with its archive stored."""
    artefact = tmp_path / "artefact"
    artefact.mkdir()
    (artefact / "model.pkl").write_bytes(b"weights")
    project = factories.project()
    pipeline = factories.pipeline(project, branch="main")
    for _ in range(8):
        run = Run.objects.create(
            pipeline=pipeline, number=next(_numbers), ref="main", status=RunStatus.SUCCEEDED
        )
        model_version_publish(run=run, directory=artefact)
    return pipeline.model


def version(model, number: int) -> ModelVersion:
    return ModelVersion.objects.get(model=model, number=number)


def scoring_run(model, number: int, *, status=RunStatus.SUCCEEDED, age=timedelta(0)) -> Run:
    scoring = factories.pipeline(model.project, kind=PipelineKind.BATCH_SCORING)
    return Run.objects.create(
        pipeline=scoring,
        number=1,
        ref="main",
        status=status,
        input_model_version=version(model, number),
        created_at=timezone.now() - age,
    )


def live(model) -> list[int]:
    return list(
        model.versions.filter(deleted_at=None).order_by("number").values_list("number", flat=True)
    )


def test_retention_keeps_the_newest_the_aliased_and_the_recently_or_still_used(
    model, local_storage
):
    model.keep_versions = 3
    model.save()
    ModelAlias.objects.create(model=model, name="production", version=version(model, 1))
    scoring_run(model, 2, age=timedelta(days=3))
    scoring_run(model, 3, status=RunStatus.RUNNING, age=timedelta(days=90))
    scoring_run(model, 4, age=timedelta(days=90))  # used long ago: not kept for that

    assert versions_retain() == 2

    assert live(model) == [1, 2, 3, 6, 7, 8]
    for number in (4, 5):
        assert not local_storage.exists(version(model, number).storage_key)
    for number in live(model):
        assert local_storage.exists(version(model, number).storage_key)
    events = Event.objects.filter(kind=EventKind.MODEL_VERSION_DELETED)
    assert sorted(event.payload["number"] for event in events) == [4, 5]
    assert {event.payload["reason"] for event in events} == {"retention"}
    assert {event.actor for event in events} == {None}


def test_the_recent_use_window_is_a_setting(model, settings):
    settings.BEDROCK_RETENTION_RECENT_USE = timedelta(days=1)
    model.keep_versions = 7
    model.save()
    scoring_run(model, 1, age=timedelta(days=3))

    versions_retain()

    assert live(model) == [2, 3, 4, 5, 6, 7, 8]


def test_a_model_without_a_retention_keeps_every_version(model):
    assert versions_retain() == 0
    assert live(model) == list(range(1, 9))


def test_the_reconciler_applies_retention_and_a_second_pass_deletes_nothing_more(model):
    model.keep_versions = 5
    model.save()

    assert runs_reconcile()["retained"] == 3
    assert runs_reconcile()["retained"] == 0
    assert live(model) == [4, 5, 6, 7, 8]


def test_the_model_page_says_what_retention_deleted(model):
    model.keep_versions = 5
    model.save()
    versions_retain()
    viewer = factories.user()
    factories.member(model.project, viewer, Role.VIEWER)
    client = Client()
    client.force_login(viewer)

    page = client.get(f"/models/{model.pk}/").content.decode()

    today = timezone.localdate().isoformat()
    expected = f"Retention deleted v1, v2, v3 on {today} (keeping the newest 5)"
    assert expected in page
    assert [str(note) for note in retention_notes(model)] == [expected]
    outsider = Client()
    outsider.force_login(factories.user())
    assert outsider.get(f"/models/{model.pk}/").status_code == 404
