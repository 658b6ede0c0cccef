from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from bedrock.actors import SYSTEM
from bedrock.pipelines.models import PipelineKind, Role
from bedrock.pipelines.selectors import pipelines_for
from bedrock.pipelines.services import pipeline_archive, pipeline_create, pipeline_update
from tests import factories

pytestmark = pytest.mark.django_db


def new_pipeline(actor, project, **fields):
    fields.setdefault("name", "train")
    fields.setdefault("git_url", "https://git.example.com/team/repo.git")
    fields.setdefault("kind", PipelineKind.TRAINING)
    if fields["kind"] == PipelineKind.TRAINING:
        fields.setdefault("model", factories.model(project))
    return pipeline_create(actor=actor, project=project, **fields)


@pytest.fixture
def team():
    project = factories.project("churn")
    admin, developer, viewer = factories.user(), factories.user(), factories.user()
    factories.member(project, admin, Role.ADMIN)
    factories.member(project, developer, Role.DEVELOPER)
    factories.member(project, viewer, Role.VIEWER)
    return project, admin, developer, viewer


def test_a_pipeline_gets_the_default_maximum_run_time_of_72_hours(team):
    project, admin, *_ = team
    assert new_pipeline(admin, project).max_run_time == timedelta(hours=72)


def test_a_project_admin_may_not_raise_the_maximum_run_time(team):
    project, admin, *_ = team
    with pytest.raises(ValidationError, match="Only a site administrator"):
        new_pipeline(admin, project, max_run_time=timedelta(hours=96))


def test_a_project_admin_may_lower_the_maximum_run_time(team):
    project, admin, *_ = team
    assert new_pipeline(admin, project, max_run_time=timedelta(hours=1)).max_run_time == timedelta(
        hours=1
    )


def test_a_site_administrator_may_raise_it_but_never_above_the_cap(team, settings):
    project, *_ = team
    superuser = factories.user(is_superuser=True, is_staff=True)
    settings.BEDROCK_MAX_RUN_TIME_CAP = timedelta(days=5)
    raised = new_pipeline(superuser, project, max_run_time=timedelta(days=4))
    assert raised.max_run_time == timedelta(days=4)

    with pytest.raises(ValidationError, match=r"cap of 5d \(BEDROCK_MAX_RUN_TIME_CAP\)"):
        pipeline_update(actor=superuser, pipeline=raised, max_run_time=timedelta(days=6))


def test_a_raised_limit_survives_an_edit_by_a_project_admin(team):
    project, admin, *_ = team
    superuser = factories.user(is_superuser=True)
    pipeline = new_pipeline(superuser, project, max_run_time=timedelta(hours=100))
    pipeline_update(
        actor=admin, pipeline=pipeline, branch="develop", max_run_time=pipeline.max_run_time
    )
    pipeline.refresh_from_db()
    assert (pipeline.branch, pipeline.max_run_time) == ("develop", timedelta(hours=100))


def test_only_project_admins_create_edit_and_archive_pipelines(team):
    project, admin, developer, viewer = team
    for actor in (developer, viewer, factories.user()):
        with pytest.raises(PermissionDenied):
            new_pipeline(actor, project)
    pipeline = new_pipeline(admin, project)
    with pytest.raises(PermissionDenied):
        pipeline_archive(actor=developer, pipeline=pipeline)
    assert pipeline_archive(actor=admin, pipeline=pipeline).archived


def test_a_training_pipeline_needs_a_model_of_its_own_project(team):
    project, admin, *_ = team
    with pytest.raises(ValidationError) as excinfo:
        new_pipeline(admin, project, model=None)
    assert "model" in excinfo.value.message_dict

    other_model = factories.model(factories.project())
    with pytest.raises(ValidationError, match="must belong to the project churn"):
        new_pipeline(admin, project, model=other_model)


def test_a_batch_scoring_pipeline_names_no_model(team):
    project, admin, *_ = team
    with pytest.raises(ValidationError, match="publishes no model"):
        new_pipeline(
            admin, project, kind=PipelineKind.BATCH_SCORING, model=factories.model(project)
        )
    scoring = new_pipeline(admin, project, kind=PipelineKind.BATCH_SCORING, name="score")
    assert scoring.stanza == "batch_score"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("git_url", "ext::sh -c id"),
        ("git_url", "--upload-pack=touch /tmp/x"),
        ("branch", "-f"),
        ("branch", "a..b"),
        ("config_path", "../etc/passwd"),
        ("config_path", "/etc/passwd"),
        ("name", "has space"),
    ],
)
def test_bad_pipeline_fields_are_refused_naming_the_field(team, field, value):
    project, admin, *_ = team
    with pytest.raises(ValidationError) as excinfo:
        new_pipeline(admin, project, **{field: value})
    assert field in excinfo.value.message_dict


def test_members_see_their_projects_pipelines_and_outsiders_see_none(team):
    project, admin, developer, viewer = team
    pipeline = new_pipeline(admin, project)
    new_pipeline(SYSTEM, factories.project(), name="elsewhere")
    for member in (admin, developer, viewer):
        assert list(pipelines_for(member)) == [pipeline]
    assert list(pipelines_for(factories.user())) == []
    pipeline_archive(actor=admin, pipeline=pipeline)
    assert list(pipelines_for(viewer)) == []
    assert list(pipelines_for(viewer, include_archived=True)) == [pipeline]
