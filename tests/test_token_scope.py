"""API tokens that expire and tokens that only read: a read-only token runs queries, and every
mutation and every other write it sends is refused; an expiry is in the future and within
BEDROCK_TOKEN_MAX_LIFETIME; an expired token gets a 401."""

from __future__ import annotations

import json
import secrets
from datetime import datetime, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.utils import timezone

from bedrock.accounts.models import ApiToken, hash_token
from bedrock.accounts.services import api_token_create
from bedrock.pipelines.models import Project, Role
from bedrock.runs.models import Run, RunStatus
from tests import factories

pytestmark = pytest.mark.django_db

PROJECTS = "{ projects { edges { node { name } } } }"
CREATE_PROJECT = """mutation { createProject(data: {name: "fraud"}) {
  ... on Project { name } ... on OperationInfo { messages { kind message code } } } }"""
CREATE_TOKEN = """mutation($expiresAt: DateTime, $readOnly: Boolean!) {
  createApiToken(name: "ci", expiresAt: $expiresAt, readOnly: $readOnly) {
    ... on CreatedApiToken { apiToken { readOnly expiresAt } }
    ... on OperationInfo { messages { kind field message } } } }"""


@pytest.fixture
def member():
    person = factories.user("mia")
    factories.member(factories.project("acme"), person, Role.ADMIN)
    return person


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def graphql(token: str, query: str, **variables) -> dict:
    response = Client(enforce_csrf_checks=True).post(
        "/graphql",
        {"query": query, "variables": variables},
        content_type="application/json",
        headers=bearer(token),
    )
    assert response.status_code == 200, response.content
    return response.json()


# --- read-only tokens ---------------------------------------------------------------------------
def test_a_read_only_token_runs_queries_by_post_and_by_get(member):
    token = api_token_create(user=member, name="dash", read_only=True).plaintext

    body = graphql(token, PROJECTS)
    fetched = Client().get("/graphql", {"query": PROJECTS}, headers=bearer(token))

    assert body["data"]["projects"]["edges"] == [{"node": {"name": "acme"}}]
    assert fetched.status_code == 200
    assert json.loads(fetched.content)["data"] == body["data"]


def test_a_read_only_token_is_refused_every_mutation_with_a_permission_message(member):
    read_only = api_token_create(user=member, name="dash", read_only=True).plaintext

    refused = graphql(read_only, CREATE_PROJECT)["data"]["createProject"]

    assert refused["messages"] == [
        {"kind": "PERMISSION", "message": "This API token is read-only.", "code": "read_only"}
    ]
    assert not Project.objects.filter(name="fraud").exists()
    # Nor may it make itself a token that writes.
    made = graphql(read_only, CREATE_TOKEN, readOnly=False)["data"]["createApiToken"]
    assert made["messages"][0]["kind"] == "PERMISSION"
    assert ApiToken.objects.filter(user=member).count() == 1


def test_a_token_that_writes_runs_the_same_mutation(member):
    token = api_token_create(user=member, name="ci").plaintext

    done = graphql(token, CREATE_PROJECT)["data"]["createProject"]

    assert done == {"name": "fraud"}


def test_a_read_only_token_is_refused_every_other_write(member):
    read_only = api_token_create(user=member, name="dash", read_only=True).plaintext
    writer = api_token_create(user=member, name="ci").plaintext
    client = Client()

    refused = client.post("/projects/new", {"name": "fraud"}, headers=bearer(read_only))
    assert refused.status_code == 403
    assert refused.json()["errors"][0]["message"] == "This API token is read-only."
    assert not Project.objects.filter(name="fraud").exists()
    headers = {"X-Bedrock-Api-Token": read_only}
    assert client.post("/tokens/", {"name": "more"}, headers=headers).status_code == 403
    assert ApiToken.objects.filter(user=member).count() == 2

    # Its reads still work, and a token that writes may post the same form.
    assert client.get("/projects/", headers=bearer(read_only)).status_code == 200
    assert (
        client.post("/projects/new", {"name": "fraud"}, headers=bearer(writer)).status_code == 302
    )
    assert Project.objects.filter(name="fraud").exists()


