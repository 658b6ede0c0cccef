"""Batch scoring by model alias: the run keeps the alias it was asked for and the version the alias
named at creation, through the service, the API and the command line.

The runs are created in a test transaction that never commits, so none is submitted or executes.
"""

from __future__ import annotations

import io
import subprocess
import sys

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from bedrock.accounts.services import api_token_create
from bedrock.actors import SYSTEM
from bedrock.models.aliases import model_alias_set
from bedrock.pipelines.models import PipelineKind, Role
from bedrock.runs.models import Run, RunStatus
from bedrock.runs.services import run_create, run_rerun
from tests import factories
from tests.repos import hcl, make_repo, step
from tests.runflow import pipeline_for
from tests.test_aliases import versions_of
from tests.test_graphql_api import ROOT, client_for, data, payload_error
from tests.test_graphql_runs import publish

pytestmark = pytest.mark.django_db


@pytest.fixture
def scoring(tmp_path):
    """A batch scoring pipeline of a real repository, and a model ``churn`` with three versions,
    ``production`` naming v2."""
    repo = make_repo(tmp_path / "repo", {"bedrock.hcl": hcl("batch_score", step("s", "true"))})
    project = factories.project("acme")
    pipeline = factories.pipeline(
        project, kind=PipelineKind.BATCH_SCORING, name="score", git_url=str(repo)
    )
    model = factories.model(project, "churn")
    versions = versions_of(model, 3)
    model_alias_set(actor=SYSTEM, model=model, name="production", version=versions[1])
    return pipeline, model, versions


def start(pipeline, alias: str, **fields) -> Run:
    return run_create(actor=SYSTEM, pipeline=pipeline, model_alias=alias, **fields)


@pytest.mark.parametrize("asked", ["churn@production", "production", " production "])
def test_a_run_by_alias_records_the_alias_and_the_version_it_named(scoring, asked):
    pipeline, _, versions = scoring
    run = start(pipeline, asked)

    assert run.status == RunStatus.ACCEPTED, run.failure_reason
    assert run.input_model_alias == "churn@production"
    assert run.input_model_version == versions[1]


def test_moving_the_alias_afterwards_changes_neither_the_run_nor_its_rerun(scoring):
    pipeline, model, versions = scoring
    run = start(pipeline, "production")
    model_alias_set(actor=SYSTEM, model=model, name="production", version=versions[2])

    run.refresh_from_db()
    assert run.input_model_version == versions[1]
    rerun = run_rerun(actor=SYSTEM, run=run)
    assert rerun.input_model_version == versions[1]
    assert rerun.input_model_alias == ""


def test_the_pipeline_page_says_which_alias_a_run_scored_by(scoring):
    pipeline, _, _ = scoring
    start(pipeline, "production")

    page = client_for(member_of(pipeline, Role.VIEWER)).get(f"/pipelines/{pipeline.pk}/")

    assert 'scored churn v2</a> <span class="muted">(churn@production)</span>' in (
        page.content.decode()
    )


def test_a_bare_alias_two_models_have_is_refused_listing_the_choices(scoring):
    pipeline, _, _ = scoring
    fraud = factories.model(pipeline.project, "fraud")
    (theirs,) = versions_of(fraud, 1)
    model_alias_set(actor=SYSTEM, model=fraud, name="production", version=theirs)

    with pytest.raises(ValidationError) as refused:
        start(pipeline, "production")
    (message,) = refused.value.message_dict["model_alias"]
    assert "churn@production, fraud@production" in message
    assert start(pipeline, "fraud@production").input_model_version == theirs
    assert Run.objects.filter(pipeline=pipeline).count() == 1


@pytest.mark.parametrize("asked", ["staging", "churn@staging", "fraud@production"])
def test_an_unknown_alias_is_refused_naming_it(scoring, asked):
    pipeline, _, _ = scoring
    with pytest.raises(ValidationError) as refused:
        start(pipeline, asked)
    (message,) = refused.value.message_dict["model_alias"]
    assert repr(asked) in message
    assert not Run.objects.filter(pipeline=pipeline).exists()


def test_an_alias_of_another_project_is_unknown(scoring):
    pipeline, _, _ = scoring
    elsewhere = factories.model(factories.project("elsewhere"), "theirs")
    (version,) = versions_of(elsewhere, 1)
    model_alias_set(actor=SYSTEM, model=elsewhere, name="production", version=version)

    with pytest.raises(ValidationError, match="no model alias 'theirs@production'"):
        start(pipeline, "theirs@production")


def test_a_nul_byte_in_an_alias_is_refused_before_any_query(scoring):
    pipeline, _, _ = scoring
    with pytest.raises(ValidationError) as refused:
        start(pipeline, "prod\x00uction")
    (message,) = refused.value.message_dict["model_alias"]
    assert "holds a NUL byte" in message


