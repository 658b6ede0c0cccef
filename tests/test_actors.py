"""Every service is told who acts: a person, Staff in the admin, or SYSTEM, never None."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied

from bedrock.actors import SYSTEM, Staff
from bedrock.pipelines.models import Pipeline, PipelineKind
from bedrock.pipelines.services import pipeline_archive, pipeline_create, pipeline_update
from bedrock.runs.services import run_create, run_stop
from bedrock.secrets.services import secret_delete, secret_set
from tests import factories

pytestmark = pytest.mark.django_db


def test_none_is_refused_as_an_actor_by_every_service():
    pipeline = factories.pipeline(factories.project())
    calls = {
        "pipeline_create": lambda: pipeline_create(
            actor=None, project=pipeline.project, name="p", git_url="https://x/y.git", kind="x"
        ),
        "pipeline_update": lambda: pipeline_update(actor=None, pipeline=pipeline, branch="dev"),
        "pipeline_archive": lambda: pipeline_archive(actor=None, pipeline=pipeline),
        "secret_set": lambda: secret_set(actor=None, pipeline=pipeline, name="A_KEY", value="abcd"),
        "secret_delete": lambda: secret_delete(actor=None, pipeline=pipeline, name="A_KEY"),
        "run_create": lambda: run_create(actor=None, pipeline=pipeline),
    }
    for name, call in calls.items():
        with pytest.raises(TypeError, match="SYSTEM"):
            call()
        assert not pipeline.secrets.exists(), name
    assert Pipeline.objects.get(pk=pipeline.pk).branch == "main"
    assert not Pipeline.objects.get(pk=pipeline.pk).archived
    assert not pipeline.runs.exists()


def test_run_stop_refuses_none_as_an_actor():
    from bedrock.runs.models import Run, RunStatus

    pipeline = factories.pipeline(factories.project())
    run = Run.objects.create(pipeline=pipeline, number=1, status=RunStatus.ACCEPTED, ref="main")
    with pytest.raises(TypeError):
        run_stop(actor=None, run=run)
    assert Run.objects.get(pk=run.pk).status == RunStatus.ACCEPTED


def test_system_acts_without_a_project_role_and_is_recorded_as_nobody():
    project = factories.project()
    pipeline = pipeline_create(
        actor=SYSTEM,
        project=project,
        name="nightly",
        git_url="https://git.example.com/team/repo.git",
        kind=PipelineKind.BATCH_SCORING,
    )
    secret = secret_set(actor=SYSTEM, pipeline=pipeline, name="API_KEY", value="long-enough")

    assert pipeline.created_by is None
    assert (pipeline.branch, pipeline.config_path) == ("main", "bedrock.hcl")
    assert secret.updated_by is None
    assert pipeline_archive(actor=SYSTEM, pipeline=pipeline).archived


def test_staff_act_without_a_project_role_and_are_recorded_as_who_acted():
    staff = factories.user(is_staff=True)
    pipeline = factories.pipeline(factories.project())

    secret = secret_set(actor=Staff(staff), pipeline=pipeline, name="API_KEY", value="long-enough")

    assert secret.updated_by == staff
    with pytest.raises(PermissionDenied):
        secret_set(actor=staff, pipeline=pipeline, name="API_KEY", value="another-value")


def test_a_wrong_pipeline_field_name_is_a_type_error_at_the_call():
    pipeline = factories.pipeline(factories.project())
    with pytest.raises(TypeError, match="max_runtime"):
        pipeline_update(actor=SYSTEM, pipeline=pipeline, max_runtime="1h")
    with pytest.raises(TypeError, match="gitUrl"):
        pipeline_create(actor=SYSTEM, project=pipeline.project, name="x", gitUrl="y", kind="z")
