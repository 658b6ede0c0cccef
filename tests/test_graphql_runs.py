"""Runs started through the API that really execute: following logs, the run's own token at work,
the README's scheduler script, and concurrent starts with one idempotency key."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest
from django.db import connection
from django.test import Client

from bedrock.accounts.services import api_token_create
from bedrock.models.models import ModelVersion
from bedrock.models.services import model_version_publish
from bedrock.pipelines.models import PipelineKind, Role
from bedrock.runs.models import Run, RunStatus, Trigger
from tests import factories
from tests.repos import hcl, make_repo, step
from tests.runflow import pipeline_for, step_log, wait_for, wait_until_done

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parents[1]


def gql(token: str, query: str, base: str = "", **variables) -> dict:
    response = Client().post(
        f"{base}/graphql",
        {"query": query, "variables": variables},
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert "errors" not in body, body["errors"]
    return body["data"]


def developer_of(pipeline) -> str:
    """An API token of a developer of the pipeline's project."""
    person = factories.user()
    factories.member(pipeline.project, person, Role.DEVELOPER)
    return api_token_create(user=person).plaintext


START = """mutation($pipeline: ID!, $key: String, $version: ID) { startRun(pipelineId: $pipeline,
    idempotencyKey: $key, modelVersionId: $version) { ... on Run { id status }
    ... on OperationInfo { messages { kind field message } } } }"""
FOLLOW = """query($id: ID!, $offset: BigInt!) { run(id: $id) { status outputModelVersion { number }
    steps { edges { node { name log(offset: $offset) { text nextOffset complete } } } } } }"""


@pytest.mark.slow
def test_a_client_follows_a_running_steps_log_by_offset_until_the_run_ends(tmp_path):
    talk = step("talk", "echo first; sleep 2; echo second; echo model > $BEDROCK_ARTEFACT_DIR/m")
    repo = make_repo(tmp_path / "repo", {"bedrock.hcl": hcl("train", talk)})
    pipeline = pipeline_for(repo)
    token = developer_of(pipeline)

    started = gql(token, START, pipeline=str(pipeline.pk))["startRun"]
    assert started["status"] == "ACCEPTED", started
    run = Run.objects.get(pk=started["id"])
    assert run.trigger == Trigger.API

    chunks, offset, complete = [], 0, False

    def read_more():
        nonlocal offset, complete
        found = gql(token, FOLLOW, id=started["id"], offset=offset)["run"]["steps"]["edges"]
        if found:
            log = found[0]["node"]["log"]
            if log["text"]:
                chunks.append(log["text"])
            offset, complete = log["nextOffset"], log["complete"]
        return complete

    wait_for(read_more, timeout=120, interval=0.2, what="the step's log to be complete")
    wait_until_done(run)

    assert run.status == RunStatus.SUCCEEDED, run.failure_reason
    # After Bedrock's own first line, on the Python standing in for the step's image.
    assert "".join(chunks).partition("\n")[2] == "first\nsecond\n"
    assert len(chunks) >= 2, "the log was read while the step was still writing it"
    final = gql(token, FOLLOW, id=started["id"], offset=offset)["run"]
    assert final["outputModelVersion"] == {"number": 1}


RUN_TOKEN_SCRIPT = r"""
import io, json, os, urllib.request, zipfile

api, token = os.environ["BEDROCK_API_DOMAIN"], os.environ["BEDROCK_API_TOKEN"]


def call(path, body, content_type):
    request = urllib.request.Request(api + path, data=body, method="POST", headers={
        "Authorization": "Bearer " + token, "Content-Type": content_type})
    with urllib.request.urlopen(request) as response:
        return response.status, json.load(response)


def graphql(query):
    return call("/graphql", json.dumps({"query": query}).encode(), "application/json")[1]["data"]


# BEDROCK_PIPELINE_RUN_ID is the run's number in its pipeline; with this token, `runs` lists
# just the one run, which gives its id.
(own,) = graphql("{ runs { edges { node { id number status } } } }")["runs"]["edges"]
assert str(own["node"]["number"]) == os.environ["BEDROCK_PIPELINE_RUN_ID"]
run_id = own["node"]["id"]
print("own run:", graphql('{ run(id: "%s") { status } }' % run_id)["run"]["status"])
print("pipelines:", graphql("{ pipelines { totalCount } }")["pipelines"]["totalCount"])
buffer = io.BytesIO()
with zipfile.ZipFile(buffer, "w") as archive:
    archive.writestr("weights.txt", "uploaded by the step")
status, body = call("/runs/%s/artefact" % run_id, buffer.getvalue(), "application/zip")
print("upload:", status, "version", body["modelVersion"]["number"])
"""


