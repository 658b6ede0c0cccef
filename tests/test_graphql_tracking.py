"""What runs record, in GraphQL: metrics, parameters and charts, scoped as the runs are, and runs
and model versions filtered and ordered by a metric's latest value."""

from __future__ import annotations

import importlib.util
import math
import secrets
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from bedrock.accounts.models import hash_token
from bedrock.accounts.services import api_token_create
from bedrock.models.models import ModelVersion
from bedrock.pipelines.models import PipelineKind, Role
from bedrock.runs.models import Run, RunStatus
from bedrock.tracking.graphql.types import MAX_POINTS
from bedrock.tracking.models import Param
from tests import factories

pytestmark = pytest.mark.django_db


def signed_in(user) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def post(query: str, *, user=None, token: str | None = None, client=None, **variables) -> dict:
    client = client or signed_in(user)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = client.post(
        "/graphql",
        {"query": query, "variables": variables},
        content_type="application/json",
        headers=headers,
    )
    assert response.status_code == 200, response.content
    return response.json()


def data(query: str, **kwargs) -> dict:
    body = post(query, **kwargs)
    assert "errors" not in body, body["errors"]
    return body["data"]


def counted(query: str, user, **variables) -> tuple[dict, list[str]]:
    """The answer and the SQL it took, less the session's and its user's reads."""
    client = signed_in(user)
    with CaptureQueriesContext(connection) as captured:
        answer = data(query, client=client, **variables)
    return answer, [query["sql"] for query in captured.captured_queries[2:]]


def training_run(pipeline, number: int, **fields) -> Run:
    fields.setdefault("status", RunStatus.SUCCEEDED)
    return Run.objects.create(pipeline=pipeline, number=number, ref="main", **fields)


def version_of(run: Run, number: int) -> ModelVersion:
    return ModelVersion.objects.create(
        model=run.pipeline.model,
        number=number,
        run=run,
        storage_key=f"k/{run.pk}",
        size=1,
        sha256="0" * 64,
        file_count=1,
    )


@pytest.fixture
def world():
    project = factories.project("acme")
    member = factories.user("member")
    factories.member(project, member, Role.VIEWER)
    pipeline = factories.pipeline(project, name="train")
    run = training_run(pipeline, 1, parameters={"EPOCHS": "10", "LR": "0.1"})
    factories.metric(run, "loss", [0.9, 0.5, 0.7, 0.3], chunk=3)
    factories.metric(run, "auc", [0.81], step_name="evaluate")
    Param.objects.create(run=run, name="LR", value="0.01", step_name="train")
    Param.objects.create(run=run, name="optimizer", value="adam", step_name="train")
    factories.chart(
        run,
        thresholds=[0.0, 0.5, 0.95],
        tp=[10, 6, 0],
        fp=[10, 2, 0],
        tn=[0, 8, 10],
        fn=[0, 4, 10],
    )
    return SimpleNamespace(member=member, pipeline=pipeline, run=run)


RUN = """query($id: ID!) { run(id: $id) {
    metrics { name stepName count latestValue latestX latestAt min max }
    params { name value source stepName }
    charts { name kind stepName thresholds tp fp tn fn precision recall falsePositiveRate } } }"""


def test_a_runs_metrics_give_their_latest_value_count_and_extremes(world):
    run = data(RUN, user=world.member, id=str(world.run.pk))["run"]

    auc, loss = run["metrics"]
    assert auc["name"] == "auc" and auc["stepName"] == "evaluate"
    assert loss == {
        "name": "loss",
        "stepName": "train",
        "count": 4,
        "latestValue": 0.3,
        "latestX": 3.0,
        "latestAt": loss["latestAt"],
        "min": 0.3,
        "max": 0.9,
    }
    assert loss["latestAt"].startswith("20")


def test_params_are_the_runs_own_then_the_logged_ones_each_with_its_source(world):
    params = data(RUN, user=world.member, id=str(world.run.pk))["run"]["params"]

    assert params == [
        {"name": "EPOCHS", "value": "10", "source": "RUN", "stepName": None},
        {"name": "LR", "value": "0.1", "source": "RUN", "stepName": None},
        {"name": "LR", "value": "0.01", "source": "STEP", "stepName": "train"},
        {"name": "optimizer", "value": "adam", "source": "STEP", "stepName": "train"},
    ]


