"""A request reads the caller's membership once, however many role checks answer it."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from bedrock.pipelines.models import Pipeline, Role
from bedrock.runs.models import Run, RunStatus
from bedrock.secrets.models import Secret
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def developer():
    return factories.user("developer")


@pytest.fixture
def pipeline(developer) -> Pipeline:
    project = factories.project()
    factories.member(project, developer, Role.DEVELOPER)
    return factories.pipeline(project)


# The page menu lists the caller's projects by name: a list, not an answer about this object.
_MENU = 'SELECT "pipelines_project"."name" AS "name" FROM "pipelines_project"'


def membership_reads(captured: CaptureQueriesContext) -> int:
    """Queries that read the caller's memberships to find or check the object asked for."""
    return sum(
        "pipelines_membership" in query["sql"] and not query["sql"].startswith(_MENU)
        for query in captured.captured_queries
    )


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_run_page_reads_the_membership_once(developer, pipeline):
    run = Run.objects.create(pipeline=pipeline, number=1, ref="main", status=RunStatus.SUCCEEDED)
    client = signed_in(developer)

    with CaptureQueriesContext(connection) as captured:
        response = client.get(f"/runs/{run.pk}/")

    assert response.status_code == 200
    assert response.context["can_run"] is True
    assert membership_reads(captured) == 1


def test_deleting_a_secret_from_its_page_reads_the_membership_once(developer, pipeline):
    Secret.objects.create(pipeline=pipeline, name="TOKEN", value="s3cret-value")
    client = signed_in(developer)

    with CaptureQueriesContext(connection) as captured:
        response = client.post(f"/pipelines/{pipeline.pk}/secrets/delete", {"name": "TOKEN"})

    assert response.status_code == 302
    assert not Secret.objects.filter(pipeline=pipeline).exists()
    assert membership_reads(captured) == 1


def test_setting_a_secret_through_the_api_reads_the_membership_once(developer, pipeline):
    client = signed_in(developer)
    mutation = """mutation($id: ID!) { setSecret(pipelineId: $id, name: "TOKEN",
        value: "s3cret-value") { ... on Secret { name }
        ... on OperationInfo { messages { message } } } }"""

    with CaptureQueriesContext(connection) as captured:
        response = client.post(
            "/graphql",
            {"query": mutation, "variables": {"id": pipeline.pk}},
            content_type="application/json",
        )

    assert response.json()["data"]["setSecret"] == {"name": "TOKEN"}
    assert membership_reads(captured) == 1


def test_a_viewer_is_still_refused_with_the_role_read_once(pipeline):
    viewer = factories.user("viewer")
    factories.member(pipeline.project, viewer, Role.VIEWER)
    Secret.objects.create(pipeline=pipeline, name="TOKEN", value="s3cret-value")

    response = signed_in(viewer).post(f"/pipelines/{pipeline.pk}/secrets/delete", {"name": "TOKEN"})

    assert response.status_code == 403
    assert Secret.objects.filter(pipeline=pipeline).exists()
