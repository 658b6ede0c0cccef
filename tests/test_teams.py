"""A team runs itself: a signed-in user creates a project and becomes its admin, adds members,
changes their roles and creates models, in the services, the GraphQL API and the web UI."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management import call_command
from django.test import Client

from bedrock.actors import SYSTEM, Staff
from bedrock.models.models import Model
from bedrock.pipelines.models import Membership, Pipeline, PipelineKind, Project, Role
from bedrock.pipelines.services import (
    membership_remove,
    membership_set,
    project_create,
    project_update,
)
from tests import factories
from tests.repos import EXAMPLE, make_repo

pytestmark = pytest.mark.django_db
ERRORS = "... on OperationInfo { messages { kind message field code } }"


@pytest.fixture
def team():
    """A project with an admin and a developer; an outsider; a member-to-be."""
    project = factories.project("acme")
    admin, developer = factories.user("ada"), factories.user("dev")
    factories.member(project, admin, Role.ADMIN)
    factories.member(project, developer, Role.DEVELOPER)
    return SimpleNamespace(
        project=project,
        admin=admin,
        developer=developer,
        outsider=factories.user("oscar"),
        newcomer=factories.user("bob"),
    )


def role_of(project: Project, user) -> str | None:
    found = Membership.objects.filter(project=project, user=user).first()
    return found.role if found else None


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def gql(user, query: str, **variables) -> dict:
    response = client_for(user).post(
        "/graphql", {"query": query, "variables": variables}, content_type="application/json"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert "errors" not in body, body["errors"]
    return body["data"]


def message(result: dict) -> dict:
    (only,) = result["messages"]
    return only


# --- services -----------------------------------------------------------------------------------
def test_a_signed_in_user_creates_a_project_and_becomes_its_admin():
    alice = factories.user("alice")

    project = project_create(actor=alice, name="fraud", description="Card fraud")

    assert (project.name, project.description) == ("fraud", "Card fraud")
    assert role_of(project, alice) == Role.ADMIN


def test_a_project_created_by_the_platform_or_in_the_admin_has_no_member():
    staff = factories.user("staff", is_staff=True)

    by_system = project_create(actor=SYSTEM, name="one")
    by_staff = project_create(actor=Staff(staff), name="two")

    assert not Membership.objects.filter(project__in=[by_system, by_staff]).exists()


def test_a_project_with_a_bad_or_taken_name_is_refused_and_no_membership_is_left(team):
    alice = factories.user("alice")
    for name in ("acme", "not a name"):
        with pytest.raises(ValidationError) as refused:
            project_create(actor=alice, name=name)
        assert "name" in refused.value.error_dict
    assert not Membership.objects.filter(user=alice).exists()


def test_with_project_creation_for_staff_only_a_user_is_refused_and_staff_may(settings):
    settings.BEDROCK_PROJECT_CREATION = "staff"

    with pytest.raises(PermissionDenied, match="Only site administrators may create projects"):
        project_create(actor=factories.user("alice"), name="fraud")
    staff = factories.user("staff", is_staff=True)
    project = project_create(actor=staff, name="fraud")

    assert role_of(project, staff) == Role.ADMIN
    assert Project.objects.filter(name="fraud").count() == 1


def test_only_a_project_admin_edits_the_project(team):
    project_update(actor=team.admin, project=team.project, description="Rockets")
    for who in (team.developer, team.outsider):
        with pytest.raises(PermissionDenied):
            project_update(actor=who, project=team.project, name="renamed")

    team.project.refresh_from_db()
    assert (team.project.name, team.project.description) == ("acme", "Rockets")


def test_an_admin_adds_a_member_and_changes_their_role(team):
    membership_set(actor=team.admin, project=team.project, username="bob", role=Role.VIEWER)
    assert role_of(team.project, team.newcomer) == Role.VIEWER

    membership_set(actor=team.admin, project=team.project, username="bob", role=Role.DEVELOPER)
    assert role_of(team.project, team.newcomer) == Role.DEVELOPER
    assert Membership.objects.filter(user=team.newcomer).count() == 1


@pytest.mark.parametrize("who", ["developer", "outsider"])
def test_no_one_but_an_admin_changes_the_members(team, who):
    actor = getattr(team, who)
    with pytest.raises(PermissionDenied):
        membership_set(actor=actor, project=team.project, username="bob", role=Role.ADMIN)
    with pytest.raises(PermissionDenied):
        membership_remove(actor=actor, project=team.project, username="dev")

    assert role_of(team.project, team.newcomer) is None
    assert role_of(team.project, team.developer) == Role.DEVELOPER


@pytest.mark.parametrize("username", ["nobody", "gone"])
def test_a_member_must_be_an_active_user(team, username):
    factories.user("gone", is_active=False)

    with pytest.raises(ValidationError) as refused:
        membership_set(actor=team.admin, project=team.project, username=username, role="viewer")

    assert refused.value.message_dict == {"username": [f"There is no user named '{username}'."]}


def test_the_last_admin_can_be_neither_demoted_nor_removed(team):
    with pytest.raises(ValidationError, match="ada is the last admin of acme") as demoted:
        membership_set(actor=team.admin, project=team.project, username="ada", role="viewer")
    assert "username" in demoted.value.error_dict
    with pytest.raises(ValidationError, match="last admin"):
        membership_remove(actor=team.admin, project=team.project, username="ada")
    assert role_of(team.project, team.admin) == Role.ADMIN

    membership_set(actor=team.admin, project=team.project, username="dev", role=Role.ADMIN)
    membership_remove(actor=team.admin, project=team.project, username="ada")
    assert role_of(team.project, team.admin) is None


def test_removing_someone_who_is_not_a_member_says_so(team):
    with pytest.raises(ValidationError, match="bob is not a member of acme"):
        membership_remove(actor=team.admin, project=team.project, username="bob")


# --- GraphQL ------------------------------------------------------------------------------------
CREATE_PROJECT = f"""mutation($name: String!) {{
  createProject(data: {{name: $name, description: "Fraud models"}}) {{
    ... on Project {{ id name description members {{ username role }} }} {ERRORS}
  }}
}}"""
UPDATE_PROJECT = f"""mutation($id: ID!) {{
  updateProject(id: $id, data: {{description: "changed"}}) {{
    ... on Project {{ name description }} {ERRORS}
  }}
}}"""
SET_MEMBERSHIP = f"""mutation($project: ID!, $username: String!, $role: Role!) {{
  setMembership(projectId: $project, username: $username, role: $role) {{
    ... on Membership {{ username role }} {ERRORS}
  }}
}}"""
REMOVE_MEMBERSHIP = f"""mutation($project: ID!, $username: String!) {{
  removeMembership(projectId: $project, username: $username) {{
    ... on Project {{ name }} {ERRORS}
  }}
}}"""
CREATE_MODEL = f"""mutation($project: ID!, $name: String!) {{
  createModel(data: {{projectId: $project, name: $name, description: "d"}}) {{
    ... on Model {{ name description project {{ name }} }} {ERRORS}
  }}
}}"""
UPDATE_MODEL = f"""mutation($id: ID!, $keep: Int) {{
  updateModel(id: $id, data: {{name: "renamed", keepVersions: $keep}}) {{
    ... on Model {{ name }} {ERRORS}
  }}
}}"""


def test_create_project_makes_the_caller_its_admin():
    alice = factories.user("alice")

    created = gql(alice, CREATE_PROJECT, name="fraud")["createProject"]

    assert created["name"] == "fraud"
    assert created["members"] == [{"username": "alice", "role": "ADMIN"}]


def test_create_project_reports_a_bad_name_on_name_and_a_staff_only_site_refuses(settings):
    alice = factories.user("alice")

    bad = message(gql(alice, CREATE_PROJECT, name="no spaces")["createProject"])
    assert (bad["kind"], bad["field"]) == ("VALIDATION", "name")

    settings.BEDROCK_PROJECT_CREATION = "staff"
    refused = message(gql(alice, CREATE_PROJECT, name="fraud")["createProject"])
    assert refused["kind"] == "PERMISSION"
    assert not Project.objects.filter(name="fraud").exists()


def test_members_are_listed_on_the_project_for_every_member(team):
    query = "{ projects { edges { node { name members { username role } } } } }"

    (edge,) = gql(team.developer, query)["projects"]["edges"]

    assert edge["node"]["members"] == [
        {"username": "ada", "role": "ADMIN"},
        {"username": "dev", "role": "DEVELOPER"},
    ]
    assert gql(team.outsider, query)["projects"]["edges"] == []


def test_update_project_for_the_admin_a_member_and_an_outsider(team):
    project_id = str(team.project.pk)

    changed = gql(team.admin, UPDATE_PROJECT, id=project_id)["updateProject"]
    assert changed == {"name": "acme", "description": "changed"}
    refused = message(gql(team.developer, UPDATE_PROJECT, id=project_id)["updateProject"])
    assert refused["kind"] == "PERMISSION"
    hidden = message(gql(team.outsider, UPDATE_PROJECT, id=project_id)["updateProject"])
    assert (hidden["kind"], hidden["code"]) == ("ERROR", "not_found")


def test_set_membership_for_the_admin_a_member_and_an_outsider(team):
    variables = {"project": str(team.project.pk), "username": "bob", "role": "DEVELOPER"}

    added = gql(team.admin, SET_MEMBERSHIP, **variables)["setMembership"]
    assert added == {"username": "bob", "role": "DEVELOPER"}
    refused = gql(team.developer, SET_MEMBERSHIP, **{**variables, "role": "ADMIN"})
    assert message(refused["setMembership"])["kind"] == "PERMISSION"
    hidden = gql(team.outsider, SET_MEMBERSHIP, **{**variables, "role": "ADMIN"})
    assert message(hidden["setMembership"])["code"] == "not_found"
    assert role_of(team.project, team.newcomer) == Role.DEVELOPER


def test_set_membership_names_the_username_of_an_unknown_user_and_keeps_the_last_admin(team):
    project = str(team.project.pk)

    unknown = gql(team.admin, SET_MEMBERSHIP, project=project, username="zed", role="VIEWER")
    assert message(unknown["setMembership"]) == {
        "kind": "VALIDATION",
        "message": "There is no user named 'zed'.",
        "field": "username",
        "code": "not_found",
    }
    last = gql(team.admin, SET_MEMBERSHIP, project=project, username="ada", role="VIEWER")
    assert "last admin" in message(last["setMembership"])["message"]


def test_remove_membership_for_the_admin_a_member_and_an_outsider(team):
    project = str(team.project.pk)

    refused = gql(team.developer, REMOVE_MEMBERSHIP, project=project, username="ada")
    assert message(refused["removeMembership"])["kind"] == "PERMISSION"
    hidden = gql(team.outsider, REMOVE_MEMBERSHIP, project=project, username="dev")
    assert message(hidden["removeMembership"])["code"] == "not_found"
    assert role_of(team.project, team.admin) == Role.ADMIN
    assert role_of(team.project, team.developer) == Role.DEVELOPER

    removed = gql(team.admin, REMOVE_MEMBERSHIP, project=project, username="dev")
    assert removed["removeMembership"] == {"name": "acme"}
    assert role_of(team.project, team.developer) is None


def test_create_model_for_the_admin_a_member_and_an_outsider(team):
    project = str(team.project.pk)

    created = gql(team.admin, CREATE_MODEL, project=project, name="churn")["createModel"]
    assert created == {"name": "churn", "description": "d", "project": {"name": "acme"}}
    refused = gql(team.developer, CREATE_MODEL, project=project, name="other")
    assert message(refused["createModel"])["kind"] == "PERMISSION"
    hidden = gql(team.outsider, CREATE_MODEL, project=project, name="other")
    assert message(hidden["createModel"])["code"] == "not_found"
    assert list(Model.objects.values_list("name", flat=True)) == ["churn"]


def test_create_model_reports_a_name_taken_in_the_project_on_name(team):
    factories.model(team.project, "churn")

    taken = gql(team.admin, CREATE_MODEL, project=str(team.project.pk), name="churn")

    problem = message(taken["createModel"])
    assert (problem["kind"], problem["field"]) == ("VALIDATION", "name")


def test_update_model_sets_retention_and_refuses_less_than_one_version(team):
    model = factories.model(team.project, "churn")

    done = gql(team.admin, UPDATE_MODEL, id=str(model.pk), keep=5)["updateModel"]
    assert done == {"name": "renamed"}
    model.refresh_from_db()
    assert model.keep_versions == 5

    zero = message(gql(team.admin, UPDATE_MODEL, id=str(model.pk), keep=0)["updateModel"])
    assert (zero["kind"], zero["field"]) == ("VALIDATION", "keepVersions")
    gql(team.admin, UPDATE_MODEL, id=str(model.pk), keep=None)
    model.refresh_from_db()
    assert model.keep_versions is None


def test_update_model_for_a_member_and_an_outsider(team):
    model = factories.model(team.project, "churn")

    refused = gql(team.developer, UPDATE_MODEL, id=str(model.pk), keep=3)["updateModel"]
    assert message(refused)["kind"] == "PERMISSION"
    hidden = gql(team.outsider, UPDATE_MODEL, id=str(model.pk), keep=3)["updateModel"]
    assert message(hidden)["code"] == "not_found"
    model.refresh_from_db()
    assert (model.name, model.keep_versions) == ("churn", None)


# --- the web UI ---------------------------------------------------------------------------------
def page(client: Client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def test_a_user_in_no_project_is_shown_how_to_create_one_and_becomes_its_admin():
    alice = factories.user("alice")
    client = client_for(alice)

    assert "/projects/new" in page(client, "/")
    response = client.post("/projects/new", {"name": "fraud", "description": "Card fraud"})

    project = Project.objects.get(name="fraud")
    assert response.status_code == 302
    assert response["Location"] == f"/projects/{project.pk}/"
    assert role_of(project, alice) == Role.ADMIN
    assert "Card fraud" in page(client, f"/projects/{project.pk}/")


def test_on_a_staff_only_site_the_new_project_page_says_who_may(settings):
    settings.BEDROCK_PROJECT_CREATION = "staff"
    client = client_for(factories.user("alice"))

    assert "Only site administrators may create projects" in page(client, "/projects/new")
    client.post("/projects/new", {"name": "fraud"})
    assert not Project.objects.filter(name="fraud").exists()


def test_the_project_page_lists_members_and_models_read_only_for_a_member(team):
    factories.model(team.project, "churn")

    html = page(client_for(team.developer), f"/projects/{team.project.pk}/")

    assert "ada" in html and "dev" in html and "churn" in html
    assert "Add a member" not in html and "Remove" not in html and "New model" not in html
    assert f"/projects/{team.project.pk}/webhooks" not in html
    admin_html = page(client_for(team.admin), f"/projects/{team.project.pk}/")
    assert "Add a member" in admin_html and "New model" in admin_html
    assert f"/projects/{team.project.pk}/webhooks" in admin_html


def test_an_outsider_gets_a_404_for_every_project_page_and_action(team):
    model = factories.model(team.project, "churn")
    client = client_for(team.outsider)
    pk = team.project.pk

    for url in (f"/projects/{pk}/", f"/projects/{pk}/models/new", f"/models/{model.pk}/edit"):
        assert client.get(url).status_code == 404
    posts = {
        f"/projects/{pk}/edit": {"name": "mine"},
        f"/projects/{pk}/members": {"username": "oscar", "role": "admin"},
        f"/projects/{pk}/members/ada/remove": {},
    }
    for url, form in posts.items():
        assert client.post(url, form).status_code == 404
    assert role_of(team.project, team.outsider) is None
    assert Project.objects.get(pk=pk).name == "acme"


def test_a_member_may_not_change_the_team(team):
    client = client_for(team.developer)
    pk = team.project.pk

    assert (
        client.post(f"/projects/{pk}/members", {"username": "bob", "role": "viewer"}).status_code
        == 403
    )
    assert client.post(f"/projects/{pk}/members/ada/remove").status_code == 403
    assert client.post(f"/projects/{pk}/models/new", {"name": "m"}).status_code == 403
    assert role_of(team.project, team.newcomer) is None
    assert role_of(team.project, team.admin) == Role.ADMIN


def test_an_admin_adds_a_member_changes_the_role_and_removes_them_after_confirming(team):
    client = client_for(team.admin)
    pk = team.project.pk

    client.post(f"/projects/{pk}/members", {"username": "bob", "role": "viewer"})
    assert role_of(team.project, team.newcomer) == Role.VIEWER
    client.post(f"/projects/{pk}/members", {"username": "bob", "role": "developer"})
    assert role_of(team.project, team.newcomer) == Role.DEVELOPER

    confirm = page(client, f"/projects/{pk}/members/bob/remove")
    assert "Remove bob from acme?" in confirm
    assert role_of(team.project, team.newcomer) == Role.DEVELOPER  # the GET changed nothing
    client.post(f"/projects/{pk}/members/bob/remove")
    assert role_of(team.project, team.newcomer) is None


def test_the_member_form_shows_an_unknown_user_and_the_last_admin_is_kept(team):
    client = client_for(team.admin)
    pk = team.project.pk

    unknown = client.post(f"/projects/{pk}/members", {"username": "zed", "role": "viewer"})
    assert unknown.status_code == 400
    assert "There is no user named &#x27;zed&#x27;." in unknown.content.decode()
    # The project page again, the form in its place with what was typed.
    assert "<h2>Members</h2>" in unknown.content.decode()
    assert 'value="zed"' in unknown.content.decode()
    last = client.post(f"/projects/{pk}/members/ada/remove")
    assert "ada is the last admin of acme" in last.content.decode()
    assert role_of(team.project, team.admin) == Role.ADMIN


def test_an_admin_edits_the_project_and_creates_and_edits_a_model(team):
    client = client_for(team.admin)
    pk = team.project.pk

    client.post(f"/projects/{pk}/edit", {"name": "acme", "description": "Rockets"})
    assert Project.objects.get(pk=pk).description == "Rockets"
    client.post(f"/projects/{pk}/models/new", {"name": "churn", "description": "d"})
    model = Model.objects.get(project=team.project, name="churn")
    assert model.keep_versions is None
    client.post(
        f"/models/{model.pk}/edit", {"name": "churn", "description": "", "keep_versions": 3}
    )
    model.refresh_from_db()
    assert model.keep_versions == 3

    zero = client.post(f"/models/{model.pk}/edit", {"name": "churn", "keep_versions": 0})
    assert zero.status_code == 200 and "field-error" in zero.content.decode()
    model.refresh_from_db()
    assert model.keep_versions == 3


# --- a new model from the new-pipeline form ------------------------------------------------------
@pytest.fixture
def repo(tmp_path):
    return make_repo(tmp_path / "churn", copy=EXAMPLE)


def pipeline_post(team, repo, **fields) -> dict:
    return {
        "project": team.project.pk,
        "name": "train",
        "kind": PipelineKind.TRAINING,
        "git_url": str(repo),
        "branch": "main",
        "config_path": "bedrock.hcl",
        "max_run_time": "72h",
        "dated_installs": "default",
        **fields,
    }


def test_the_new_pipeline_form_creates_the_model_it_names(team, repo):
    response = client_for(team.admin).post(
        "/pipelines/new", pipeline_post(team, repo, new_model="churn")
    )

    pipeline = Pipeline.objects.get(name="train")
    assert response.status_code == 302
    assert pipeline.model == Model.objects.get(project=team.project, name="churn")


def test_a_bad_pipeline_field_leaves_no_new_model_behind(team, repo):
    before = set(Model.objects.values_list("pk", flat=True))

    # Only the pipeline service refuses this, after the model is made: a project admin may not
    # raise the maximum run time above the site default.
    response = client_for(team.admin).post(
        "/pipelines/new", pipeline_post(team, repo, new_model="churn", max_run_time="100h")
    )

    assert response.status_code == 200
    assert "Only a site administrator may raise the maximum run time" in response.content.decode()
    assert not Pipeline.objects.filter(name="train").exists()
    assert not Model.objects.filter(name="churn").exists()
    assert set(Model.objects.values_list("pk", flat=True)) == before


def test_the_new_model_is_refused_beside_a_chosen_one_or_with_a_taken_name(team, repo):
    existing = factories.model(team.project, "churn")
    client = client_for(team.admin)

    both = client.post(
        "/pipelines/new", pipeline_post(team, repo, model=existing.pk, new_model="other")
    )
    assert "Choose a model or name a new one, not both." in both.content.decode()
    taken = client.post("/pipelines/new", pipeline_post(team, repo, new_model="churn"))
    assert taken.status_code == 200
    assert not Pipeline.objects.filter(name="train").exists()
    assert Model.objects.filter(name="churn").count() == 1


# --- settings -----------------------------------------------------------------------------------
def test_an_unknown_project_creation_setting_fails_the_check(settings):
    from bedrock.checks import check_teams

    settings.BEDROCK_PROJECT_CREATION = "everyone"
    (error,) = check_teams(None)
    assert error.id == "bedrock.E070"
    assert "'everyone' is neither 'anyone' nor 'staff'" in error.msg

    settings.BEDROCK_PROJECT_CREATION = "staff"
    assert check_teams(None) == []
    call_command("check")  # and nothing else of the site objects to it
