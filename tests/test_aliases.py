"""A model's aliases: set, moved, removed and rolled back with their history and events, through
the services and the GraphQL API, as a project admin, a member and an outsider."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from bedrock.events.models import Event, EventKind
from bedrock.models.aliases import (
    MAX_ALIASES_PER_MODEL,
    model_alias_remove,
    model_alias_rollback,
    model_alias_set,
)
from bedrock.models.models import ModelAlias, ModelAliasChange
from bedrock.pipelines.models import Role
from bedrock.runs.models import Run, RunStatus
from tests import factories
from tests.test_graphql_api import client_for, data, payload_error
from tests.test_graphql_optimizer import queries_for

pytestmark = pytest.mark.django_db


def versions_of(model, count: int) -> list:
    pipeline = factories.pipeline(model.project, model=model)
    return [
        factories.model_version(
            model,
            Run.objects.create(pipeline=pipeline, number=n, ref="main", status=RunStatus.SUCCEEDED),
            number=n,
        )
        for n in range(1, count + 1)
    ]


def member(project, role: str):
    who = factories.user(f"{role}-user")
    factories.member(project, who, role)
    return who


@pytest.fixture
def world():
    """A model ``churn`` with three versions, its project's admin, developer and viewer, and an
    outsider."""
    project = factories.project("acme")
    model = factories.model(project, "churn")
    return SimpleNamespace(
        project=project,
        model=model,
        versions=versions_of(model, 3),
        admin=member(project, Role.ADMIN),
        developer=member(project, Role.DEVELOPER),
        viewer=member(project, Role.VIEWER),
        outsider=factories.user("outsider"),
    )


def history(model) -> list[tuple]:
    """(alias, from number, to number, who, note), oldest first."""
    return [
        (
            change.alias,
            change.from_version.number if change.from_version else None,
            change.to_version.number if change.to_version else None,
            change.actor.username if change.actor else None,
            change.note,
        )
        for change in reversed(list(ModelAliasChange.objects.filter(model=model)))
    ]


# --- services -----------------------------------------------------------------------------------
def test_setting_moving_and_removing_an_alias_keeps_each_change_and_records_an_event(world):
    v1, v2, _ = world.versions
    alias = model_alias_set(
        actor=world.admin, model=world.model, name="production", version=v1, note="first"
    )
    assert (alias.version, alias.updated_by) == (v1, world.admin)
    model_alias_set(actor=world.admin, model=world.model, name="production", version=v2)
    model_alias_remove(actor=world.admin, model=world.model, name="production", note="retired")

    assert not ModelAlias.objects.filter(model=world.model).exists()
    assert history(world.model) == [
        ("production", None, 1, "admin-user", "first"),
        ("production", 1, 2, "admin-user", ""),
        ("production", 2, None, "admin-user", "retired"),
    ]
    events = list(Event.objects.filter(project=world.project).order_by("id"))
    assert [event.kind for event in events] == [
        EventKind.MODEL_ALIAS_SET,
        EventKind.MODEL_ALIAS_SET,
        EventKind.MODEL_ALIAS_REMOVED,
    ]
    assert events[1].payload == {
        "model_id": world.model.pk,
        "model_name": "churn",
        "alias": "production",
        "from_version_id": v1.pk,
        "from_version_number": 1,
        "to_version_id": v2.pk,
        "to_version_number": 2,
    }
    assert events[1].actor == world.admin


def test_setting_an_alias_to_the_version_it_names_records_nothing(world):
    v1 = world.versions[0]
    model_alias_set(actor=world.admin, model=world.model, name="production", version=v1)
    model_alias_set(actor=world.admin, model=world.model, name="production", version=v1, note="x")

    assert ModelAliasChange.objects.count() == 1
    assert Event.objects.count() == 1


def test_rollback_returns_the_alias_to_the_version_it_named_before_its_last_change(world):
    v1, v2, v3 = world.versions
    for version in (v1, v2, v3):
        model_alias_set(actor=world.admin, model=world.model, name="production", version=version)

    assert (
        model_alias_rollback(actor=world.admin, model=world.model, name="production").version == v2
    )
    # A rollback is a change too: rolling back again undoes it.
    assert (
        model_alias_rollback(actor=world.admin, model=world.model, name="production").version == v3
    )
    assert history(world.model)[-2:] == [
        ("production", 3, 2, "admin-user", "Rolled back to v2."),
        ("production", 2, 3, "admin-user", "Rolled back to v3."),
    ]


def test_rollback_after_a_removal_restores_the_alias(world):
    v1 = world.versions[0]
    model_alias_set(actor=world.admin, model=world.model, name="staging", version=v1)
    model_alias_remove(actor=world.admin, model=world.model, name="staging")

    assert model_alias_rollback(actor=world.admin, model=world.model, name="staging").version == v1


def test_rollback_without_an_earlier_version_says_so(world):
    with pytest.raises(ValidationError, match="no history"):
        model_alias_rollback(actor=world.admin, model=world.model, name="production")
    model_alias_set(
        actor=world.admin, model=world.model, name="production", version=world.versions[0]
    )
    with pytest.raises(ValidationError, match="named no version before"):
        model_alias_rollback(actor=world.admin, model=world.model, name="production")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"deprecated_at": timezone.now()}, "churn v1 is deprecated"),
        ({"deleted_at": timezone.now()}, "churn v1 is deleted"),
    ],
)
def test_an_alias_cannot_name_a_deprecated_or_deleted_version(world, change, message):
    version = world.versions[0]
    for field, value in change.items():
        setattr(version, field, value)
    version.save()

    with pytest.raises(ValidationError, match=message):
        model_alias_set(actor=world.admin, model=world.model, name="production", version=version)
    assert not ModelAliasChange.objects.exists()


def test_an_alias_cannot_name_a_version_of_another_model(world):
    other = factories.model(world.project, "fraud")
    (theirs,) = versions_of(other, 1)
    with pytest.raises(ValidationError, match="fraud v1 is not a version of the model churn"):
        model_alias_set(actor=world.admin, model=world.model, name="production", version=theirs)


@pytest.mark.parametrize("name", ["Production", "1st", "prod uction", "", "a" * 64])
def test_a_malformed_alias_name_is_refused(world, name):
    with pytest.raises(ValidationError, match="is not an alias name"):
        model_alias_set(actor=world.admin, model=world.model, name=name, version=world.versions[0])


def test_a_note_longer_than_a_thousand_characters_is_refused(world):
    with pytest.raises(ValidationError, match="At most 1000 characters"):
        model_alias_set(
            actor=world.admin,
            model=world.model,
            name="production",
            version=world.versions[0],
            note="n" * 1001,
        )


def test_a_model_has_at_most_fifty_aliases(world):
    v1 = world.versions[0]
    for n in range(MAX_ALIASES_PER_MODEL):
        model_alias_set(actor=world.admin, model=world.model, name=f"a{n}", version=v1)
    with pytest.raises(ValidationError, match="remove one first"):
        model_alias_set(actor=world.admin, model=world.model, name="one-more", version=v1)
    # Moving one of them is still allowed.
    model_alias_set(actor=world.admin, model=world.model, name="a0", version=world.versions[1])


@pytest.mark.parametrize("who", ["developer", "viewer", "outsider"])
def test_only_a_project_admin_changes_aliases(world, who):
    person = getattr(world, who)
    with pytest.raises(PermissionDenied):
        model_alias_set(
            actor=person, model=world.model, name="production", version=world.versions[0]
        )
    with pytest.raises(PermissionDenied):
        model_alias_remove(actor=person, model=world.model, name="production")
    with pytest.raises(PermissionDenied):
        model_alias_rollback(actor=person, model=world.model, name="production")


# --- GraphQL ------------------------------------------------------------------------------------
SET = """mutation($model: ID!, $alias: String!, $version: ID!, $note: String! = "") {
    setModelAlias(modelId: $model, alias: $alias, versionId: $version, note: $note) {
    ... on Model { aliases { name version { number } updatedBy } }
    ... on OperationInfo { messages { kind message field code } } } }"""
REMOVE = """mutation($model: ID!, $alias: String!) {
    removeModelAlias(modelId: $model, alias: $alias) {
    ... on Model { aliases { name } }
    ... on OperationInfo { messages { kind message field code } } } }"""
ROLLBACK = """mutation($model: ID!, $alias: String!) {
    rollbackModelAlias(modelId: $model, alias: $alias) {
    ... on Model { aliases { name version { number } } }
    ... on OperationInfo { messages { kind message field code } } } }"""
MODEL = """query($id: ID!, $alias: String) { model(id: $id) {
    aliases { name updatedAt updatedBy version { number aliases } }
    aliasHistory(filters: {alias: $alias}, first: 10) { totalCount edges { node {
        alias note actor createdAt fromVersion { number } toVersion { number } } } }
    versions { edges { node { number aliases } } } } }"""


def test_an_admin_sets_moves_rolls_back_and_removes_an_alias_through_the_api(world):
    client = client_for(world.admin)
    model, (v1, v2, _) = str(world.model.pk), world.versions

    result = data(client, SET, model=model, alias="production", version=str(v1.pk), note="go")
    assert result["setModelAlias"]["aliases"] == [
        {"name": "production", "version": {"number": 1}, "updatedBy": "admin-user"}
    ]
    data(client, SET, model=model, alias="production", version=str(v2.pk))
    data(client, SET, model=model, alias="staging", version=str(v2.pk))
    rolled = data(client, ROLLBACK, model=model, alias="production")["rollbackModelAlias"]
    assert rolled["aliases"] == [
        {"name": "production", "version": {"number": 1}},
        {"name": "staging", "version": {"number": 2}},
    ]

    read = data(client, MODEL, id=model, alias="production")["model"]
    assert [alias["name"] for alias in read["aliases"]] == ["production", "staging"]
    assert read["aliases"][0]["version"]["aliases"] == ["production"]
    changes = [edge["node"] for edge in read["aliasHistory"]["edges"]]
    assert read["aliasHistory"]["totalCount"] == 3
    assert [(c["fromVersion"], c["toVersion"]) for c in changes] == [
        ({"number": 2}, {"number": 1}),
        ({"number": 1}, {"number": 2}),
        (None, {"number": 1}),
    ]
    assert changes[-1]["note"] == "go" and changes[-1]["actor"] == "admin-user"
    by_number = {e["node"]["number"]: e["node"]["aliases"] for e in read["versions"]["edges"]}
    assert by_number == {3: [], 2: ["staging"], 1: ["production"]}

    removed = data(client, REMOVE, model=model, alias="staging")["removeModelAlias"]
    assert removed["aliases"] == [{"name": "production"}]


def test_a_refused_alias_is_reported_on_the_argument_the_client_sent(world):
    client = client_for(world.admin)
    model, version = str(world.model.pk), str(world.versions[0].pk)

    result = data(client, SET, model=model, alias="Prod", version=version)["setModelAlias"]
    assert payload_error(result)["field"] == "alias"
    result = data(client, ROLLBACK, model=model, alias="production")["rollbackModelAlias"]
    assert payload_error(result)["field"] == "alias"


def test_a_version_of_another_model_is_named_and_one_of_another_project_not_found(world):
    (theirs,) = versions_of(factories.model(world.project, "fraud"), 1)
    (hidden,) = versions_of(factories.model(factories.project("elsewhere"), "secret"), 1)
    client, model = client_for(world.admin), str(world.model.pk)

    result = data(client, SET, model=model, alias="p", version=str(theirs.pk))["setModelAlias"]
    assert payload_error(result)["field"] == "versionId"
    assert "fraud v1 is not a version of the model churn" in payload_error(result)["message"]
    result = data(client, SET, model=model, alias="p", version=str(hidden.pk))["setModelAlias"]
    assert payload_error(result)["code"] == "not_found"


@pytest.mark.parametrize(("who", "kind"), [("developer", "PERMISSION"), ("outsider", "ERROR")])
def test_a_member_may_not_and_an_outsider_cannot_find_the_model(world, who, kind):
    client = client_for(getattr(world, who))
    model, version = str(world.model.pk), str(world.versions[0].pk)
    model_alias_set(actor=world.admin, model=world.model, name="staging", version=world.versions[1])

    for query, variables, field in (
        (SET, {"alias": "production", "version": version}, "setModelAlias"),
        (REMOVE, {"alias": "staging"}, "removeModelAlias"),
        (ROLLBACK, {"alias": "staging"}, "rollbackModelAlias"),
    ):
        message = payload_error(data(client, query, model=model, **variables)[field])
        assert message["kind"] == kind
        if kind == "ERROR":
            assert message["code"] == "not_found"
            assert message["message"] == f"There is no model with id {model}."
    assert ModelAliasChange.objects.count() == 1


def test_an_outsider_reads_no_aliases_and_a_viewer_reads_them(world):
    model_alias_set(
        actor=world.admin, model=world.model, name="production", version=world.versions[0]
    )
    assert data(client_for(world.outsider), MODEL, id=str(world.model.pk))["model"] is None
    read = data(client_for(world.viewer), MODEL, id=str(world.model.pk))["model"]
    assert [alias["name"] for alias in read["aliases"]] == ["production"]


MODELS = """query { models(first: 50) { edges { node { name
    aliases { name updatedBy version { number aliases } }
    aliasHistory(first: 5) { edges { node { alias actor fromVersion { number }
        toVersion { number } } } }
    versions(first: 5) { edges { node { number aliases } } } } } } }"""


def test_listing_models_with_their_aliases_costs_a_fixed_number_of_queries(world):
    def more_models(count: int) -> None:
        for _ in range(count):
            model = factories.model(world.project)
            v1, v2 = versions_of(model, 2)
            for name in ("production", "staging"):
                model_alias_set(actor=world.admin, model=model, name=name, version=v1)
                model_alias_set(actor=world.admin, model=model, name=name, version=v2)

    more_models(1)
    _, queries_for_one = queries_for(world.viewer, MODELS)
    more_models(10)
    many, queries_for_many = queries_for(world.viewer, MODELS)

    assert len(many["models"]["edges"]) == 12
    listed = many["models"]["edges"][-1]["node"]
    assert [alias["version"]["aliases"] for alias in listed["aliases"]] == [
        ["production", "staging"],
        ["production", "staging"],
    ]
    assert len(listed["aliasHistory"]["edges"]) == 4
    assert queries_for_many == queries_for_one


# --- the model page -----------------------------------------------------------------------------
def page_of(client, model) -> str:
    response = client.get(f"/models/{model.pk}/")
    assert response.status_code == 200
    return response.content.decode()


def test_an_admin_sets_rolls_back_and_removes_an_alias_on_the_model_page(world):
    client = client_for(world.admin)
    v1, v2, _ = world.versions
    base = f"/models/{world.model.pk}/aliases"

    for version in (v1, v2):
        response = client.post(
            f"{base}/set", {"name": "production", "version": version.pk, "note": "ship it"}
        )
        assert response.status_code == 302
    page = page_of(client, world.model)
    assert "churn@production" in page and "Roll back to v1" in page
    assert '<span class="badge alias" data-alias-badge>@production</span>' in page
    assert "ship it" in page and 'value="champion"' in page

    client.post(f"{base}/rollback", {"name": "production"})
    assert ModelAlias.objects.get(model=world.model).version == v1
    client.post(f"{base}/remove", {"name": "production", "note": "gone"})
    assert not ModelAlias.objects.filter(model=world.model).exists()
    assert history(world.model)[-1] == ("production", 1, None, "admin-user", "gone")


def test_the_model_page_reports_a_refused_alias(world):
    client = client_for(world.admin)
    world.versions[0].deprecated_at = timezone.now()
    world.versions[0].save()
    response = client.post(
        f"/models/{world.model.pk}/aliases/set",
        {"name": "production", "version": world.versions[1].pk},
        follow=True,
    )
    assert response.status_code == 200
    response = client.post(
        f"/models/{world.model.pk}/aliases/set",
        {"name": "Bad Name", "version": world.versions[1].pk},
    )
    page = page_of(client, world.model)
    assert "is not an alias name" in page
    # A deprecated version is not offered.
    assert f'value="{world.versions[0].pk}"' not in page.split("data-alias-form")[1]


@pytest.mark.parametrize(
    ("who", "status"), [("developer", 403), ("viewer", 403), ("outsider", 404)]
)
def test_a_member_may_not_and_an_outsider_cannot_find_the_alias_forms(world, who, status):
    client = client_for(getattr(world, who))
    model_alias_set(actor=world.admin, model=world.model, name="staging", version=world.versions[0])
    model_alias_set(actor=world.admin, model=world.model, name="staging", version=world.versions[1])
    base = f"/models/{world.model.pk}/aliases"

    for action, fields in (
        ("set", {"name": "production", "version": world.versions[0].pk}),
        ("remove", {"name": "staging"}),
        ("rollback", {"name": "staging"}),
    ):
        assert client.post(f"{base}/{action}", fields).status_code == status
    assert ModelAliasChange.objects.count() == 2
    if who != "outsider":
        page = page_of(client, world.model)
        assert "churn@staging" in page and "data-alias-form" not in page
        assert "Roll back" not in page
