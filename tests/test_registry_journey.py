"""A new team's whole journey through the API, with runs that really run: from the account a site
administrator creates to scoring by alias and rolling the alias back.

Everything after the account is done by the team itself, through GraphQL and its own API token;
no one opens the Django admin again.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from bedrock.models.models import ModelVersion
from bedrock.runs.models import Run, RunStatus
from tests import factories
from tests.repos import hcl, make_repo, step
from tests.runflow import step_log, wait_until_done

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

TRAIN = hcl(
    "train",
    step("train", "echo weights-$WEIGHTS > $BEDROCK_ARTEFACT_DIR/model.txt"),
    parameters='WEIGHTS = "one"',
)
SCORE = hcl(
    "batch_score", step("score", "echo scoring with $(cat $BEDROCK_ARTEFACT_DIR/model.txt)")
)


def account_created_by_an_administrator(admin: Client, username: str) -> None:
    """The one thing a site administrator does: create the account, in the Django admin."""
    response = admin.post(
        "/admin/auth/user/add/",
        {
            "username": username,
            "usable_password": "true",
            "password1": "a-long-password-1",
            "password2": "a-long-password-1",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]


class Api:
    """GraphQL as a team member's script speaks it: a token, and errors that fail the test."""

    def __init__(self, token: str) -> None:
        self.token = token

    def __call__(self, query: str, **variables) -> dict:
        response = Client().post(
            "/graphql",
            {"query": query, "variables": variables},
            content_type="application/json",
            headers={"Authorization": f"Bearer {self.token}"},
        )
        assert response.status_code == 200, response.content
        body = response.json()
        assert "errors" not in body, body["errors"]
        (answer,) = body["data"].values()
        assert "messages" not in (answer or {}), answer
        return answer


CREATE_TOKEN = 'mutation { createApiToken(name: "laptop") { ... on CreatedApiToken { token } } }'


def token_of(username: str) -> str:
    """The member signs in with their password and makes themselves an API token."""
    browser = Client()
    assert browser.login(username=username, password="a-long-password-1")
    response = browser.post(
        "/graphql",
        {"query": CREATE_TOKEN},
        content_type="application/json",
    )
    return response.json()["data"]["createApiToken"]["token"]


def finished(run_id: str) -> Run:
    return wait_until_done(Run.objects.get(pk=run_id))


START = """mutation($pipeline: ID!, $parameters: JSON, $alias: String, $ref: String) {
  startRun(pipelineId: $pipeline, parameters: $parameters, modelAlias: $alias, ref: $ref) {
    ... on Run { id status } ... on OperationInfo { messages { field message } } } }"""
SET_ALIAS = """mutation($model: ID!, $version: ID!, $note: String!) {
  setModelAlias(modelId: $model, alias: "production", versionId: $version, note: $note) {
    ... on Model { id } ... on OperationInfo { messages { field message } } } }"""
ROLLBACK = """mutation($model: ID!) { rollbackModelAlias(modelId: $model, alias: "production") {
  ... on Model { id } ... on OperationInfo { messages { field message } } } }"""
HISTORY = """query($model: ID!) { model(id: $model) {
  aliases { name version { number } }
  aliasHistory(first: 10) { edges { node { alias fromVersion { number } toVersion { number }
    note } } } } }"""


def test_a_new_team_goes_from_an_account_to_scoring_by_alias_and_rolling_back(tmp_path):
    administrator = Client()
    administrator.force_login(factories.user("root", is_staff=True, is_superuser=True))
    account_created_by_an_administrator(administrator, "ada")
    account_created_by_an_administrator(administrator, "bob")
    ada = Api(token_of("ada"))
    repo = make_repo(tmp_path / "churn", {"bedrock.hcl": TRAIN, "score/bedrock.hcl": SCORE})

    project = ada(
        'mutation { createProject(data: {name: "churn-team"}) { ... on Project { id } } }'
    )
    model = ada(
        'mutation($p: ID!) { createModel(data: {projectId: $p, name: "churn"}) '
        "{ ... on Model { id } } }",
        p=project["id"],
    )
    ada(
        'mutation($p: ID!) { setMembership(projectId: $p, username: "bob", role: DEVELOPER) '
        "{ ... on Membership { username role } } }",
        p=project["id"],
    )
    pipelines = {}
    for name, kind, path, model_id in (
        ("train", "TRAINING", "bedrock.hcl", model["id"]),
        ("score", "BATCH_SCORING", "score/bedrock.hcl", None),
    ):
        pipelines[name] = ada(
            """mutation($data: CreatePipelineInput!) { createPipeline(data: $data) {
              ... on Pipeline { id } ... on OperationInfo { messages { field message } } } }""",
            data={
                "projectId": project["id"],
                "name": name,
                "gitUrl": str(repo),
                "kind": kind,
                "configPath": path,
                "modelId": model_id,
            },
        )["id"]

    # Bob, the developer Ada added, trains twice: v1 and v2.
    bob = Api(token_of("bob"))
    for weights in ("one", "two"):
        run = finished(
            bob(START, pipeline=pipelines["train"], parameters={"WEIGHTS": weights})["id"]
        )
        assert run.status == RunStatus.SUCCEEDED, run.failure_reason
    v1, v2 = ModelVersion.objects.filter(model_id=model["id"]).order_by("number")
    assert (v1.number, v2.number) == (1, 2)

    # Ada points production at v1, then moves it to v2.
    ada(SET_ALIAS, model=model["id"], version=str(v1.pk), note="first release")
    ada(SET_ALIAS, model=model["id"], version=str(v2.pk), note="retrained")

    # Scoring by alias uses what the alias names at creation, and the run keeps it.
    scored = finished(bob(START, pipeline=pipelines["score"], alias="production")["id"])
    assert scored.status == RunStatus.SUCCEEDED, scored.failure_reason
    assert (scored.input_model_alias, scored.input_model_version) == ("churn@production", v2)
    assert "scoring with weights-two" in step_log(scored, "score")

    # v2 misbehaves: one rollback, and the next scoring run uses v1 again.
    ada(ROLLBACK, model=model["id"])
    rescored = finished(bob(START, pipeline=pipelines["score"], alias="production")["id"])
    assert rescored.input_model_version == v1
    assert "scoring with weights-one" in step_log(rescored, "score")
    scored.refresh_from_db()
    assert scored.input_model_version == v2

    seen = ada(HISTORY, model=model["id"])
    assert seen["aliases"] == [{"name": "production", "version": {"number": 1}}]
    changes = [edge["node"] for edge in seen["aliasHistory"]["edges"]]
    assert [(c["fromVersion"], c["toVersion"]) for c in changes] == [
        ({"number": 2}, {"number": 1}),
        ({"number": 1}, {"number": 2}),
        (None, {"number": 1}),
    ]
    assert [c["note"] for c in changes][1:] == ["retrained", "first release"]
    assert not get_user_model().objects.get(username="ada").is_staff