def test_a_run_parameter_that_is_not_text_reads_as_it_was_written():
    project = factories.project()
    owner = factories.user()
    factories.member(project, owner)
    run = training_run(factories.pipeline(project), 1, parameters={"N": 3, "ON": True})

    params = data(RUN, user=owner, id=str(run.pk))["run"]["params"]

    assert [(param["name"], param["value"]) for param in params] == [("N", "3"), ("ON", "true")]


def test_a_chart_gives_its_matrices_and_the_rates_derived_null_where_undefined(world):
    (chart,) = data(RUN, user=world.member, id=str(world.run.pk))["run"]["charts"]

    assert chart["kind"] == "BINARY_CLASSIFIER" and chart["stepName"] == "train"
    assert chart["thresholds"] == [0.0, 0.5, 0.95]
    assert (chart["tp"], chart["fp"], chart["tn"], chart["fn"]) == (
        [10, 6, 0],
        [10, 2, 0],
        [0, 8, 10],
        [0, 4, 10],
    )
    assert chart["precision"] == [0.5, 0.75, None]  # nothing predicted positive at 0.95
    assert chart["recall"] == [1.0, 0.6, 0.0]
    assert chart["falsePositiveRate"] == [1.0, 0.2, 0.0]


POINTS = """query($id: ID!, $limit: Int!) { run(id: $id) {
    metrics(filters: {name: {exact: "loss"}}) { name points(limit: $limit) { x value timestamp } }
    } }"""


def test_points_are_the_series_in_the_order_logged_across_chunks(world):
    (loss,) = data(POINTS, user=world.member, id=str(world.run.pk), limit=1000)["run"]["metrics"]

    assert loss["points"] == [
        {"x": 0.0, "value": 0.9, "timestamp": 1764600000.0},
        {"x": 1.0, "value": 0.5, "timestamp": 1764600001.0},
        {"x": 2.0, "value": 0.7, "timestamp": 1764600002.0},
        {"x": 3.0, "value": 0.3, "timestamp": 1764600003.0},
    ]


@pytest.mark.parametrize("limit", [2, 5, 100, 101])
def test_points_are_thinned_to_the_limit_keeping_the_ends_and_a_spike(world, limit):
    # Starting and ending mid-slope, so that neither end is its stretch's lowest or highest.
    values = [math.sin(index / 50 + 1) for index in range(5000)]
    values[2345] = 40.0
    factories.metric(world.run, "wave", values, chunk=700)
    query = POINTS.replace('"loss"', '"wave"')

    (wave,) = data(query, user=world.member, id=str(world.run.pk), limit=limit)["run"]["metrics"]

    xs = [point["x"] for point in wave["points"]]
    assert len(xs) <= limit and xs == sorted(xs)
    assert xs[-1] == 4999.0
    if limit > 2:
        assert xs[0] == 0.0
    if limit >= 100:
        assert len(xs) >= limit - 4
        assert 40.0 in [point["value"] for point in wave["points"]]


@pytest.mark.parametrize("limit", [MAX_POINTS + 1, 0])
def test_a_limit_outside_the_cap_is_refused_with_the_cap(world, limit):
    body = post(POINTS, user=world.member, id=str(world.run.pk), limit=limit)

    (error,) = body["errors"]
    assert error["message"] == f"limit must be between 1 and 10000, got {limit}."
    assert error["path"][-1] == "points"


def test_the_cap_itself_is_allowed(world):
    (loss,) = data(POINTS, user=world.member, id=str(world.run.pk), limit=MAX_POINTS)["run"][
        "metrics"
    ]
    assert len(loss["points"]) == 4


# --- who sees what --------------------------------------------------------------------------------
EVERYTHING = """{ runs(first: 50) { edges { node { id metrics { name } params { name }
    charts { name } } } } }"""


def test_an_outsider_sees_no_metric_param_or_chart(world):
    outsider = factories.user("outsider")

    assert data(RUN, user=outsider, id=str(world.run.pk)) == {"run": None}
    assert data(EVERYTHING, user=outsider) == {"runs": {"edges": []}}


def test_anonymous_sees_nothing(world):
    assert data(RUN, id=str(world.run.pk)) == {"run": None}


