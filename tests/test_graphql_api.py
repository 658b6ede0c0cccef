"""The GraphQL API: every query and mutation as a project admin, a member and an outsider.

Runs here are rows made directly, or runs the service rejects at once (an invalid ref), so no
run executes; runs that execute are in test_graphql_runs.py.
"""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.core.management import call_command
from django.test import Client
from graphql import get_introspection_query

from bedrock.accounts.models import ApiToken
from bedrock.accounts.services import api_token_create
from bedrock.actors import SYSTEM
from bedrock.models.models import ModelVersion
from bedrock.pipelines.models import Pipeline, PipelineKind, Role
from bedrock.runs.models import Run, RunStatus, RunStep, Trigger
from bedrock.runs.workspace import log_key, log_path
from bedrock.secrets.models import Secret
from bedrock.secrets.services import secret_set
from tests import factories

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[1]


def gql(client: Client, query: str, **variables) -> dict:
    response = client.post(
        "/graphql",
        {"query": query, "variables": variables},
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    return response.json()


def data(client: Client, query: str, **variables) -> dict:
    body = gql(client, query, **variables)
    assert "errors" not in body, body["errors"]
    return body["data"]


def client_for(user) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


@pytest.fixture
def world():
    """A project with an admin, a developer, a viewer; an outsider; a site administrator."""
    project = factories.project("acme")
    people = {role: factories.user(f"{role}-user") for role in Role.values}
    for role, person in people.items():
        factories.member(project, person, role)
    training = factories.pipeline(project, name="train")
    scoring = factories.pipeline(project, kind=PipelineKind.BATCH_SCORING, name="score")
    run = Run.objects.create(
        pipeline=training, number=1, ref="main", status=RunStatus.SUCCEEDED, commit_sha="a" * 40
    )
    step = RunStep.objects.create(
        run=run, name="train", position=0, status=RunStatus.SUCCEEDED, log_key=log_key(run.pk, "t")
    )
    path = log_path(run.pk, "t")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("epoch 1\nepoch 2\n")
    version = ModelVersion.objects.create(
        model=training.model,
        number=1,
        run=run,
        storage_key="models/x/run-1.zip",
        size=5_000_000_000,
        sha256="0" * 64,
        file_count=3,
    )
    secret_set(actor=SYSTEM, pipeline=training, name="DB_PASSWORD", value="hunter2-value")

    other = factories.project("elsewhere")
    other_pipeline = factories.pipeline(other, name="theirs")
    other_run = Run.objects.create(
        pipeline=other_pipeline, number=1, ref="main", status=RunStatus.RUNNING
    )
    return SimpleNamespace(
        project=project,
        admin=people[Role.ADMIN],
        developer=people[Role.DEVELOPER],
        viewer=people[Role.VIEWER],
        outsider=factories.user("outsider"),
        superuser=factories.user("root", is_superuser=True, is_staff=True),
        training=training,
        scoring=scoring,
        run=run,
        step=step,
        version=version,
        other_pipeline=other_pipeline,
        other_run=other_run,
    )


def payload_error(result: dict) -> dict:
    """The one OperationInfo message a failed mutation returned."""
    (message,) = result["messages"]
    return message


ERRORS = "... on OperationInfo { messages { kind message field code } }"


# --- queries ------------------------------------------------------------------------------------
PIPELINES = "{ pipelines { totalCount edges { node { id name kind project { name } } } } }"


@pytest.mark.parametrize("who", ["admin", "developer", "viewer"])
def test_members_list_their_projects_pipelines(world, who):
    result = data(client_for(getattr(world, who)), PIPELINES)["pipelines"]

    assert result["totalCount"] == 2
    names = {edge["node"]["name"] for edge in result["edges"]}
    assert names == {"train", "score"}


def test_an_outsider_and_an_anonymous_client_list_no_pipelines(world):
    for who in (world.outsider, None):
        assert data(client_for(who), PIPELINES)["pipelines"] == {"totalCount": 0, "edges": []}


def test_a_site_administrator_lists_every_projects_pipelines(world):
    result = data(client_for(world.superuser), PIPELINES)["pipelines"]
    assert {edge["node"]["name"] for edge in result["edges"]} == {"train", "score", "theirs"}


def test_pipelines_filter_by_kind_and_name_and_hide_archived_ones_unless_asked(world):
    client = client_for(world.viewer)
    query = """query($archived: Boolean!) { pipelines(includeArchived: $archived,
        filters: {kind: {exact: BATCH_SCORING}, name: {iContains: "SCO"}}) { edges { node { name
        archived } } } }"""
    assert data(client, query, archived=False)["pipelines"]["edges"] == [
        {"node": {"name": "score", "archived": False}}
    ]
    Pipeline.objects.filter(pk=world.scoring.pk).update(archived_at="2025-01-01T00:00:00Z")
    assert data(client, query, archived=False)["pipelines"]["edges"] == []
    assert data(client, query, archived=True)["pipelines"]["edges"] == [
        {"node": {"name": "score", "archived": True}}
    ]


def test_pipelines_page_with_cursors(world):
    client = client_for(world.viewer)
    query = """query($after: String) { pipelines(first: 1, after: $after,
        ordering: [{name: ASC}]) { pageInfo { hasNextPage endCursor } edges { node { name } } } }"""
    first = data(client, query)["pipelines"]
    assert [e["node"]["name"] for e in first["edges"]] == ["score"]
    assert first["pageInfo"]["hasNextPage"] is True
    second = data(client, query, after=first["pageInfo"]["endCursor"])["pipelines"]
    assert [e["node"]["name"] for e in second["edges"]] == ["train"]
    assert second["pageInfo"]["hasNextPage"] is False


PIPELINE = """query($id: ID!) { pipeline(id: $id) { id name gitUrl branch configPath maxRunTime
    model { name } secrets { edges { node { name updatedAt } } } } }"""


def test_the_pipeline_page_shows_the_maximum_run_time_as_the_api_writes_it(world):
    Pipeline.objects.filter(pk=world.training.pk).update(max_run_time=timedelta(hours=48))
    client = client_for(world.viewer)

    api = data(client, PIPELINE, id=str(world.training.pk))["pipeline"]["maxRunTime"]
    page = client.get(f"/pipelines/{world.training.pk}/").content.decode()

    assert api == "2d"
    assert f"<dt>Maximum run time</dt><dd>{api}</dd>" in page


@pytest.mark.parametrize("who", ["admin", "viewer"])
def test_a_member_reads_a_pipeline_with_its_secret_names_but_no_values(world, who):
    body = gql(client_for(getattr(world, who)), PIPELINE, id=str(world.training.pk))

    pipeline = body["data"]["pipeline"]
    assert pipeline["name"] == "train" and pipeline["maxRunTime"] == "3d"
    assert pipeline["secrets"]["edges"][0]["node"]["name"] == "DB_PASSWORD"
    assert "hunter2" not in str(body)


def test_an_outsider_gets_null_for_a_pipeline_exactly_as_for_a_missing_one(world):
    client = client_for(world.outsider)
    assert data(client, PIPELINE, id=str(world.training.pk)) == {"pipeline": None}
    assert data(client, PIPELINE, id="999999") == {"pipeline": None}
    assert data(client, PIPELINE, id="not-a-number") == {"pipeline": None}


def test_a_secret_value_cannot_even_be_asked_for(world):
    query = "query($id: ID!) { pipeline(id: $id) { secrets { edges { node { value } } } } }"
    body = gql(client_for(world.admin), query, id=str(world.training.pk))
    assert "Cannot query field 'value'" in body["errors"][0]["message"]


RUNS = """query($filters: RunFilter) { runs(filters: $filters) { totalCount edges { node { id
    number status pipeline { name } } } } }"""


def test_runs_filter_by_pipeline_status_and_time(world):
    client = client_for(world.viewer)
    Run.objects.create(pipeline=world.scoring, number=1, ref="main", status=RunStatus.FAILED)

    everything = data(client, RUNS)["runs"]
    assert everything["totalCount"] == 2  # not the other project's run

    def numbers(filters):
        return [
            (e["node"]["pipeline"]["name"], e["node"]["status"])
            for e in data(client, RUNS, filters=filters)["runs"]["edges"]
        ]

    assert numbers({"pipelineId": {"exact": str(world.training.pk)}}) == [("train", "SUCCEEDED")]
    assert numbers({"status": {"inList": ["FAILED", "RUNNING"]}}) == [("score", "FAILED")]
    assert numbers({"number": {"exact": 1}, "ref": {"exact": "main"}}) == [
        ("score", "FAILED"),
        ("train", "SUCCEEDED"),
    ]
    assert numbers({"createdAt": {"gte": "2000-01-01T00:00:00Z"}, "finishedAt": {"isNull": True}})
    assert numbers({"createdAt": {"lt": "2000-01-01T00:00:00Z"}}) == []


def test_an_outsider_sees_no_runs(world):
    assert data(client_for(world.outsider), RUNS)["runs"]["totalCount"] == 0


RUN = """query($id: ID!, $offset: BigInt!) { run(id: $id) { number status commitSha trigger
    triggeredBy parameters maxRunTime outputModelVersion { number } steps { edges { node {
    name status log(offset: $offset) { text nextOffset complete } } } } } }"""


@pytest.mark.parametrize("who", ["admin", "viewer"])
def test_a_member_reads_a_run_with_its_steps_and_follows_a_log_from_an_offset(world, who):
    client = client_for(getattr(world, who))

    run = data(client, RUN, id=str(world.run.pk), offset=0)["run"]
    assert run["status"] == "SUCCEEDED" and run["outputModelVersion"] == {"number": 1}
    (step,) = [edge["node"] for edge in run["steps"]["edges"]]
    assert step["log"] == {"text": "epoch 1\nepoch 2\n", "nextOffset": 16, "complete": True}

    later = data(client, RUN, id=str(world.run.pk), offset=8)["run"]
    assert later["steps"]["edges"][0]["node"]["log"]["text"] == "epoch 2\n"


def test_a_running_steps_log_is_not_complete_while_it_can_still_grow(world):
    RunStep.objects.filter(pk=world.step.pk).update(status=RunStatus.RUNNING)
    run = data(client_for(world.viewer), RUN, id=str(world.run.pk), offset=16)["run"]
    assert run["steps"]["edges"][0]["node"]["log"] == {
        "text": "",
        "nextOffset": 16,
        "complete": False,
    }


def test_a_negative_log_offset_is_an_error_not_a_crash(world):
    body = gql(client_for(world.viewer), RUN, id=str(world.run.pk), offset=-1)
    assert "offset must be 0 or more" in body["errors"][0]["message"]


def test_an_outsider_gets_null_for_a_run(world):
    assert data(client_for(world.outsider), RUN, id=str(world.run.pk), offset=0) == {"run": None}


MODELS = "{ models { edges { node { name versions { edges { node { number } } } } } } }"
MODEL = "query($id: ID!) { model(id: $id) { name project { name } } }"
VERSION = """query($id: ID!) { modelVersion(id: $id) { number size sha256 fileCount filename
    downloadUrl model { name } run { number } } }"""


@pytest.mark.parametrize("who", ["admin", "viewer"])
def test_a_member_reads_models_and_a_versions_download_url(world, who):
    client = client_for(getattr(world, who))
    model_name = world.training.model.name

    edges = data(client, MODELS)["models"]["edges"]
    assert {e["node"]["name"] for e in edges} == {model_name}
    assert data(client, MODEL, id=str(world.training.model.pk))["model"]["project"] == {
        "name": "acme"
    }
    version = data(client, VERSION, id=str(world.version.pk))["modelVersion"]
    assert version["downloadUrl"] == f"http://testserver/model-versions/{world.version.pk}/download"
    assert version["size"] == 5_000_000_000  # past 32 bits
    assert version["filename"] == f"{model_name}-v1.zip" and version["run"] == {"number": 1}


def test_an_outsider_sees_no_models_or_versions(world):
    client = client_for(world.outsider)
    assert data(client, MODELS)["models"]["edges"] == []
    assert data(client, MODEL, id=str(world.training.model.pk)) == {"model": None}
    assert data(client, VERSION, id=str(world.version.pk)) == {"modelVersion": None}


def test_projects_lists_only_your_projects(world):
    query = "{ projects { edges { node { name } } } }"
    assert data(client_for(world.viewer), query)["projects"]["edges"] == [
        {"node": {"name": "acme"}}
    ]
    assert data(client_for(world.outsider), query)["projects"]["edges"] == []


# --- pipeline mutations -------------------------------------------------------------------------
CREATE = (
    """mutation($data: CreatePipelineInput!) { createPipeline(data: $data) {
    ... on Pipeline { id name kind maxRunTime model { id } project { name } } """
    + ERRORS
    + " } }"
)


def new_pipeline(world, **fields) -> dict:
    return {
        "projectId": str(world.project.pk),
        "name": "nightly",
        "gitUrl": "https://git.example.com/team/nightly.git",
        "kind": "BATCH_SCORING",
        **fields,
    }


def test_a_project_admin_creates_a_pipeline(world):
    created = data(client_for(world.admin), CREATE, data=new_pipeline(world, maxRunTime="2h"))
    pipeline = created["createPipeline"]

    assert pipeline["name"] == "nightly" and pipeline["kind"] == "BATCH_SCORING"
    assert pipeline["maxRunTime"] == "2h" and pipeline["project"] == {"name": "acme"}
    stored = Pipeline.objects.get(pk=pipeline["id"])
    assert stored.created_by == world.admin


def test_a_developer_may_not_create_a_pipeline(world):
    result = data(client_for(world.developer), CREATE, data=new_pipeline(world))["createPipeline"]
    assert payload_error(result)["kind"] == "PERMISSION"
    assert not Pipeline.objects.filter(name="nightly").exists()


def test_an_outsider_creating_a_pipeline_is_told_the_project_does_not_exist(world):
    result = data(client_for(world.outsider), CREATE, data=new_pipeline(world))["createPipeline"]
    error = payload_error(result)
    assert error == {
        "kind": "ERROR",
        "message": f"There is no project with id {world.project.pk}.",
        "field": None,
        "code": "not_found",
    }


def test_an_anonymous_client_may_not_create_a_pipeline(world):
    result = data(client_for(None), CREATE, data=new_pipeline(world))["createPipeline"]
    assert payload_error(result)["kind"] == "PERMISSION"


def test_invalid_pipeline_fields_come_back_as_validation_errors_naming_the_field(world):
    client = client_for(world.admin)

    bad_url = data(client, CREATE, data=new_pipeline(world, gitUrl="ftp://example.com/repo.git"))
    assert {m["field"] for m in bad_url["createPipeline"]["messages"]} == {"gitUrl"}

    bad_time = data(client, CREATE, data=new_pipeline(world, maxRunTime="soon"))
    assert payload_error(bad_time["createPipeline"])["field"] == "maxRunTime"

    training_without_model = data(client, CREATE, data=new_pipeline(world, kind="TRAINING"))
    error = payload_error(training_without_model["createPipeline"])
    assert error["kind"] == "VALIDATION" and error["field"] == "modelId"

    duplicate = data(client, CREATE, data=new_pipeline(world, name="train"))
    assert payload_error(duplicate["createPipeline"])["kind"] == "VALIDATION"


def test_a_model_of_another_project_is_not_found_for_a_new_pipeline(world):
    foreign_model = world.other_pipeline.model
    result = data(
        client_for(world.admin),
        CREATE,
        data=new_pipeline(world, kind="TRAINING", modelId=str(foreign_model.pk)),
    )["createPipeline"]
    assert payload_error(result)["field"] == "modelId"
    assert payload_error(result)["code"] == "not_found"


UPDATE = (
    """mutation($id: ID!, $data: UpdatePipelineInput!) { updatePipeline(id: $id, data: $data) {
    ... on Pipeline { name branch maxRunTime } """
    + ERRORS
    + " } }"
)


def test_a_project_admin_updates_only_the_fields_given(world):
    result = data(
        client_for(world.admin), UPDATE, id=str(world.training.pk), data={"branch": "release"}
    )["updatePipeline"]
    assert result == {"name": "train", "branch": "release", "maxRunTime": "3d"}


def test_only_a_site_administrator_may_raise_the_maximum_run_time(world):
    raise_it = {"maxRunTime": "5d"}
    refused = data(client_for(world.admin), UPDATE, id=str(world.training.pk), data=raise_it)
    assert payload_error(refused["updatePipeline"])["field"] == "maxRunTime"
    allowed = data(client_for(world.superuser), UPDATE, id=str(world.training.pk), data=raise_it)
    assert allowed["updatePipeline"]["maxRunTime"] == "5d"


@pytest.mark.parametrize(("who", "kind"), [("developer", "PERMISSION"), ("outsider", "ERROR")])
def test_others_may_not_update_a_pipeline(world, who, kind):
    result = data(
        client_for(getattr(world, who)), UPDATE, id=str(world.training.pk), data={"name": "x"}
    )["updatePipeline"]
    assert payload_error(result)["kind"] == kind
    world.training.refresh_from_db()
    assert world.training.name == "train"


ARCHIVE = (
    "mutation($id: ID!) { archivePipeline(id: $id) { ... on Pipeline { archived } "
    + ERRORS
    + " } }"
)


def test_a_project_admin_archives_a_pipeline_and_the_list_drops_it(world):
    client = client_for(world.admin)
    assert data(client, ARCHIVE, id=str(world.scoring.pk))["archivePipeline"] == {"archived": True}
    names = {e["node"]["name"] for e in data(client, PIPELINES)["pipelines"]["edges"]}
    assert names == {"train"}


@pytest.mark.parametrize(("who", "kind"), [("developer", "PERMISSION"), ("outsider", "ERROR")])
def test_others_may_not_archive_a_pipeline(world, who, kind):
    result = data(client_for(getattr(world, who)), ARCHIVE, id=str(world.scoring.pk))
    assert payload_error(result["archivePipeline"])["kind"] == kind
    world.scoring.refresh_from_db()
    assert not world.scoring.archived


# --- runs -----------------------------------------------------------------------------------------
START = (
    """mutation($pipelineId: ID!, $ref: String, $parameters: JSON, $key: String,
    $version: ID) { startRun(pipelineId: $pipelineId, ref: $ref, parameters: $parameters,
    idempotencyKey: $key, modelVersionId: $version) {
    ... on Run { id number status failureReason trigger triggeredBy } """
    + ERRORS
    + " } }"
)
# validate_ref refuses this before any Git work: the run is created Rejected, and nothing runs.
BAD_REF = "bad..ref"


@pytest.mark.parametrize("who", ["admin", "developer"])
def test_a_developer_starts_a_run_that_is_rejected_with_the_reason(world, who):
    result = data(
        client_for(getattr(world, who)), START, pipelineId=str(world.training.pk), ref=BAD_REF
    )["startRun"]
    assert result["status"] == "REJECTED" and "bad..ref" in result["failureReason"]
    assert result["trigger"] == "API" and result["triggeredBy"] == f"{who}-user"


def test_the_same_idempotency_key_twice_returns_the_same_run(world):
    client = client_for(world.developer)
    first = data(client, START, pipelineId=str(world.training.pk), ref=BAD_REF, key="nightly-1")
    again = data(client, START, pipelineId=str(world.training.pk), ref=BAD_REF, key="nightly-1")
    assert first["startRun"]["id"] == again["startRun"]["id"]
    assert Run.objects.filter(idempotency_key="nightly-1").count() == 1


@pytest.mark.parametrize(("who", "kind"), [("viewer", "PERMISSION"), ("outsider", "ERROR")])
def test_viewers_and_outsiders_may_not_start_runs(world, who, kind):
    before = Run.objects.count()
    result = data(client_for(getattr(world, who)), START, pipelineId=str(world.training.pk))
    assert payload_error(result["startRun"])["kind"] == kind
    assert Run.objects.count() == before


def test_malformed_run_arguments_are_validation_errors_naming_the_argument(world):
    client = client_for(world.developer)
    pipeline_id = str(world.training.pk)

    def field(**arguments):
        result = data(client, START, pipelineId=pipeline_id, **arguments)["startRun"]
        message = payload_error(result)
        assert message["kind"] == "VALIDATION", message
        return message["field"]

    assert field(parameters=["EPOCHS"]) == "parameters"
    assert field(parameters={"EPOCHS": {"nested": 1}}) == "parameters"
    assert field(parameters={"BEDROCK_X": "1"}) == "parameters"
    assert field(version="v1") == "modelVersionId"
    assert field(key="k" * 201) == "idempotencyKey"


def test_an_archived_pipeline_starts_no_run(world):
    Pipeline.objects.filter(pk=world.training.pk).update(archived_at="2025-01-01T00:00:00Z")
    result = data(client_for(world.developer), START, pipelineId=str(world.training.pk))
    assert payload_error(result["startRun"])["field"] == "pipelineId"


STOP = "mutation($id: ID!) { stopRun(id: $id) { ... on Run { status } " + ERRORS + " } }"


@pytest.fixture
def accepted_run(world):
    return Run.objects.create(
        pipeline=world.training, number=2, ref="main", status=RunStatus.ACCEPTED
    )


@pytest.mark.parametrize("who", ["admin", "developer"])
def test_a_developer_stops_a_run(world, accepted_run, who):
    result = data(client_for(getattr(world, who)), STOP, id=str(accepted_run.pk))
    assert result["stopRun"] == {"status": "STOPPED"}


@pytest.mark.parametrize(("who", "kind"), [("viewer", "PERMISSION"), ("outsider", "ERROR")])
def test_viewers_and_outsiders_may_not_stop_runs(world, accepted_run, who, kind):
    result = data(client_for(getattr(world, who)), STOP, id=str(accepted_run.pk))
    assert payload_error(result["stopRun"])["kind"] == kind
    accepted_run.refresh_from_db()
    assert accepted_run.status == RunStatus.ACCEPTED


# --- secrets ------------------------------------------------------------------------------------
SET_SECRET = (
    """mutation($pipelineId: ID!, $name: String!, $value: String!) {
    setSecret(pipelineId: $pipelineId, name: $name, value: $value) {
    ... on Secret { name updatedAt } """
    + ERRORS
    + " } }"
)
DELETE_SECRET = (
    """mutation($pipelineId: ID!, $name: String!) { deleteSecret(pipelineId: $pipelineId,
    name: $name) { ... on DeletedSecret { name deleted } """
    + ERRORS
    + " } }"
)


@pytest.mark.parametrize("who", ["admin", "developer"])
def test_a_developer_sets_a_secret_and_never_sees_its_value_again(world, who):
    body = gql(
        client_for(getattr(world, who)),
        SET_SECRET,
        pipelineId=str(world.training.pk),
        name="API_KEY",
        value="s3cr3t-value",
    )
    assert body["data"]["setSecret"]["name"] == "API_KEY"
    assert "s3cr3t" not in str(body)
    assert Secret.objects.get(pipeline=world.training, name="API_KEY").value == "s3cr3t-value"


def test_a_secret_with_an_invalid_name_is_a_validation_error_on_name(world):
    result = data(
        client_for(world.developer),
        SET_SECRET,
        pipelineId=str(world.training.pk),
        name="1-bad name",
        value="a-good-value",
    )
    assert payload_error(result["setSecret"])["field"] == "name"


@pytest.mark.parametrize("who", ["admin", "developer"])
def test_a_developer_deletes_a_secret(world, who):
    client = client_for(getattr(world, who))
    arguments = {"pipelineId": str(world.training.pk), "name": "DB_PASSWORD"}
    assert data(client, DELETE_SECRET, **arguments)["deleteSecret"] == {
        "name": "DB_PASSWORD",
        "deleted": True,
    }
    assert data(client, DELETE_SECRET, **arguments)["deleteSecret"]["deleted"] is False


@pytest.mark.parametrize(("who", "kind"), [("viewer", "PERMISSION"), ("outsider", "ERROR")])
def test_viewers_and_outsiders_may_not_set_or_delete_secrets(world, who, kind):
    client = client_for(getattr(world, who))
    pipeline_id = str(world.training.pk)
    set_result = data(client, SET_SECRET, pipelineId=pipeline_id, name="X", value="y")
    delete_result = data(client, DELETE_SECRET, pipelineId=pipeline_id, name="DB_PASSWORD")
    assert payload_error(set_result["setSecret"])["kind"] == kind
    assert payload_error(delete_result["deleteSecret"])["kind"] == kind
    assert set(Secret.objects.values_list("name", flat=True)) == {"DB_PASSWORD"}


# --- validateConfig -----------------------------------------------------------------------------
VALIDATE = (
    """mutation($text: String!) { validateConfig(text: $text) { ... on ConfigCheck { valid
    problems { path message line column severity } } """
    + ERRORS
    + " } }"
)
BROKEN_HCL = """version = "1.0"
train {
  step "train" {
    image = "python:3.11-slim"
    script = [{sh = ["python train.py"]}]
    resources { cpu = "lots" }
  }
}
"""


@pytest.mark.parametrize("who", ["admin", "viewer", "outsider"])
def test_validate_config_returns_each_problem_with_line_column_and_key_path(world, who):
    result = data(client_for(getattr(world, who)), VALIDATE, text=BROKEN_HCL)["validateConfig"]

    assert result["valid"] is False
    problem = next(p for p in result["problems"] if p["severity"] == "ERROR")
    assert problem["path"] == "train.step.train.resources.cpu"
    assert (problem["line"], problem["column"]) == (6, 23)  # the value


def test_validate_config_accepts_a_valid_file(world):
    text = BROKEN_HCL.replace('cpu = "lots"', 'cpu = "500m"')
    result = data(client_for(world.viewer), VALIDATE, text=text)["validateConfig"]
    assert result == {"valid": True, "problems": []}


def test_validate_config_needs_a_signed_in_client(world):
    result = data(client_for(None), VALIDATE, text=BROKEN_HCL)["validateConfig"]
    assert payload_error(result)["kind"] == "PERMISSION"


# --- API tokens ---------------------------------------------------------------------------------
CREATE_TOKEN = (
    """mutation($name: String!) { createApiToken(name: $name) { ... on CreatedApiToken { token
    apiToken { id name prefix } } """
    + ERRORS
    + " } }"
)
REVOKE_TOKEN = (
    "mutation($id: ID!) { revokeApiToken(id: $id) { ... on ApiToken { revokedAt } "
    + ERRORS
    + " } }"
)


@pytest.mark.parametrize("who", ["admin", "viewer", "outsider"])
def test_anyone_signed_in_creates_a_token_shown_once_that_then_works(world, who):
    person = getattr(world, who)
    created = data(client_for(person), CREATE_TOKEN, name="scheduler")["createApiToken"]

    token = created["token"]
    assert token.startswith(created["apiToken"]["prefix"]) and token.startswith("bdrk_")
    listed = data(client_for(person), "{ apiTokens { edges { node { id name prefix } } } }")
    assert listed["apiTokens"]["edges"] == [{"node": created["apiToken"]}]
    assert token not in str(listed)
    as_token = Client().post(
        "/graphql",
        {"query": "{ projects { totalCount } }"},
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert as_token.status_code == 200
    assert as_token.json()["data"]["projects"]["totalCount"] == (0 if who == "outsider" else 1)


def test_an_anonymous_client_creates_no_token(world):
    result = data(client_for(None), CREATE_TOKEN, name="x")["createApiToken"]
    assert payload_error(result)["kind"] == "PERMISSION"
    assert not ApiToken.objects.exists()


@pytest.mark.parametrize(
    ("who", "allowed"), [("admin", True), ("superuser", True), ("viewer", False)]
)
def test_a_token_is_revoked_by_its_owner_or_a_site_administrator_only(world, who, allowed):
    created = api_token_create(user=world.admin, name="ci")
    result = data(client_for(getattr(world, who)), REVOKE_TOKEN, id=str(created.token.pk))
    created.token.refresh_from_db()
    if allowed:
        assert result["revokeApiToken"]["revokedAt"] is not None
        assert created.token.revoked_at is not None
    else:
        assert payload_error(result["revokeApiToken"])["code"] == "not_found"
        assert created.token.revoked_at is None


# --- the endpoint -------------------------------------------------------------------------------
def test_graphiql_answers_a_browser(world):
    response = Client().get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert b"graphiql" in response.content.lower()


def test_a_session_client_needs_the_csrf_token_graphiql_sends(world):
    client = Client(enforce_csrf_checks=True)
    client.force_login(world.viewer)
    query = {"query": "{ projects { totalCount } }"}

    assert client.post("/graphql", query, "application/json").status_code == 403
    page = client.get("/graphql", headers={"Accept": "text/html"})
    token = page.cookies["csrftoken"].value
    response = client.post("/graphql", query, "application/json", headers={"X-CSRFToken": token})
    assert response.status_code == 200
    assert response.json()["data"]["projects"]["totalCount"] == 1


def test_too_deep_a_query_is_refused(world):
    level = "runs { edges { node { pipeline { "
    query = "{ " + level * 4 + "id" + " } } } }" * 4 + " }"
    body = gql(client_for(world.viewer), query)
    assert "exceeds maximum operation depth" in body["errors"][0]["message"]


def test_graphiqls_introspection_query_fits_within_the_limits(world):
    query = get_introspection_query(descriptions=True, input_value_deprecation=True)
    body = gql(client_for(world.viewer), query)
    assert "errors" not in body
    assert body["data"]["__schema"]["queryType"]["name"] == "Query"


def test_too_many_aliases_are_refused(world):
    query = "{ " + " ".join(f"a{i}: projects {{ totalCount }}" for i in range(30)) + " }"
    body = gql(client_for(world.viewer), query)
    assert "aliases" in body["errors"][0]["message"]


def test_a_started_run_can_be_read_back_with_its_trigger(world):
    run = Run.objects.create(
        pipeline=world.training, number=5, ref="main", trigger=Trigger.API, triggered_by=world.admin
    )
    result = data(client_for(world.viewer), RUN, id=str(run.pk), offset=0)["run"]
    assert result["trigger"] == "API" and result["triggeredBy"] == "admin-user"


def test_schema_graphql_at_the_root_is_the_exported_schema():
    out = io.StringIO()
    call_command("export_schema", "bedrock.schema", stdout=out)
    committed = (ROOT / "schema.graphql").read_text()
    assert committed.strip() == out.getvalue().strip(), (
        "schema.graphql is stale: run manage.py export_schema bedrock.schema --path schema.graphql"
    )
