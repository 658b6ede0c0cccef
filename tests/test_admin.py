"""The Django admin as a platform engineer uses it: create a project, a pipeline and a secret."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from bedrock.accounts.models import ApiToken
from bedrock.actors import SYSTEM
from bedrock.models.models import Model
from bedrock.pipelines.models import Pipeline, Project
from bedrock.secrets.models import Secret
from tests import factories

pytestmark = pytest.mark.django_db

VALUE = "hunter2-do-not-show-me"


def csrf_free_post(client, url: str, data: dict):
    response = client.post(url, data, follow=True)
    assert response.status_code == 200, response.content[:500]
    return response


def test_an_administrator_creates_a_project_pipeline_and_secret_and_never_sees_the_value(
    admin_client, tmp_path
):
    csrf_free_post(
        admin_client,
        "/admin/pipelines/project/add/",
        {
            "name": "churn",
            "description": "Churn team",
            "memberships-TOTAL_FORMS": "0",
            "memberships-INITIAL_FORMS": "0",
        },
    )
    project = Project.objects.get(name="churn")
    csrf_free_post(
        admin_client,
        "/admin/models/model/add/",
        {
            "project": project.pk,
            "name": "churn-model",
            "versions-TOTAL_FORMS": "0",
            "versions-INITIAL_FORMS": "0",
        },
    )
    model = Model.objects.get(name="churn-model")

    csrf_free_post(
        admin_client,
        "/admin/pipelines/pipeline/add/",
        {
            "project": project.pk,
            "name": "train-churn",
            "kind": "training",
            "model": model.pk,
            "git_url": "https://git.example.com/churn/churn.git",
            "branch": "main",
            "config_path": "bedrock.hcl",
            "max_run_time": "72:00:00",
            "secrets-TOTAL_FORMS": "1",
            "secrets-INITIAL_FORMS": "0",
            "secrets-0-name": "DB_PASSWORD",
            "secrets-0-new_value": VALUE,
        },
    )
    pipeline = Pipeline.objects.get(name="train-churn")
    assert pipeline.created_by.username == "admin"
    secret = Secret.objects.get(pipeline=pipeline, name="DB_PASSWORD")
    assert secret.value == VALUE

    pages = [
        f"/admin/pipelines/pipeline/{pipeline.pk}/change/",
        "/admin/secrets/secret/",
        f"/admin/secrets/secret/{secret.pk}/change/",
        f"/admin/pipelines/pipeline/{pipeline.pk}/history/",
        f"/admin/secrets/secret/{secret.pk}/history/",
    ]
    for page in pages:
        body = admin_client.get(page).content.decode()
        assert "DB_PASSWORD" in body, page
        assert VALUE not in body, page


def test_editing_a_secret_with_an_empty_value_keeps_it_and_a_new_value_replaces_it(admin_client):
    from bedrock.secrets.services import secret_set

    pipeline = factories.pipeline(factories.project())
    secret = secret_set(actor=SYSTEM, pipeline=pipeline, name="TOKEN", value=VALUE)
    url = f"/admin/secrets/secret/{secret.pk}/change/"

    csrf_free_post(admin_client, url, {"new_value": ""})
    assert Secret.objects.get(pk=secret.pk).value == VALUE

    csrf_free_post(admin_client, url, {"new_value": "replacement"})
    secret = Secret.objects.get(pk=secret.pk)
    assert secret.value == "replacement"
    assert secret.updated_by.username == "admin"


def test_a_new_secret_without_a_value_is_refused(admin_client):
    pipeline = factories.pipeline(factories.project())
    response = admin_client.post(
        "/admin/secrets/secret/add/", {"pipeline": pipeline.pk, "name": "EMPTY", "new_value": ""}
    )
    assert response.status_code == 200
    assert "A new secret needs a value." in response.content.decode()
    assert not Secret.objects.exists()


def test_a_pipeline_with_an_ext_transport_url_is_refused_naming_the_field(admin_client):
    project = factories.project()
    model = factories.model(project)
    response = admin_client.post(
        "/admin/pipelines/pipeline/add/",
        {
            "project": project.pk,
            "name": "evil",
            "kind": "training",
            "model": model.pk,
            "git_url": "ext::sh -c touch% /tmp/pwned",
            "branch": "main",
            "config_path": "bedrock.hcl",
            "max_run_time": "72:00:00",
            "secrets-TOTAL_FORMS": "0",
            "secrets-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 200
    assert not Pipeline.objects.filter(name="evil").exists()
    errors = response.context["adminform"].form.errors
    assert "git_url" in errors


def _staff_client(client, codename_suffix: str):
    from django.contrib.auth.models import Permission

    staff = factories.user("ops", is_staff=True)
    staff.user_permissions.set(Permission.objects.filter(codename__endswith=codename_suffix))
    client.force_login(staff)
    return staff


def _pipeline_form(pipeline: Pipeline, **changes) -> dict:
    return {
        "project": pipeline.project_id,
        "name": pipeline.name,
        "kind": pipeline.kind,
        "model": pipeline.model_id or "",
        "git_url": pipeline.git_url,
        "branch": pipeline.branch,
        "config_path": pipeline.config_path,
        "max_run_time": "72:00:00",
        "initial-max_run_time": "3 00:00:00",
        "secrets-TOTAL_FORMS": "0",
        "secrets-INITIAL_FORMS": "0",
        **changes,
    }


def test_a_staff_user_who_is_not_a_superuser_cannot_raise_the_maximum_run_time(client):
    from bedrock.pipelines.services import max_run_time_problem

    staff = _staff_client(client, "_pipeline")
    pipeline = factories.pipeline(factories.project())
    url = f"/admin/pipelines/pipeline/{pipeline.pk}/change/"

    response = client.post(url, _pipeline_form(pipeline, max_run_time="100:00:00"))

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    expected = max_run_time_problem(
        actor=staff, new=timedelta(hours=100), current=pipeline.max_run_time
    )
    assert errors["max_run_time"] == [expected]
    assert Pipeline.objects.get(pk=pipeline.pk).max_run_time == timedelta(hours=72)

    csrf_free_post(client, url, _pipeline_form(pipeline, max_run_time="24:00:00"))
    assert Pipeline.objects.get(pk=pipeline.pk).max_run_time == timedelta(hours=24)


def test_a_staff_user_who_is_in_no_project_edits_and_archives_pipelines_through_the_services(
    client,
):
    staff = _staff_client(client, "_pipeline")
    pipeline = factories.pipeline(factories.project())
    url = f"/admin/pipelines/pipeline/{pipeline.pk}/change/"

    csrf_free_post(client, url, _pipeline_form(pipeline, branch="develop"))
    assert Pipeline.objects.get(pk=pipeline.pk).branch == "develop"

    csrf_free_post(
        client,
        "/admin/pipelines/pipeline/",
        {"action": "archive", "_selected_action": [pipeline.pk]},
    )
    assert Pipeline.objects.get(pk=pipeline.pk).archived
    assert staff.memberships.count() == 0


def test_an_admin_secret_is_validated_by_the_secret_service(admin_client):
    from bedrock.secrets.services import secret_problems

    pipeline = factories.pipeline(factories.project())
    response = admin_client.post(
        "/admin/secrets/secret/add/", {"pipeline": pipeline.pk, "name": "SHORT", "new_value": "ab"}
    )

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert errors["new_value"] == [secret_problems(name="SHORT", value="ab")["value"]]
    assert not Secret.objects.exists()


def test_an_admin_secret_is_stored_encrypted_and_recorded_like_secret_set(admin_client):
    from django.db import connection

    pipeline = factories.pipeline(factories.project())
    csrf_free_post(
        admin_client,
        "/admin/secrets/secret/add/",
        {"pipeline": pipeline.pk, "name": "API_KEY", "new_value": VALUE},
    )

    secret = Secret.objects.get(pipeline=pipeline, name="API_KEY")
    assert secret.value == VALUE
    assert secret.updated_by.username == "admin"
    assert secret.updated_at is not None
    with connection.cursor() as cursor:
        table = connection.ops.quote_name(Secret._meta.db_table)
        cursor.execute(f"SELECT value FROM {table} WHERE id = %s", [secret.pk])  # noqa: S608
        (stored,) = cursor.fetchone()
    assert VALUE not in stored


def test_deleting_a_secret_in_the_admin_goes_through_the_secret_service(admin_client, monkeypatch):
    from bedrock.secrets import services

    pipeline = factories.pipeline(factories.project())
    secret = services.secret_set(actor=SYSTEM, pipeline=pipeline, name="TOKEN", value=VALUE)
    deleted: list[str] = []
    real_delete = services.secret_delete

    def recording_delete(**kwargs):
        deleted.append(kwargs["name"])
        return real_delete(**kwargs)

    monkeypatch.setattr(services, "secret_delete", recording_delete)
    csrf_free_post(admin_client, f"/admin/secrets/secret/{secret.pk}/delete/", {"post": "yes"})

    assert deleted == ["TOKEN"]
    assert not Secret.objects.exists()


def test_a_secret_renamed_in_the_pipeline_inline_keeps_its_value(admin_client):
    from bedrock.secrets import services

    pipeline = factories.pipeline(factories.project())
    secret = services.secret_set(actor=SYSTEM, pipeline=pipeline, name="OLD_NAME", value=VALUE)
    form = _pipeline_form(
        pipeline,
        **{
            "secrets-TOTAL_FORMS": "1",
            "secrets-INITIAL_FORMS": "1",
            "secrets-0-id": secret.pk,
            "secrets-0-pipeline": pipeline.pk,
            "secrets-0-name": "NEW_NAME",
            "secrets-0-new_value": "",
        },
    )
    csrf_free_post(admin_client, f"/admin/pipelines/pipeline/{pipeline.pk}/change/", form)

    assert list(pipeline.secrets.values_list("name", flat=True)) == ["NEW_NAME"]
    assert pipeline.secrets.get().value == VALUE


def test_project_members_set_in_the_admin_go_through_membership_set(admin_client):
    from bedrock.pipelines.models import Membership, Role

    person = factories.user("member")
    csrf_free_post(
        admin_client,
        "/admin/pipelines/project/add/",
        {
            "name": "churn",
            "description": "",
            "memberships-TOTAL_FORMS": "1",
            "memberships-INITIAL_FORMS": "0",
            "memberships-0-user": person.pk,
            "memberships-0-role": Role.DEVELOPER,
        },
    )
    project = Project.objects.get(name="churn")
    membership = Membership.objects.get(project=project)
    assert (membership.user, membership.role) == (person, Role.DEVELOPER)

    changed = admin_client.post(
        f"/admin/pipelines/project/{project.pk}/change/",
        {
            "name": "churn",
            "description": "",
            "memberships-TOTAL_FORMS": "1",
            "memberships-INITIAL_FORMS": "1",
            "memberships-0-id": membership.pk,
            "memberships-0-project": project.pk,
            "memberships-0-user": person.pk,
            "memberships-0-role": Role.ADMIN,
        },
        follow=True,
    )
    assert changed.status_code == 200
    assert Membership.objects.get(pk=membership.pk).role == Role.ADMIN


def test_runs_and_model_versions_cannot_be_added_or_edited_in_the_admin(admin_client):
    assert admin_client.get("/admin/runs/run/add/").status_code == 403
    assert admin_client.get("/admin/models/modelversion/add/").status_code == 403


def test_creating_a_token_in_the_admin_shows_it_once(admin_client, admin_user):
    response = csrf_free_post(
        admin_client, "/admin/accounts/apitoken/add/", {"user": admin_user.pk, "name": "ci"}
    )
    body = response.content.decode()
    match = re.search(r"(bdrk_[A-Za-z0-9_-]{40,})", body)
    assert match, "the new token is shown after creation"
    token = ApiToken.objects.get(name="ci")
    assert (
        match.group(1)
        not in admin_client.get(f"/admin/accounts/apitoken/{token.pk}/change/").content.decode()
    )
    assert match.group(1) not in admin_client.get("/admin/accounts/apitoken/").content.decode()


def test_a_model_added_in_the_admin_is_created_by_the_model_service(admin_client, monkeypatch):
    from bedrock.models import services

    project = factories.project()
    created: list[str] = []
    real_create = services.model_create

    def recording_create(**kwargs):
        created.append(kwargs["name"])
        return real_create(**kwargs)

    monkeypatch.setattr(services, "model_create", recording_create)
    csrf_free_post(
        admin_client,
        "/admin/models/model/add/",
        {
            "project": project.pk,
            "name": "fraud-model",
            "versions-TOTAL_FORMS": "0",
            "versions-INITIAL_FORMS": "0",
        },
    )

    assert created == ["fraud-model"]
    assert Model.objects.get(project=project).name == "fraud-model"
