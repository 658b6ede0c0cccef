"""What the busiest pages do per request beyond their queries: parsing kept configs, asking Git
for a branch's head, and the shape of the role checks every page of a project's object makes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from bedrock.pipelines import git
from bedrock.pipelines import spec as hcl
from bedrock.pipelines.models import PipelineConfigSnapshot, Role
from bedrock.pipelines.tasks import pipeline_config_refresh
from bedrock.runs.models import Run, RunStatus
from tests import factories
from tests.repos import EXAMPLE, make_repo
from tests.test_membership_reads import signed_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def pipeline(tmp_path):
    """The example's pipeline with its config read and kept, and a viewer of its project."""
    repo = make_repo(tmp_path / "churn", copy=EXAMPLE)
    project = factories.project()
    made = factories.pipeline(project, git_url=str(repo))
    made.viewer = factories.user()
    factories.member(project, made.viewer, Role.VIEWER)
    pipeline_config_refresh(made.pk, "main")
    return made


def test_the_pipeline_page_parses_a_kept_config_once_however_often_it_is_shown(
    pipeline, monkeypatch
):
    parses = []
    real_load = hcl.parse.load_with
    monkeypatch.setattr(
        hcl.parse, "load_with", lambda *a, **k: parses.append(1) or real_load(*a, **k)
    )
    client = signed_in(pipeline.viewer)

    pages = [client.get(f"/pipelines/{pipeline.pk}/") for _ in range(3)]

    assert all(page.status_code == 200 for page in pages)
    assert all('<div class="dag-name">train</div>' in page.content.decode() for page in pages)
    assert 0 < len(parses) <= 2  # the check and the stanza, once


def test_a_pages_role_check_reads_the_membership_alone():
    owner = factories.user()
    project = factories.project()
    factories.member(project, owner, Role.DEVELOPER)
    run = Run.objects.create(
        pipeline=factories.pipeline(project), number=1, ref="main", status=RunStatus.SUCCEEDED
    )
    client = signed_in(owner)

    with CaptureQueriesContext(connection) as captured:
        assert client.get(f"/runs/{run.pk}/").status_code == 200

    found = next(q["sql"] for q in captured.captured_queries if '"runs_run"."id" =' in q["sql"])
    role = found[found.index('(SELECT U0."role"') :].split(") AS")[0]
    # The membership is one row per user and project: nothing to join, nothing to sort.
    assert "auth_user" not in role and "ORDER BY" not in role


def test_the_pipeline_page_asks_git_for_the_head_once_within_the_kept_time(
    pipeline, monkeypatch, settings
):
    asked = []
    real_remote_head = git.remote_head
    monkeypatch.setattr(
        git, "remote_head", lambda *a, **k: asked.append(1) or real_remote_head(*a, **k)
    )
    client = signed_in(pipeline.viewer)

    settings.BEDROCK_GIT_HEAD_TTL = timedelta(minutes=1)
    kept = [client.get(f"/pipelines/{pipeline.pk}/") for _ in range(3)]
    settings.BEDROCK_GIT_HEAD_TTL = timedelta(0)
    fresh = client.get(f"/pipelines/{pipeline.pk}/")

    sha = PipelineConfigSnapshot.objects.get(pipeline=pipeline).commit_sha
    assert all(f'<code title="{sha}">' in page.content.decode() for page in [*kept, fresh])
    assert len(asked) == 2  # once for the three kept views, once when nothing may be kept


def _asks_for_any_project(sql: str) -> bool:
    return sql.startswith('SELECT 1 AS "a" FROM "pipelines_project"') and "role" not in sql


def test_the_home_page_with_pipelines_does_not_ask_whether_the_user_has_a_project():
    owner = factories.user()
    project = factories.project()
    factories.member(project, owner, Role.VIEWER)
    factories.pipeline(project)
    client = signed_in(owner)

    with CaptureQueriesContext(connection) as captured:
        assert client.get("/").status_code == 200

    assert not any(_asks_for_any_project(q["sql"]) for q in captured.captured_queries)


def test_the_home_page_without_pipelines_still_says_the_project_has_none():
    owner = factories.user()
    factories.member(factories.project(), owner, Role.VIEWER)
    client = signed_in(owner)

    with CaptureQueriesContext(connection) as captured:
        page = client.get("/")

    assert "No pipelines" in page.content.decode()
    assert sum(_asks_for_any_project(q["sql"]) for q in captured.captured_queries) == 1