def test_an_alias_and_a_version_together_are_refused(scoring):
    pipeline, _, versions = scoring
    with pytest.raises(ValidationError, match="not both"):
        start(pipeline, "production", model_version_id=versions[0].pk)


def test_a_training_run_takes_no_alias(scoring):
    pipeline, model, _ = scoring
    training = factories.pipeline(pipeline.project, model=model)
    with pytest.raises(ValidationError, match="only batch scoring"):
        start(training, "production")


def test_the_alias_is_part_of_the_idempotency_request(scoring):
    pipeline, model, versions = scoring
    model_alias_set(actor=SYSTEM, model=model, name="staging", version=versions[0])
    first = start(pipeline, "production", idempotency_key="nightly")

    # The same request again, even after the alias moved, is the same run.
    model_alias_set(actor=SYSTEM, model=model, name="production", version=versions[2])
    assert start(pipeline, "churn@production", idempotency_key="nightly") == first
    with pytest.raises(ValidationError) as refused:
        start(pipeline, "staging", idempotency_key="nightly")
    assert refused.value.error_dict["idempotency_key"][0].code == "conflict"


# --- GraphQL ------------------------------------------------------------------------------------
START = """mutation($pipeline: ID!, $alias: String) {
    startRun(pipelineId: $pipeline, modelAlias: $alias) {
    ... on Run { id status inputModelAlias inputModelVersion { number } }
    ... on OperationInfo { messages { kind message field code } } } }"""


def member_of(pipeline, role: str):
    person = factories.user()
    factories.member(pipeline.project, person, role)
    return person


def test_a_developer_starts_a_run_by_alias_through_the_api(scoring, settings):
    settings.BEDROCK_ALLOW_UNSANDBOXED = True
    pipeline, _, _ = scoring
    client = client_for(member_of(pipeline, Role.DEVELOPER))

    run = data(client, START, pipeline=str(pipeline.pk), alias="production")["startRun"]
    assert run["status"] == "ACCEPTED"
    assert run["inputModelAlias"] == "churn@production"
    assert run["inputModelVersion"] == {"number": 2}


def test_an_unknown_alias_is_reported_on_model_alias(scoring):
    pipeline, _, _ = scoring
    client = client_for(member_of(pipeline, Role.DEVELOPER))
    result = data(client, START, pipeline=str(pipeline.pk), alias="staging")["startRun"]
    assert payload_error(result)["field"] == "modelAlias"
    assert "'staging'" in payload_error(result)["message"]


@pytest.mark.parametrize(("who", "kind"), [("viewer", "PERMISSION"), ("outsider", "ERROR")])
def test_a_viewer_may_not_and_an_outsider_cannot_find_the_pipeline(scoring, who, kind):
    pipeline, _, _ = scoring
    person = member_of(pipeline, Role.VIEWER) if who == "viewer" else factories.user()
    result = data(client_for(person), START, pipeline=str(pipeline.pk), alias="production")
    assert payload_error(result["startRun"])["kind"] == kind
    assert not Run.objects.filter(pipeline=pipeline).exists()


# --- the command line ---------------------------------------------------------------------------
def test_bedrock_run_takes_a_model_alias(scoring, monkeypatch):
    pipeline, _, _ = scoring
    # The run is only created here: submitting it would execute it.
    monkeypatch.setattr("bedrock.runs.management.commands.run.run_submit", lambda run_id: True)
    out = io.StringIO()
    call_command("run", "acme/score", "--model-alias", "churn@production", stdout=out)

    run = Run.objects.get(pipeline=pipeline)
    assert (run.input_model_alias, run.input_model_version.number) == ("churn@production", 2)
    assert "scoring with churn@production → v2" in out.getvalue()

    with pytest.raises(CommandError, match="no model alias 'churn@staging'"):
        call_command("run", "acme/score", "--model-alias", "churn@staging", stdout=out)


# --- the run form -------------------------------------------------------------------------------
def test_the_run_form_lists_aliases_first_and_picks_production(scoring, settings):
    settings.BEDROCK_ALLOW_UNSANDBOXED = True
    pipeline, model, versions = scoring
    model_alias_set(actor=SYSTEM, model=model, name="staging", version=versions[2])
    client = client_for(member_of(pipeline, Role.DEVELOPER))

    page = client.get(f"/pipelines/{pipeline.pk}/run").content.decode()
    picker = page.split('name="model_version"')[1].split("</select>")[0]
    assert picker.index("churn@production → v2") < picker.index("churn@staging → v3")
    assert picker.index("churn@staging → v3") < picker.index("churn v3 —")
    assert '<option value="churn@production" selected>' in picker

    response = client.post(
        f"/pipelines/{pipeline.pk}/run", {"ref": "main", "model_version": "churn@staging"}
    )
    run = Run.objects.get(pipeline=pipeline)
    assert response.status_code == 302 and response["Location"] == f"/runs/{run.pk}/"
    assert (run.input_model_alias, run.input_model_version) == ("churn@staging", versions[2])
    assert "churn@staging → v3 at creation" in client.get(f"/runs/{run.pk}/").content.decode()


