"""Lists of runs read one page along an index: scoped in place, and counted once when asked.

The timings are in bench/lists.py; these check the statements that make them possible.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from bedrock.runs.models import Run, RunStatus, RunStep
from tests import factories

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[1]

RUNS = """query($after: String, $status: RunStatus) {
  runs(first: 2, after: $after, filters: {status: {exact: $status}}) {
    %s pageInfo { hasNextPage endCursor }
    edges { node { number steps { edges { node { name } } } } }
  }
}"""


@pytest.fixture
def viewer() -> Client:
    """A member of a project with three runs of one pipeline, and another project's run."""
    project = factories.project("acme")
    person = factories.user("viewer")
    factories.member(project, person)
    pipeline = factories.pipeline(project, name="train")
    for number, status in ((1, RunStatus.FAILED), (2, RunStatus.SUCCEEDED), (3, RunStatus.FAILED)):
        run = Run.objects.create(pipeline=pipeline, number=number, ref="main", status=status)
        RunStep.objects.create(run=run, name="train", position=0)
    theirs = factories.pipeline(factories.project("elsewhere"), name="theirs")
    Run.objects.create(pipeline=theirs, number=1, ref="main", status=RunStatus.FAILED)
    client = Client()
    client.force_login(person)
    return client


def runs(client: Client, total: bool = False, **variables) -> tuple[dict, list[str]]:
    query = RUNS % ("totalCount" if total else "")
    with CaptureQueriesContext(connection) as queries:
        response = client.post(
            "/graphql", {"query": query, "variables": variables}, content_type="application/json"
        )
    body = response.json()
    assert "errors" not in body, body["errors"]
    return body["data"]["runs"], [q["sql"] for q in queries.captured_queries]


def _numbers(page: dict) -> list[int]:
    return [edge["node"]["number"] for edge in page["edges"]]


def _page_query(statements: list[str]) -> str:
    (page,) = [sql for sql in statements if sql.startswith('SELECT "runs_run"."id"')]
    return page


def test_the_total_count_of_runs_is_a_count_subquery_not_a_window_over_the_page(viewer):
    page, statements = runs(viewer, total=True)
    assert page["totalCount"] == 3  # not the other project's run
    assert _numbers(page) == [3, 2]
    assert "OVER ()" not in _page_query(statements)
    assert "COUNT(" in _page_query(statements)
    assert not [sql for sql in statements if 'COUNT(*) AS "__count" FROM "runs_run"' in sql]

    failed, _ = runs(viewer, total=True, status="FAILED")
    assert (failed["totalCount"], _numbers(failed)) == (2, [3, 1])
    beyond, _ = runs(viewer, total=True, after=page["pageInfo"]["endCursor"])
    assert (beyond["totalCount"], _numbers(beyond)) == (3, [1])


def test_runs_are_counted_only_when_the_total_is_asked_for(viewer):
    _, statements = runs(viewer)
    assert "COUNT(" not in _page_query(statements)
    assert not [sql for sql in statements if 'COUNT(*) AS "__count" FROM "runs_run"' in sql]


def test_a_page_of_runs_is_scoped_in_place_and_follows_its_cursor(viewer):
    first, statements = runs(viewer)
    # ``id IN (every run the caller may see)`` would read them all before the first page.
    assert not [sql for sql in statements if '"runs_run"."id" IN (SELECT' in sql]
    assert not [sql for sql in statements if '"runs_runstep"."id" IN (SELECT' in sql]
    assert first["pageInfo"]["hasNextPage"]
    rest, _ = runs(viewer, after=first["pageInfo"]["endCursor"])
    assert (_numbers(rest), rest["pageInfo"]["hasNextPage"]) == ([1], False)
    assert rest["edges"][0]["node"]["steps"]["edges"] == [{"node": {"name": "train"}}]


@pytest.mark.slow
def test_the_benchmark_prints_its_table_and_json(tmp_path: Path):
    env = {"PATH": "/usr/bin:/bin", "TMPDIR": str(tmp_path)}
    argv = [sys.executable, "bench/lists.py", "--sizes", "5,20", "--requests", "1"]
    run = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert run.returncode == 0, run.stderr
    line = next(line for line in run.stdout.splitlines() if line.startswith("JSON "))
    report = json.loads(line.removeprefix("JSON "))
    assert (report["database"], report["sizes"]) == ("SQLite", [5, 20])
    assert set(report["cases"]) == {"runs", "failed", "total", "versions", "pipeline", "run"}
    for case in report["cases"].values():
        assert case["5"] > 0 and case["20"] > 0


VERSIONS = """query($model: ID!) {
  model(id: $model) { versions(first: 2) { edges { node { number run { number } } } } }
}"""


def test_a_models_versions_are_scoped_in_place(viewer):
    project = factories.project("acme-models")
    person = factories.user("modeller")
    factories.member(project, person)
    training = factories.pipeline(project, name="train-models")
    for number in (1, 2, 3):
        run = Run.objects.create(pipeline=training, number=number, ref="main")
        factories.model_version(training.model, run, number)
    client = Client()
    client.force_login(person)

    with CaptureQueriesContext(connection) as queries:
        response = client.post(
            "/graphql",
            {"query": VERSIONS, "variables": {"model": str(training.model_id)}},
            content_type="application/json",
        )

    body = response.json()
    assert "errors" not in body, body["errors"]
    edges = body["data"]["model"]["versions"]["edges"]
    assert [edge["node"]["number"] for edge in edges] == [3, 2]
    statements = [q["sql"] for q in queries.captured_queries]
    # ``id IN (every version the caller may see)`` would read them all before the first page.
    assert not [sql for sql in statements if '"models_modelversion"."id" IN (SELECT' in sql]
