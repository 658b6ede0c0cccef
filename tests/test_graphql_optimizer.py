"""The query optimizer: a list costs the same number of SQL queries for 1 row as for 50."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from bedrock.models.models import ModelVersion
from bedrock.pipelines.models import PipelineKind, Role
from bedrock.runs.models import Run, RunStatus, RunStep
from tests import factories

pytestmark = pytest.mark.django_db


def queries_for(user, query: str, **variables) -> tuple[dict, int]:
    client = Client()
    client.force_login(user)
    with CaptureQueriesContext(connection) as captured:
        response = client.post(
            "/graphql", {"query": query, "variables": variables}, content_type="application/json"
        )
    body = response.json()
    assert "errors" not in body, body["errors"]
    # The session and its user are read before the API is reached, whatever the query.
    return body["data"], len(captured) - 2


@pytest.fixture
def member():
    return factories.user("member")


def make_runs(member, count: int) -> None:
    """``count`` training runs, each publishing a version, and ``count`` scoring runs using one."""
    project = factories.project()
    factories.member(project, member, Role.VIEWER)
    training = factories.pipeline(project, name="train")
    scoring = factories.pipeline(project, kind=PipelineKind.BATCH_SCORING, name="score")
    for number in range(1, count + 1):
        trained = Run.objects.create(
            pipeline=training, number=number, ref="main", status=RunStatus.SUCCEEDED
        )
        version = ModelVersion.objects.create(
            model=training.model,
            number=number,
            run=trained,
            storage_key=f"k/{number}",
            size=1,
            sha256="0" * 64,
            file_count=1,
        )
        scored = Run.objects.create(
            pipeline=scoring,
            number=number,
            ref="main",
            status=RunStatus.SUCCEEDED,
            input_model_version=version,
            triggered_by=member,
        )
        for run in (trained, scored):
            for position, name in enumerate(["prepare", "work", "report"]):
                RunStep.objects.create(run=run, name=name, position=position)


RUNS = """query($n: Int!) { runs(first: $n) { totalCount edges { node { id number status
    triggeredBy maxRunTime
    pipeline { name kind project { name } model { name } }
    steps { edges { node { name status dependsOn } } }
    inputModelVersion { number downloadUrl model { name } }
    outputModelVersion { number fileCount } } } } }"""


@pytest.mark.parametrize(
    ("query", "listed"),
    [
        (RUNS, "runs"),
        (
            """query($n: Int!) { pipelines(first: $n) { edges { node { name project { name }
            model { name versions(first: 5) { edges { node { number run { number } } } } }
            runs(first: 5) { edges { node { number steps { edges { node { name } } }
            inputModelVersion { number } } } } } } } }""",
            "pipelines",
        ),
        (
            """query($n: Int!) { models(first: $n) { edges { node { name project { name }
            versions(first: 50) { edges { node { number filename
            run { number pipeline { name } } } } } } } } }""",
            "models",
        ),
    ],
)
def test_listing_fifty_costs_the_same_queries_as_listing_one(member, query, listed):
    make_runs(member, 1)
    one, queries_for_one = queries_for(member, query, n=50)

    make_runs(member, 25)  # another project: 26 of each run, 2 more pipelines, another model
    many, queries_for_many = queries_for(member, query, n=50)

    assert len(many[listed]["edges"]) > len(one[listed]["edges"])
    assert queries_for_many == queries_for_one
    assert queries_for_one <= 8


def test_fifty_runs_with_pipeline_steps_and_versions_cost_a_fixed_handful_of_queries(member):
    make_runs(member, 25)
    result, queries = queries_for(member, RUNS, n=50)

    runs = [edge["node"] for edge in result["runs"]["edges"]]
    assert len(runs) == 50 and result["runs"]["totalCount"] == 50
    assert all(len(run["steps"]["edges"]) == 3 for run in runs)
    assert sum(run["inputModelVersion"] is not None for run in runs) == 25
    assert sum(run["outputModelVersion"] is not None for run in runs) == 25
    # The runs with who triggered them; then, each through its type's scope (a foreign key to a
    # scoped type is prefetched, not joined): the pipelines, their projects, their models, the
    # steps, the input versions, their models, and the output versions.
    assert queries == 8
