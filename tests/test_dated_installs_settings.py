"""The pipeline's choice of dated installs: set and read through GraphQL, the UI and the admin;
the run's date read through GraphQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bedrock.pipelines.models import DatedInstalls, Pipeline
from bedrock.runs.models import Run
from tests.test_graphql_api import client_for, data, world  # noqa: F401 (the fixture)
from tests.test_ui import pipeline_data
from tests.test_ui import world as ui_world  # noqa: F401 (the fixture)

pytestmark = pytest.mark.django_db

CREATE = """mutation($data: CreatePipelineInput!) { createPipeline(data: $data) {
    ... on Pipeline { id datedInstalls } ... on OperationInfo { messages { message } } } }"""
UPDATE = """mutation($id: ID!, $data: UpdatePipelineInput!) { updatePipeline(id: $id, data: $data)
    { ... on Pipeline { datedInstalls } ... on OperationInfo { messages { message } } } }"""
RUN = "query($id: ID!) { run(id: $id) { installsAsOf } }"


def test_a_pipeline_is_created_with_the_server_default_unless_told_otherwise(world):  # noqa: F811
    admin = client_for(world.admin)
    base = {"projectId": str(world.project.pk), "gitUrl": "https://git.example.com/a.git"}
    base["kind"] = "BATCH_SCORING"

    plain = data(admin, CREATE, data={**base, "name": "plain"})["createPipeline"]
    dated = data(admin, CREATE, data={**base, "name": "dated", "datedInstalls": "ON"})

    assert plain["datedInstalls"] == "DEFAULT"
    assert dated["createPipeline"]["datedInstalls"] == "ON"
    assert Pipeline.objects.get(name="dated").dated_installs == DatedInstalls.ON


def test_a_project_admin_turns_dated_installs_off_and_the_rest_stays(world):  # noqa: F811
    pipeline = world.training
    answer = data(
        client_for(world.admin), UPDATE, id=str(pipeline.pk), data={"datedInstalls": "OFF"}
    )

    assert answer["updatePipeline"] == {"datedInstalls": "OFF"}
    pipeline.refresh_from_db()
    assert pipeline.dated_installs == DatedInstalls.OFF and pipeline.name == "train"


def test_a_run_says_what_date_its_installs_resolved_as_of(world):  # noqa: F811
    run = Run.objects.get(pipeline=world.training, number=1)
    Run.objects.filter(pk=run.pk).update(installs_as_of=datetime(2022, 3, 4, tzinfo=UTC))

    answer = data(client_for(world.viewer), RUN, id=str(run.pk))

    assert answer == {"run": {"installsAsOf": "2022-03-04T00:00:00+00:00"}}


@pytest.mark.parametrize(("posted", "stored"), [({}, "default"), ({"dated_installs": "on"}, "on")])
def test_the_pipeline_form_takes_the_choice_and_keeps_the_default_when_none_is_posted(
    client,
    ui_world,  # noqa: F811
    posted,
    stored,
):
    client.force_login(ui_world.admin)

    response = client.post("/pipelines/new", pipeline_data(ui_world, **posted))

    assert response.status_code == 302
    assert Pipeline.objects.get(name="churn-again").dated_installs == stored


def test_the_admin_sets_dated_installs_on_a_pipeline(admin_client, world):  # noqa: F811
    pipeline = world.training
    page = admin_client.get(f"/admin/pipelines/pipeline/{pipeline.pk}/change/")

    assert page.status_code == 200
    assert 'name="dated_installs"' in page.content.decode()


def test_the_run_page_says_what_date_the_installs_resolved_as_of(client, ui_world):  # noqa: F811
    client.force_login(ui_world.viewer)
    undated = client.get(f"/runs/{ui_world.run.pk}/").content.decode()
    Run.objects.filter(pk=ui_world.run.pk).update(installs_as_of=datetime(2022, 3, 4, tzinfo=UTC))

    page = client.get(f"/runs/{ui_world.run.pk}/").content.decode()

    assert "Installs as of" not in undated
    assert "<dt>Installs as of</dt>" in page and "2022-03-04 00:00:00" in page