def test_a_member_sees_their_projects_runs_and_not_another_projects(world):
    elsewhere = factories.pipeline(factories.project(), name="other")
    hidden = training_run(elsewhere, 1, parameters={"SECRET_SAUCE": "1"})
    factories.metric(hidden, "auc", [0.99])

    edges = data(EVERYTHING, user=world.member)["runs"]["edges"]

    assert [edge["node"]["id"] for edge in edges] == [str(world.run.pk)]
    (node,) = [edge["node"] for edge in edges]
    assert [metric["name"] for metric in node["metrics"]] == ["auc", "loss"]
    assert [param["name"] for param in node["params"]] == ["EPOCHS", "LR", "LR", "optimizer"]
    assert [chart["name"] for chart in node["charts"]] == ["binary_classifier"]


def running(pipeline, number: int, **fields) -> tuple[Run, str]:
    token = "bdrkrun_" + secrets.token_urlsafe(32)
    run = training_run(pipeline, number, status=RunStatus.RUNNING, token_hash=hash_token(token))
    for name, value in fields.items():
        setattr(run, name, value)
    run.save()
    return run, token


VERSION = """query($id: ID!) { modelVersion(id: $id) { number metrics { name latestValue } } }"""
# The version's run asked for as well, before and after its metrics: the two reads of the run must
# not mix up.
VERSION_AND_RUN = [
    """query($id: ID!) { modelVersion(id: $id) { run { number } metrics { name } } }""",
    """query($id: ID!) { modelVersion(id: $id) { metrics { name } run { number } } }""",
]


def test_a_run_token_reads_its_own_runs_records_and_no_other_runs(world):
    version = version_of(world.run, 1)
    scoring = factories.pipeline(
        world.pipeline.project, kind=PipelineKind.BATCH_SCORING, name="score"
    )
    scorer, token = running(scoring, 1, input_model_version=version, parameters={"DAY": "1"})
    factories.metric(scorer, "rows_scored", [100.0])
    Param.objects.create(run=scorer, name="batch", value="7", step_name="score")

    own = data(RUN, token=token, id=str(scorer.pk))["run"]
    assert [metric["name"] for metric in own["metrics"]] == ["rows_scored"]
    assert [(param["name"], param["source"]) for param in own["params"]] == [
        ("DAY", "RUN"),
        ("batch", "STEP"),
    ]
    # The version it scores with is readable, but the training run's metrics are not its own.
    assert data(VERSION, token=token, id=str(version.pk)) == {
        "modelVersion": {"number": 1, "metrics": []}
    }
    for query in VERSION_AND_RUN:
        found = data(query, token=token, id=str(version.pk))["modelVersion"]
        assert found["run"] is None and found["metrics"] == []
    assert data(RUN, token=token, id=str(world.run.pk)) == {"run": None}


def test_a_member_reads_a_versions_metrics_from_its_training_run(world):
    version = version_of(world.run, 1)

    found = data(VERSION, user=world.member, id=str(version.pk))["modelVersion"]

    assert found["metrics"] == [
        {"name": "auc", "latestValue": 0.81},
        {"name": "loss", "latestValue": 0.3},
    ]
    assert data(VERSION, user=factories.user(), id=str(version.pk)) == {"modelVersion": None}
    for query in VERSION_AND_RUN:
        found = data(query, user=world.member, id=str(version.pk))["modelVersion"]
        assert found["run"] == {"number": 1}
        assert found["metrics"] == [{"name": "auc"}, {"name": "loss"}]


# --- query counts ---------------------------------------------------------------------------------
LISTING = """{ runs(first: 50) { edges { node { number metrics { name latestValue }
    params { name value source } charts { name precision } } } } }"""

VERSIONS = """query($model: ID!) { model(id: $model) { versions(first: 50) { edges { node {
    number metrics { name latestValue } } } } } }"""

VERSIONS_AND_RUNS = """{ models(first: 5) { edges { node { versions(first: 50) { edges { node {
    number metrics { name latestValue } run { number metrics { name } } } } } } } } }"""


def runs_with_records(pipeline, count: int) -> None:
    start = Run.objects.filter(pipeline=pipeline).count() + 1
    for number in range(start, start + count):
        run = training_run(pipeline, number, parameters={"SEED": str(number)})
        for name in ("auc", "loss", "accuracy"):
            factories.metric(run, name, [0.1 * (number % 9), 0.5], chunk=1)
        Param.objects.create(run=run, name="lr", value="0.1")
        factories.chart(run, tp=[1], fp=[1], tn=[1], fn=[1], thresholds=[0.5])
        version_of(run, number)