@pytest.mark.slow
def test_a_step_uses_its_runs_token_to_read_its_run_and_upload_its_artefact(
    tmp_path, live_server, settings
):
    settings.BEDROCK_API_DOMAIN = live_server.url
    repo = make_repo(
        tmp_path / "repo",
        {
            "bedrock.hcl": hcl("train", step("upload", "python3 use_token.py")),
            "use_token.py": RUN_TOKEN_SCRIPT,
        },
    )
    pipeline = pipeline_for(repo)
    token = developer_of(pipeline)

    started = gql(token, START, pipeline=str(pipeline.pk))["startRun"]
    run = wait_until_done(Run.objects.get(pk=started["id"]))

    assert run.status == RunStatus.SUCCEEDED, step_log(run, "upload")
    log = gql(token, FOLLOW, id=started["id"], offset=0)["run"]["steps"]["edges"][0]["node"]
    text = log["log"]["text"].partition("\n")[2]  # after the line on the step's Python
    assert text == "own run: RUNNING\npipelines: 0\nupload: 201 version 1\n"
    version = ModelVersion.objects.get(run=run)
    assert version.file_count == 1
    assert run.token_hash == ""


def publish(pipeline, number: int, tmp_path: Path) -> ModelVersion:
    """A model version as a training run would publish it, without running one."""
    trained = Run.objects.create(
        pipeline=pipeline, number=number, ref="main", status=RunStatus.SUCCEEDED
    )
    directory = tmp_path / f"artefact-{number}"
    directory.mkdir()
    (directory / "model.txt").write_text(f"model v{number}\n")
    return model_version_publish(run=trained, directory=directory)


@pytest.mark.slow
def test_the_readme_scheduler_script_scores_with_the_newest_version_and_waits(
    tmp_path, live_server
):
    scoring_steps = step("score", "cat $BEDROCK_ARTEFACT_DIR/model.txt; echo scored")
    repo = make_repo(tmp_path / "repo", {"bedrock.hcl": hcl("batch_score", scoring_steps)})
    training = pipeline_for(repo, name="train")
    scoring = pipeline_for(
        repo, kind=PipelineKind.BATCH_SCORING, project=training.project, name="score"
    )
    publish(training, 1, tmp_path)
    newest = publish(training, 2, tmp_path)
    token = developer_of(scoring)

    def scheduler(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [
                sys.executable,
                str(ROOT / "bedrock" / "examples" / "scheduler.py"),
                "--url",
                live_server.url,
                "--pipeline",
                str(scoring.pk),
                "--model",
                str(training.model_id),
                "--key",
                "nightly-2025-01-31",
                "--interval",
                "0.5",
                "--timeout",
                "150",
                *extra,
            ],
            env={"PATH": "/usr/bin:/bin", "BEDROCK_TOKEN": token},
            capture_output=True,
            text=True,
            timeout=180,
        )

    first = scheduler("--logs")

    assert first.returncode == 0, first.stdout + first.stderr
    assert "scoring with model version 2" in first.stdout
    assert "[score] model v2\n[score] scored\n" in first.stdout
    assert "SUCCEEDED" in first.stdout
    run = Run.objects.get(pipeline=scoring)
    assert run.input_model_version == newest and run.status == RunStatus.SUCCEEDED

    again = scheduler()  # a retry with the same key finds the same, finished run
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"run 1 (id {run.pk}): SUCCEEDED" in again.stdout
    assert Run.objects.filter(pipeline=scoring).count() == 1


def test_the_scheduler_script_fails_plainly_with_a_bad_token(live_server):
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bedrock" / "examples" / "scheduler.py"),
            "--url",
            live_server.url,
            "--token",
            "bdrk_wrong",
            "--pipeline",
            "1",
            "--model",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "HTTP 401" in result.stderr


@pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="SQLite serialises every write, so concurrent starts cannot race; CI runs this on "
    "PostgreSQL (DATABASE_URL)",
)
def test_twenty_concurrent_starts_with_one_idempotency_key_create_one_run(tmp_path):
    # A batch scoring run without a model version is rejected after the commit is resolved: the
    # whole creation path runs, Git included, and nothing is left executing afterwards.
    repo = make_repo(tmp_path / "repo", {"bedrock.hcl": hcl("batch_score", step("s", "true"))})
    pipeline = pipeline_for(repo, kind=PipelineKind.BATCH_SCORING)
    token = developer_of(pipeline)
    barrier = threading.Barrier(20)
    results: list[dict] = []
    failures: list[BaseException] = []

    def start() -> None:
        try:
            barrier.wait(timeout=30)
            results.append(gql(token, START, pipeline=str(pipeline.pk), key="once")["startRun"])
        except BaseException as exc:  # reported below, in the test's own thread
            failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=start) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert not failures, failures
    assert len(results) == 20
    assert {result.get("id") for result in results} == {str(Run.objects.get().pk)}
    assert Run.objects.get().status == RunStatus.REJECTED
