"""What one person or one project may hold: each limit refused by name, on the field at fault."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from bedrock.accounts import services as accounts
from bedrock.actors import SYSTEM
from bedrock.models import services as models
from bedrock.pipelines import services as pipelines
from bedrock.pipelines.models import Project, Role
from tests import factories
from tests.test_graphql_api import client_for

pytestmark = pytest.mark.django_db


def field_errors(exc: pytest.ExceptionInfo[ValidationError]) -> dict[str, list[str]]:
    return exc.value.message_dict


def test_a_person_creates_at_most_the_projects_one_may_administer(monkeypatch):
    monkeypatch.setattr(pipelines, "MAX_PROJECTS_ADMINISTERED", 2)
    ada = factories.user("ada")
    pipelines.project_create(actor=ada, name="one")
    pipelines.project_create(actor=ada, name="two")

    with pytest.raises(ValidationError) as refused:
        pipelines.project_create(actor=ada, name="three")

    assert "the most one person may create (2)" in field_errors(refused)["name"][0]
    assert not Project.objects.filter(name="three").exists()
    pipelines.project_create(actor=SYSTEM, name="three")  # the platform is not held to it


def test_a_project_holds_at_most_its_limit_of_members_and_models(monkeypatch):
    monkeypatch.setattr(pipelines, "MAX_MEMBERS_PER_PROJECT", 1)
    monkeypatch.setattr(models, "MAX_MODELS_PER_PROJECT", 1)
    ada, bob = factories.user("ada"), factories.user("bob")
    project = pipelines.project_create(actor=ada, name="acme")
    models.model_create(actor=ada, project=project, name="churn")

    with pytest.raises(ValidationError) as members:
        pipelines.membership_set(actor=ada, project=project, username="bob", role=Role.VIEWER)
    with pytest.raises(ValidationError) as more_models:
        models.model_create(actor=ada, project=project, name="fraud")

    assert "1 members, the most a project may have" in field_errors(members)["username"][0]
    assert "1 models, the most a project may have" in field_errors(more_models)["name"][0]
    assert not project.memberships.filter(user=bob).exists()
    # Changing the role of someone already in is no new member.
    pipelines.membership_set(actor=ada, project=project, username="ada", role=Role.ADMIN)


def test_a_person_holds_at_most_the_working_tokens_allowed_and_a_revoked_one_frees_a_place(
    monkeypatch,
):
    monkeypatch.setattr(accounts, "MAX_USABLE_TOKENS", 2)
    ada = factories.user("ada")
    first = accounts.api_token_create(user=ada, name="a")
    accounts.api_token_create(user=ada, name="b")

    with pytest.raises(ValidationError) as refused:
        accounts.api_token_create(user=ada, name="c")
    page = client_for(ada).post("/tokens/", {"name": "c", "expires": "30"}).content.decode()

    assert "revoke one you no longer use" in field_errors(refused)["name"][0]
    assert "revoke one you no longer use" in page
    accounts.api_token_revoke(actor=ada, token=first.token)
    assert accounts.api_token_create(user=ada, name="c").token.name == "c"


def test_a_description_past_ten_thousand_characters_is_refused_for_projects_and_models():
    ada = factories.user("ada")
    project = pipelines.project_create(actor=ada, name="acme")

    with pytest.raises(ValidationError) as of_project:
        pipelines.project_update(actor=ada, project=project, description="x" * 10_001)
    with pytest.raises(ValidationError) as of_model:
        models.model_create(actor=ada, project=project, name="churn", description="x" * 10_001)

    assert "description" in field_errors(of_project)
    assert "description" in field_errors(of_model)