@pytest.mark.parametrize(
    "query",
    [LISTING, VERSIONS, VERSIONS_AND_RUNS],
    ids=["runs", "versions", "versions-and-their-runs"],
)
def test_listing_runs_with_their_records_costs_the_same_queries_for_3_as_for_30(world, query):
    model = str(world.pipeline.model_id)
    runs_with_records(world.pipeline, 2)
    variables = {"model": model} if "$model" in query else {}
    _, queries_for_few = counted(query, world.member, **variables)

    runs_with_records(world.pipeline, 27)
    many, queries_for_many = counted(query, world.member, **variables)

    if "runs" in many:
        listed = many["runs"]
    elif "model" in many:
        listed = many["model"]["versions"]
    else:
        listed = many["models"]["edges"][0]["node"]["versions"]
    assert len(listed["edges"]) >= 29
    assert len(queries_for_many) == len(queries_for_few) <= 7
    assert not any("metricchunk" in sql for sql in queries_for_many)


def test_points_of_thirty_metrics_are_read_one_query_per_series_asked_for(world):
    runs_with_records(world.pipeline, 10)
    query = """{ runs(first: 50) { edges { node { metrics { name points { value } } } } } }"""

    answer, queries = counted(query, world.member)

    assert sum(len(edge["node"]["metrics"]) for edge in answer["runs"]["edges"]) == 32
    assert sum("metricchunk" in sql for sql in queries) == 32


def test_one_request_reads_no_more_stored_points_than_its_budget(world, monkeypatch):
    from bedrock.tracking.graphql import types

    runs_with_records(world.pipeline, 10)
    monkeypatch.setattr(types, "POINTS_READ_PER_REQUEST", 5)
    query = """{ runs(first: 50) { edges { node { metrics { name points { value } } } } } }"""

    with CaptureQueriesContext(connection) as captured:
        answer = post(query, user=world.member)

    assert "past the 5 one request may: ask for the points of fewer series" in str(answer["errors"])
    # Refused before their chunks were read: only the series within the budget were.
    chunk_reads = [q for q in captured.captured_queries if "metricchunk" in q["sql"]]
    assert 0 < len(chunk_reads) < 5


# --- filtering and ordering by a metric -----------------------------------------------------------
BEST = """query($filters: RunFilter, $ordering: [RunOrder!]!, $first: Int) {
    runs(filters: $filters, ordering: $ordering, first: $first) { edges { node { number } } } }"""


@pytest.fixture
def ranked(world):
    """Runs 2-8 of one pipeline with these aucs; run 6 has none, only a loss."""
    aucs = {2: 0.70, 3: 0.95, 4: 0.85, 5: 0.85, 7: 0.60, 8: 0.90}
    for number in range(2, 9):
        run = training_run(world.pipeline, number)
        if number in aucs:
            factories.metric(run, "auc", [0.5, aucs[number]])
        else:
            factories.metric(run, "loss", [0.2])
    world.run.metrics.filter(name="auc").delete()  # run 1 has none either
    return world


def numbers(answer: dict) -> list[int]:
    return [edge["node"]["number"] for edge in answer["runs"]["edges"]]


def test_the_five_runs_with_the_best_auc_ties_newest_first(ranked):
    order = [{"metric": {"name": "auc", "direction": "DESC"}}]

    answer = data(BEST, user=ranked.member, ordering=order, first=5)

    assert numbers(answer) == [3, 8, 5, 4, 2]


def test_runs_without_the_metric_come_last_whichever_the_direction(ranked):
    for direction, expected in [("DESC", [3, 8, 5, 4, 2, 7]), ("ASC", [7, 2, 5, 4, 8, 3])]:
        order = [{"metric": {"name": "auc", "direction": direction}}]

        answer = data(BEST, user=ranked.member, ordering=order, first=50)

        assert numbers(answer) == [*expected, 6, 1]