def test_the_run_form_picks_the_newest_version_without_a_production_alias(scoring):
    pipeline, model, versions = scoring
    model_alias_set(actor=SYSTEM, model=model, name="production", version=versions[0])
    fraud = factories.model(pipeline.project, "fraud")
    (theirs,) = versions_of(fraud, 1)
    model_alias_set(actor=SYSTEM, model=fraud, name="production", version=theirs)
    client = client_for(member_of(pipeline, Role.DEVELOPER))

    page = client.get(f"/pipelines/{pipeline.pk}/run").content.decode()
    # Two models have a production alias: neither is taken for the other.
    aliases = page.split('name="model_version"')[1].split('label="Versions"')[0]
    assert "churn@production → v1" in aliases and "selected" not in aliases
    assert f'<option value="{theirs.pk}" selected>' in page


def test_the_run_form_still_takes_a_version(scoring):
    pipeline, _, versions = scoring
    client = client_for(member_of(pipeline, Role.DEVELOPER))
    client.post(f"/pipelines/{pipeline.pk}/run", {"ref": "main", "model_version": versions[0].pk})
    run = Run.objects.get(pipeline=pipeline)
    assert (run.input_model_alias, run.input_model_version) == ("", versions[0])


@pytest.mark.parametrize(("who", "status"), [("viewer", 403), ("outsider", 404)])
def test_a_viewer_may_not_and_an_outsider_cannot_start_a_run_by_alias(scoring, who, status):
    pipeline, _, _ = scoring
    person = member_of(pipeline, Role.VIEWER) if who == "viewer" else factories.user()
    response = client_for(person).post(
        f"/pipelines/{pipeline.pk}/run", {"ref": "main", "model_version": "churn@production"}
    )
    assert response.status_code == status
    assert not Run.objects.filter(pipeline=pipeline).exists()


# --- the scheduler example ----------------------------------------------------------------------
def scheduler(live_server, token: str, *arguments: str) -> subprocess.CompletedProcess:
    script = ROOT / "bedrock" / "examples" / "scheduler.py"
    polling = ("--interval", "0.5", "--timeout", "150")
    command = [sys.executable, str(script), "--url", live_server.url, *polling, *arguments]
    environment = {"PATH": "/usr/bin:/bin", "BEDROCK_TOKEN": token}
    return subprocess.run(command, env=environment, capture_output=True, text=True, timeout=180)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_scheduler_script_scores_with_the_version_an_alias_names(tmp_path, live_server):
    scoring_steps = step("score", "cat $BEDROCK_ARTEFACT_DIR/model.txt; echo scored")
    repo = make_repo(tmp_path / "repo", {"bedrock.hcl": hcl("batch_score", scoring_steps)})
    training = pipeline_for(repo, name="train")
    scoring = pipeline_for(
        repo, kind=PipelineKind.BATCH_SCORING, project=training.project, name="score"
    )
    first = publish(training, 1, tmp_path)
    publish(training, 2, tmp_path)
    model_alias_set(actor=SYSTEM, model=training.model, name="production", version=first)
    token = api_token_create(user=member_of(scoring, Role.DEVELOPER)).plaintext

    result = scheduler(
        live_server, token, "--pipeline", str(scoring.pk), "--alias", "production", "--logs"
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "scoring with train-model@production: model version 1" in result.stdout
    assert "[score] model v1\n[score] scored\n" in result.stdout
    run = Run.objects.get(pipeline=scoring)
    assert run.input_model_version == first and run.input_model_alias == "train-model@production"


@pytest.mark.django_db(transaction=True)
def test_the_scheduler_script_reports_an_unknown_alias(live_server):
    project = factories.project("acme")
    pipeline = factories.pipeline(project, kind=PipelineKind.BATCH_SCORING, name="score")
    token = api_token_create(user=member_of(pipeline, Role.DEVELOPER)).plaintext

    result = scheduler(live_server, token, "--pipeline", str(pipeline.pk), "--alias", "prod")

    assert result.returncode == 2
    assert "There is no model alias 'prod' in the project acme" in result.stderr
    assert not Run.objects.filter(pipeline=pipeline).exists()


def test_the_scheduler_script_takes_a_model_or_an_alias_not_both(live_server):
    both = scheduler(live_server, "t", "--pipeline", "1", "--model", "1", "--alias", "production")
    assert both.returncode == 2 and "one of the two" in both.stderr
