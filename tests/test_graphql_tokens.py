"""Machine clients: API tokens in two headers, and a run's own token, which sees only its run."""

from __future__ import annotations

import io
import secrets
import zipfile
from types import SimpleNamespace

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.test import Client

from bedrock.accounts.models import hash_token
from bedrock.accounts.services import api_token_create, api_token_revoke
from bedrock.actors import SYSTEM
from bedrock.models.models import ModelVersion
from bedrock.pipelines.models import PipelineKind, Role
from bedrock.runs.models import Run, RunStatus, RunStep
from bedrock.secrets.services import secret_set
from tests import factories

pytestmark = pytest.mark.django_db


def post(query: str, token: str | None = None, header: str = "Authorization", **variables):
    headers = {}
    if token is not None:
        headers[header] = f"Bearer {token}" if header == "Authorization" else token
    return Client(enforce_csrf_checks=True).post(
        "/graphql",
        {"query": query, "variables": variables},
        content_type="application/json",
        headers=headers,
    )


def data(query: str, token: str, **variables) -> dict:
    response = post(query, token, **variables)
    assert response.status_code == 200, response.content
    body = response.json()
    assert "errors" not in body, body["errors"]
    return body["data"]


def zip_bytes(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def stored_version(pipeline, number: int) -> ModelVersion:
    body = zip_bytes({"model.json": f'{{"v": {number}}}'})
    key = default_storage.save(f"models/test/v{number}.zip", ContentFile(body))
    run = Run.objects.create(
        pipeline=pipeline, number=100 + number, ref="main", status=RunStatus.SUCCEEDED
    )
    return ModelVersion.objects.create(
        model=pipeline.model,
        number=number,
        run=run,
        storage_key=key,
        size=len(body),
        sha256="0" * 64,
        file_count=1,
    )


def running(pipeline, number: int, **fields) -> tuple[Run, str]:
    """An active run and its plaintext token, as the supervisor hands it to the steps."""
    token = "bdrkrun_" + secrets.token_urlsafe(32)
    run = Run.objects.create(
        pipeline=pipeline,
        number=number,
        ref="main",
        status=RunStatus.RUNNING,
        token_hash=hash_token(token),
        **fields,
    )
    return run, token


@pytest.fixture
def world():
    project = factories.project("acme")
    member = factories.user("member")
    factories.member(project, member, Role.DEVELOPER)
    training = factories.pipeline(project, name="train")
    scoring = factories.pipeline(project, kind=PipelineKind.BATCH_SCORING, name="score")
    secret_set(actor=SYSTEM, pipeline=scoring, name="WAREHOUSE_KEY", value="do-not-show")
    v1, v2 = stored_version(training, 1), stored_version(training, 2)
    scoring_run, run_token = running(scoring, 1, input_model_version=v1)
    sibling = Run.objects.create(pipeline=scoring, number=2, ref="main", status=RunStatus.RUNNING)
    RunStep.objects.create(run=scoring_run, name="score", position=0, status=RunStatus.RUNNING)
    return SimpleNamespace(
        member=member,
        member_token=api_token_create(user=member).plaintext,
        training=training,
        scoring=scoring,
        v1=v1,
        v2=v2,
        run=scoring_run,
        run_token=run_token,
        sibling=sibling,
    )


# --- user tokens --------------------------------------------------------------------------------
PROJECTS = "{ projects { edges { node { name } } } }"


@pytest.mark.parametrize("header", ["Authorization", "X-Bedrock-Access-Token"])
def test_an_api_token_signs_its_user_in_through_either_header(world, header):
    response = post(PROJECTS, world.member_token, header=header)
    assert response.status_code == 200
    assert response.json()["data"]["projects"]["edges"] == [{"node": {"name": "acme"}}]


def test_a_token_client_needs_no_csrf_token_for_a_mutation(world):
    response = post(
        'mutation { createApiToken(name: "more") { ... on CreatedApiToken { token } } }',
        world.member_token,
    )
    assert response.status_code == 200
    assert response.json()["data"]["createApiToken"]["token"].startswith("bdrk_")


@pytest.mark.parametrize("token", ["bdrk_wrong", "", "garbage", "bdrkrun_wrong"])
def test_a_token_that_does_not_work_gets_a_401_not_the_anonymous_view(world, token):
    response = post(PROJECTS, token)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


def test_a_revoked_token_gets_a_401(world):
    created = api_token_create(user=world.member)
    api_token_revoke(actor=world.member, token=created.token)
    assert post(PROJECTS, created.plaintext).status_code == 401


def test_a_member_token_downloads_a_version_and_an_outsider_token_gets_a_404(world):
    url = f"/model-versions/{world.v1.pk}/download"
    member = Client().get(url, headers={"Authorization": f"Bearer {world.member_token}"})
    assert member.status_code == 200
    outsider_token = api_token_create(user=factories.user()).plaintext
    outsider = Client().get(url, headers={"Authorization": f"Bearer {outsider_token}"})
    assert outsider.status_code == 404


# --- a run's own token --------------------------------------------------------------------------
RUN = """query($id: ID!) { run(id: $id) { number status inputModelVersion { id number }
    steps { edges { node { name } } }
    pipeline { name runs { edges { node { number } } } secrets { edges { node { name } } } } } }"""


def test_a_run_token_reads_its_own_run_and_its_steps(world):
    run = data(RUN, world.run_token, id=str(world.run.pk))["run"]

    assert run["number"] == 1 and run["status"] == "RUNNING"
    assert run["inputModelVersion"] == {"id": str(world.v1.pk), "number": 1}
    assert run["steps"]["edges"] == [{"node": {"name": "score"}}]
    # Through its pipeline it still sees only itself, and no secret names.
    assert run["pipeline"]["runs"]["edges"] == [{"node": {"number": 1}}]
    assert run["pipeline"]["secrets"]["edges"] == []


def test_a_run_token_sees_no_other_run_and_no_lists_of_anything(world):
    token = world.run_token
    assert data(RUN, token, id=str(world.sibling.pk)) == {"run": None}
    assert data("{ runs { edges { node { number } } } }", token)["runs"]["edges"] == [
        {"node": {"number": 1}}
    ]
    assert data("{ pipelines { totalCount } }", token)["pipelines"]["totalCount"] == 0
    assert data(PROJECTS, token)["projects"]["edges"] == []
    assert data("{ models { totalCount } }", token)["models"]["totalCount"] == 0
    assert data("{ apiTokens { totalCount } }", token)["apiTokens"]["totalCount"] == 0
    pipeline = "query($id: ID!) { pipeline(id: $id) { name } }"
    assert data(pipeline, token, id=str(world.scoring.pk)) == {"pipeline": None}


VERSION = """query($id: ID!) { modelVersion(id: $id) { number downloadUrl
    model { name versions { edges { node { number } } } } } }"""


def test_a_run_token_reads_its_input_model_version_and_no_other(world):
    version = data(VERSION, world.run_token, id=str(world.v1.pk))["modelVersion"]

    assert version["downloadUrl"].endswith(f"/model-versions/{world.v1.pk}/download")
    assert version["model"]["versions"]["edges"] == [{"node": {"number": 1}}]
    assert data(VERSION, world.run_token, id=str(world.v2.pk)) == {"modelVersion": None}


def test_a_run_token_downloads_its_input_version_and_nothing_else(world):
    headers = {"Authorization": f"Bearer {world.run_token}"}

    own = Client().get(f"/model-versions/{world.v1.pk}/download", headers=headers)
    assert own.status_code == 200
    body = b"".join(own.streaming_content)
    assert zipfile.ZipFile(io.BytesIO(body)).read("model.json") == b'{"v": 1}'
    other = Client().get(f"/model-versions/{world.v2.pk}/download", headers=headers)
    assert other.status_code == 404


def test_a_run_token_changes_nothing(world):
    mutation = """mutation($id: ID!) { stopRun(id: $id) { ... on OperationInfo {
        messages { kind message } } } }"""
    result = data(mutation, world.run_token, id=str(world.run.pk))["stopRun"]
    assert result["messages"][0]["kind"] == "PERMISSION"
    world.run.refresh_from_db()
    assert world.run.status == RunStatus.RUNNING


@pytest.mark.parametrize("how", ["finished", "token cleared"])
def test_a_run_token_stops_working_when_the_run_ends(world, how):
    if how == "finished":
        Run.objects.filter(pk=world.run.pk).update(status=RunStatus.SUCCEEDED)
    else:
        Run.objects.filter(pk=world.run.pk).update(token_hash="")
    response = post(RUN, world.run_token, id=str(world.run.pk))
    assert response.status_code == 401
    download = Client().get(
        f"/model-versions/{world.v1.pk}/download",
        headers={"Authorization": f"Bearer {world.run_token}"},
    )
    assert download.status_code == 401


# --- uploading a training run's artefact --------------------------------------------------------
def upload(run_id: int, body: bytes, token: str | None, client: Client | None = None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return (client or Client(enforce_csrf_checks=True)).post(
        f"/runs/{run_id}/artefact", body, content_type="application/zip", headers=headers
    )


def test_a_training_runs_token_uploads_its_artefact_as_the_next_model_version(world):
    run, token = running(world.training, 50)
    body = zip_bytes({"model.json": "{}", "metrics/accuracy.txt": "0.9"})

    response = upload(run.pk, body, token)

    assert response.status_code == 201, response.content
    created = response.json()["modelVersion"]
    version = ModelVersion.objects.get(run=run)
    assert created == {
        "id": str(version.pk),
        "number": 3,
        "size": version.size,
        "sha256": version.sha256,
        "fileCount": 2,
    }
    with default_storage.open(version.storage_key) as handle, zipfile.ZipFile(handle) as archive:
        assert sorted(archive.namelist()) == ["metrics/accuracy.txt", "model.json"]
    again = upload(run.pk, zip_bytes({"other.txt": "x"}), token)
    assert again.json()["modelVersion"]["id"] == str(version.pk)
    assert ModelVersion.objects.filter(run=run).count() == 1


def test_only_the_runs_own_token_may_upload_its_artefact(world):
    run, _ = running(world.training, 50)
    body = zip_bytes({"model.json": "{}"})
    member_session = Client()
    member_session.force_login(world.member)

    assert upload(run.pk, body, world.run_token).status_code == 404  # another run's token
    assert upload(run.pk, body, world.member_token).status_code == 404  # a member's token
    assert upload(run.pk, body, None, member_session).status_code == 404  # a member's session
    assert upload(run.pk, body, None, Client()).status_code == 404  # nobody
    assert not ModelVersion.objects.filter(run=run).exists()


def test_an_unsafe_or_broken_upload_publishes_nothing(world):
    run, token = running(world.training, 50)
    slip = zip_bytes({"../../escape.txt": "x"})

    unsafe = upload(run.pk, slip, token)
    broken = upload(run.pk, b"not a zip", token)
    empty = upload(run.pk, zip_bytes({}), token)

    assert [unsafe.status_code, broken.status_code, empty.status_code] == [400, 400, 400]
    assert "escape.txt" in unsafe.json()["error"]
    assert not ModelVersion.objects.filter(run=run).exists()


def test_a_batch_scoring_run_uploads_no_model_version(world):
    response = upload(world.run.pk, zip_bytes({"scores.csv": "1"}), world.run_token)
    assert response.status_code == 409