def test_a_metric_filter_keeps_runs_whose_latest_value_compares(ranked):
    def kept(value: dict | None) -> list[int]:
        metric = {"name": "auc"} if value is None else {"name": "auc", "value": value}
        return sorted(
            numbers(data(BEST, user=ranked.member, ordering=[], filters={"metric": metric}))
        )

    assert kept({"gte": 0.85}) == [3, 4, 5, 8]
    assert kept({"gt": 0.85, "lt": 0.95}) == [8]
    assert kept({"lte": 0.7}) == [2, 7]  # the first points (0.5) do not count, only the latest
    assert kept(None) == [2, 3, 4, 5, 7, 8]


def test_the_filter_and_the_order_together_with_literals(ranked):
    query = """{ runs(filters: {metric: {name: "auc", value: {gte: 0.8}}},
        ordering: [{metric: {name: "auc", direction: DESC}}], first: 5) {
        edges { node { number } } } }"""

    assert numbers(data(query, user=ranked.member)) == [3, 8, 5, 4]


def test_a_pipelines_runs_are_ordered_by_a_metric_page_by_page_with_their_total(ranked):
    query = """{ pipelines { edges { node { runs(first: 2,
        ordering: [{metric: {name: "auc", direction: DESC}}]) {
        totalCount edges { node { number } } } } } } }"""

    (pipeline,) = data(query, user=ranked.member)["pipelines"]["edges"]

    assert pipeline["node"]["runs"]["totalCount"] == 8
    assert numbers(pipeline["node"]) == [3, 8]


def test_two_metric_orders_do_not_clash(ranked):
    order = [{"metric": {"name": "loss"}}, {"metric": {"name": "auc", "direction": "DESC"}}]

    answer = data(BEST, user=ranked.member, ordering=order, first=50)

    assert numbers(answer)[0] == 6  # the only run with a loss


def test_the_metric_order_sees_no_other_projects_runs(ranked):
    elsewhere = factories.pipeline(factories.project(), name="other")
    factories.metric(training_run(elsewhere, 1), "auc", [0.99])
    order = [{"metric": {"name": "auc", "direction": "DESC"}}]

    assert numbers(data(BEST, user=ranked.member, ordering=order, first=1)) == [3]


PICK = """query($model: ID!, $filters: ModelVersionFilter, $ordering: [ModelVersionOrder!]!) {
    model(id: $model) { versions(filters: $filters, ordering: $ordering, first: 3) {
    edges { node { number } } } } }"""


def test_versions_filtered_and_ordered_by_their_training_runs_metric(ranked):
    for run in Run.objects.filter(pipeline=ranked.pipeline):
        version_of(run, run.number)
    model = str(ranked.pipeline.model_id)

    def picked(**arguments) -> list[int]:
        answer = data(PICK, user=ranked.member, model=model, **arguments)
        return [edge["node"]["number"] for edge in answer["model"]["versions"]["edges"]]

    best = [{"metric": {"name": "auc", "direction": "DESC"}}]
    assert picked(ordering=best) == [3, 8, 5]
    worst = [{"metric": {"name": "auc", "direction": "ASC"}}]
    assert picked(ordering=worst) == [7, 2, 5]
    good = {"metric": {"name": "auc", "value": {"gte": 0.85}}}
    assert picked(ordering=worst, filters=good) == [5, 4, 8]
    assert picked(ordering=[{"number": "DESC"}], filters={"metric": {"name": "loss"}}) == [6, 1]


def load_scheduler():
    path = Path(__file__).resolve().parents[1] / "bedrock" / "examples" / "scheduler.py"
    spec = importlib.util.spec_from_file_location("scheduler_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("lowest", "expected"), [(False, (3, 0.95)), (True, (7, 0.60))])
def test_the_scheduler_example_picks_the_version_with_the_best_metric(
    ranked, monkeypatch, lowest, expected
):
    for run in Run.objects.filter(pipeline=ranked.pipeline):
        version_of(run, run.number)
    scheduler = load_scheduler()
    token = api_token_create(user=ranked.member, name="scheduler").plaintext

    def graphql(url: str, token: str, query: str, **variables) -> dict:
        return data(query, token=token, **variables)

    monkeypatch.setattr(scheduler, "graphql", graphql)
    model = str(ranked.pipeline.model_id)

    picked = scheduler.best_version("http://bedrock", token, model, "auc", lowest)

    assert (picked["number"], picked["value"]) == expected
    with pytest.raises(scheduler.ApiError, match="has a metric 'f1'"):
        scheduler.best_version("http://bedrock", token, model, "f1", lowest)
