"""What the busiest pages do per request beyond their queries: parsing kept configs, and the
shape of the role checks every page of a project's object makes."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from bedrock.pipelines import spec as hcl
from bedrock.pipelines.models import Role
from bedrock.pipelines.tasks import pipeline_config_refresh
from bedrock.runs.models import Run, RunStatus
from tests import factories
from tests.repos import EXAMPLE, make_repo
from tests.test_membership_reads import signed_in

pytestmark = pytest.mark.django_db


def test_the_pipeline_page_parses_a_kept_config_once_however_often_it_is_shown(
    tmp_path, monkeypatch
):
    repo = make_repo(tmp_path / "churn", copy=EXAMPLE)
    project = factories.project()
    pipeline = factories.pipeline(project, git_url=str(repo))
    viewer = factories.user()
    factories.member(project, viewer, Role.VIEWER)
    pipeline_config_refresh(pipeline.pk, "main")
    parses = []
    real_load = hcl.parse.load_with
    monkeypatch.setattr(
        hcl.parse, "load_with", lambda *a, **k: parses.append(1) or real_load(*a, **k)
    )
    client = signed_in(viewer)

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
