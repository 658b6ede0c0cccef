"""The Django admin as a platform engineer uses it: create a project, a pipeline and a secret."""

from __future__ import annotations

import re

import pytest

from bedrock.actors import SYSTEM
from bedrock.models.models import Model
from bedrock.pipelines.models import Pipeline, Project
from bedrock.secrets.models import ApiToken, Secret
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


def test_a_staff_user_who_is_not_a_superuser_cannot_edit_the_maximum_run_time(client):
    from django.contrib.auth.models import Permission

    staff = factories.user("ops", is_staff=True)
    staff.user_permissions.set(Permission.objects.filter(codename__endswith="_pipeline"))
    client.force_login(staff)
    pipeline = factories.pipeline(factories.project())

    page = client.get(f"/admin/pipelines/pipeline/{pipeline.pk}/change/").content.decode()

    assert 'name="max_run_time"' not in page
    assert "72:00:00" in page or "3 days" in page


def test_runs_and_model_versions_cannot_be_added_or_edited_in_the_admin(admin_client):
    assert admin_client.get("/admin/runs/run/add/").status_code == 403
    assert admin_client.get("/admin/models/modelversion/add/").status_code == 403


def test_creating_a_token_in_the_admin_shows_it_once(admin_client, admin_user):
    response = csrf_free_post(
        admin_client, "/admin/secrets/apitoken/add/", {"user": admin_user.pk, "name": "ci"}
    )
    body = response.content.decode()
    match = re.search(r"(bdrk_[A-Za-z0-9_-]{40,})", body)
    assert match, "the new token is shown after creation"
    token = ApiToken.objects.get(name="ci")
    assert (
        match.group(1)
        not in admin_client.get(f"/admin/secrets/apitoken/{token.pk}/change/").content.decode()
    )
    assert match.group(1) not in admin_client.get("/admin/secrets/apitoken/").content.decode()