def test_a_runs_own_token_is_no_user_token_and_keeps_its_writes(member):
    project = Project.objects.get(name="acme")
    token = "bdrkrun_" + secrets.token_urlsafe(32)
    run = Run.objects.create(
        pipeline=factories.pipeline(project),
        number=1,
        ref="main",
        status=RunStatus.RUNNING,
        token_hash=hash_token(token),
    )

    response = Client().post(
        "/api/tracking",
        json.dumps({"metrics": []}),
        content_type="application/json",
        headers=bearer(token),
    )

    assert response.status_code != 403, response.content
    assert Run.objects.get(pk=run.pk).status == RunStatus.RUNNING


# --- expiry -------------------------------------------------------------------------------------
def test_an_expired_token_gets_a_401(member):
    created = api_token_create(
        user=member, name="ci", expires_at=timezone.now() + timedelta(days=1)
    )
    assert graphql(created.plaintext, PROJECTS)["data"]["projects"]["edges"]

    ApiToken.objects.filter(pk=created.token.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    response = Client().post(
        "/graphql",
        {"query": PROJECTS},
        content_type="application/json",
        headers=bearer(created.plaintext),
    )

    assert response.status_code == 401


@pytest.mark.parametrize(
    ("offset", "fragment"),
    [
        (timedelta(seconds=-1), "Choose an expiry in the future."),
        (timedelta(days=366), "at most 365d (BEDROCK_TOKEN_MAX_LIFETIME)"),
    ],
)
def test_an_expiry_in_the_past_or_past_the_longest_lifetime_is_refused(member, offset, fragment):
    with pytest.raises(ValidationError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        api_token_create(user=member, name="ci", expires_at=timezone.now() + offset)

    assert not ApiToken.objects.exists()


def test_the_longest_lifetime_is_a_setting(member, settings):
    settings.BEDROCK_TOKEN_MAX_LIFETIME = timedelta(days=30)

    with pytest.raises(ValidationError, match="at most 30d"):
        api_token_create(user=member, expires_at=timezone.now() + timedelta(days=31))
    assert api_token_create(user=member, expires_at=timezone.now() + timedelta(days=29))


def test_create_api_token_takes_an_expiry_and_a_scope(member):
    writer = api_token_create(user=member, name="ci").plaintext
    expires = (timezone.now() + timedelta(days=7)).isoformat()

    made = graphql(writer, CREATE_TOKEN, expiresAt=expires, readOnly=True)["data"]
    past = (timezone.now() - timedelta(days=1)).isoformat()
    refused = graphql(writer, CREATE_TOKEN, expiresAt=past, readOnly=False)["data"]

    token = made["createApiToken"]["apiToken"]
    assert token["readOnly"] is True
    assert datetime.fromisoformat(token["expiresAt"]) == datetime.fromisoformat(expires)
    (problem,) = refused["createApiToken"]["messages"]
    assert (problem["kind"], problem["field"]) == ("VALIDATION", "expiresAt")


# --- the tokens page ----------------------------------------------------------------------------
def test_the_tokens_page_is_in_the_main_navigation(member):
    client = Client()
    client.force_login(member)

    nav = client.get("/").content.decode().split('class="mainnav"')[1].split("</nav>")[0]

    assert 'href="/tokens/"' in nav


def test_the_tokens_page_creates_an_expiring_read_only_token_and_lists_both(member):
    client = Client()
    client.force_login(member)

    page = client.post("/tokens/", {"name": "dash", "expires": "30", "read_only": "on"})

    token = ApiToken.objects.get(user=member)
    assert token.read_only
    assert timedelta(days=29) < token.expires_at - timezone.now() <= timedelta(days=30)
    html = page.content.decode()
    assert "read-only" in html and token.expires_at.strftime("%Y-%m-%d") in html


def test_the_tokens_page_refuses_a_date_in_the_past_and_makes_no_token(member):
    client = Client()
    client.force_login(member)
    yesterday = (timezone.now() - timedelta(days=1)).date().isoformat()

    page = client.post("/tokens/", {"name": "x", "expires": "date", "expires_on": yesterday})

    assert "Choose an expiry in the future." in page.content.decode()
    assert not ApiToken.objects.exists()


def test_a_token_lifetime_that_is_not_positive_fails_the_check(settings):
    from bedrock.checks import check_teams

    settings.BEDROCK_TOKEN_MAX_LIFETIME = timedelta(0)

    (error,) = check_teams(None)
    assert error.id == "bedrock.E071"
