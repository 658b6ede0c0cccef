from __future__ import annotations

import json
import math
import secrets

import pytest

from bedrock.accounts.models import hash_token
from bedrock.runs.models import Run, RunStatus, RunStep
from bedrock.tracking.batch import BatchError, parse_batch
from bedrock.tracking.models import Chart, Metric, MetricChunk, Param
from bedrock.tracking.series import metric_points, thinned
from tests import factories

pytestmark = pytest.mark.django_db


class Active:
    def __init__(self, run: Run, token: str) -> None:
        self.run, self.token = run, token

    def post(self, client, payload, **headers):
        body = payload if isinstance(payload, (bytes, str)) else json.dumps(payload)
        headers.setdefault("HTTP_AUTHORIZATION", f"Bearer {self.token}")
        return client.post("/api/tracking", body, content_type="application/json", **headers)


def _active_run(status: str = RunStatus.RUNNING) -> Active:
    pipeline = factories.pipeline(factories.project())
    token = "bdrkrun_" + secrets.token_urlsafe(32)
    number = pipeline.runs.count() + 1
    run = Run.objects.create(
        pipeline=pipeline, number=number, ref="main", status=status, token_hash=hash_token(token)
    )
    RunStep.objects.create(run=run, name="train", position=0)
    return Active(run, token)


@pytest.fixture
def active() -> Active:
    return _active_run()


def _series(values, **extra):
    return {"metrics": {"loss": {"value": values, **extra}}}


def test_a_batch_is_stored_as_series_parameters_and_a_chart(client, active):
    response = active.post(
        client,
        {
            "step": "train",
            "metrics": {
                "loss": {"value": [0.5, 0.25, 0.4], "x": [1, 2, 3]},
                "auc": {"value": [0.9]},
            },
            "params": {"lr": "0.01", "depth": 6},
            "charts": {
                "binary_classifier": {
                    "kind": "binary_classifier",
                    "thresholds": [0.0, 0.5],
                    "tp": [5, 4],
                    "fp": [5, 1],
                    "tn": [0, 4],
                    "fn": [0, 1],
                }
            },
        },
    )

    assert response.status_code == 200, response.content
    assert response.json() == {"points": 4, "params": 2, "charts": 1}
    loss = Metric.objects.get(run=active.run, name="loss")
    assert (loss.count, loss.latest_value, loss.latest_x) == (3, 0.4, 3)
    assert (loss.min_value, loss.max_value, loss.step_name) == (0.25, 0.5, "train")
    assert [point.value for point in metric_points(loss)] == [0.5, 0.25, 0.4]
    assert dict(active.run.logged_params.values_list("name", "value")) == {
        "lr": "0.01",
        "depth": "6",
    }
    chart = Chart.objects.get(run=active.run)
    assert chart.data["tp"] == [5, 4] and chart.data["thresholds"] == [0.0, 0.5]


def test_points_logged_again_continue_the_series_and_are_numbered_on(client, active):
    active.post(client, _series([1.0, 2.0]))
    active.post(client, _series([3.0]))

    loss = Metric.objects.get(run=active.run, name="loss")
    assert loss.count == 3 and loss.latest_value == 3.0
    assert [(point.x, point.value) for point in metric_points(loss)] == [
        (0, 1.0),
        (1, 2.0),
        (2, 3.0),
    ]
    assert list(loss.chunks.values_list("seq", flat=True)) == [0, 1]


def test_a_parameter_logged_again_takes_the_new_value(client, active):
    active.post(client, {"params": {"lr": "0.1"}})
    active.post(client, {"params": {"lr": "0.2"}})
    assert list(Param.objects.filter(run=active.run).values_list("value", flat=True)) == ["0.2"]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (
            b'{"metrics": {"loss": {"value": [1.0, NaN]}}}',
            "metrics.loss.value[1]: nan is not a finite",
        ),
        (
            b'{"metrics": {"loss": {"value": [Infinity]}}}',
            "metrics.loss.value[0]: inf is not a finite",
        ),
        ({"metrics": {"loss": {"value": [1, "2"]}}}, "metrics.loss.value[1]: '2' is not a number"),
        ({"metrics": {"loss": {"value": [True]}}}, "metrics.loss.value[0]: True is not a number"),
        ({"metrics": {"loss": {"value": [10**400]}}}, "metrics.loss.value[0]: 1000"),
        ({"metrics": {"x" * 251: {"value": [1]}}}, "251 characters long; the limit is 250"),
        ({"metrics": {"a\nb": {"value": [1]}}}, "control character"),
        ({"metrics": {"loss": {"value": []}}}, "metrics.loss.value: the list is empty"),
        ({"metrics": {"loss": {"value": [1, 2], "x": [1]}}}, "metrics.loss.x: 1 entries"),
        ({"params": {"lr": "x" * 6001}}, "params.lr: the value is 6001 characters"),
        ({"charts": {"c": {"kind": "pie"}}}, "charts.c.kind: 'pie' is not a chart kind"),
        ({"step": "score"}, "step: 'score' is not a step of this run"),
        ({"metric": {}}, "Unknown keys ['metric']"),
        (b"not json", "The body is not JSON"),
    ],
)
def test_a_bad_batch_is_refused_by_field_and_nothing_of_it_is_stored(
    client, active, payload, message
):
    if isinstance(payload, dict):  # a good series beside the bad part: it must not be kept
        good = {"good": {"value": [1.0]}}
        payload = {**payload, "metrics": {**good, **payload.get("metrics", {})}}
    response = active.post(client, payload)

    assert response.status_code == 400
    assert message in response.json()["error"]
    assert "Nothing" in response.json()["error"]
    assert not Metric.objects.exists() and not Param.objects.exists()


def test_a_batch_that_would_pass_the_runs_point_limit_is_refused_whole(client, active, settings):
    settings.BEDROCK_TRACKING_MAX_POINTS_PER_RUN = 5
    assert active.post(client, _series([1.0] * 4)).status_code == 200

    response = active.post(client, {"metrics": {"loss": {"value": [1.0]}, "b": {"value": [1, 2]}}})

    assert response.status_code == 400
    assert "the run would hold 7 points; the limit is 5" in response.json()["error"]
    assert Metric.objects.get().count == 4 and MetricChunk.objects.count() == 1


def test_the_limits_on_metrics_parameters_and_charts_per_run(client, active, settings):
    settings.BEDROCK_TRACKING_MAX_METRICS_PER_RUN = 1
    settings.BEDROCK_TRACKING_MAX_PARAMS_PER_RUN = 1
    first = active.post(client, {"metrics": {"a": {"value": [1]}}, "params": {"p": "1"}})
    assert first.status_code == 200
    # More points for a metric the run has, and a parameter logged again, are within the limits.
    assert active.post(client, {"metrics": {"a": {"value": [2]}}}).status_code == 200
    assert active.post(client, {"params": {"p": "2"}}).status_code == 200
    refused = active.post(client, {"metrics": {"b": {"value": [1]}}})
    assert "would hold 2 metrics; the limit is 1" in refused.json()["error"]
    refused = active.post(client, {"params": {"q": "1"}})
    assert "would hold 2 params; the limit is 1" in refused.json()["error"]


def test_a_batch_over_the_point_limit_of_one_request_is_refused(settings):
    settings.BEDROCK_TRACKING_MAX_POINTS_PER_REQUEST = 3
    with pytest.raises(BatchError, match="4 points in one batch; the limit is 3"):
        parse_batch({"metrics": {"a": {"value": [1, 2]}, "b": {"value": [3, 4]}}})


def test_a_body_over_the_byte_limit_is_refused_unread(client, active, settings):
    settings.BEDROCK_TRACKING_MAX_REQUEST_BYTES = 100
    response = active.post(client, _series([1.0] * 100))
    assert response.status_code == 413
    assert "BEDROCK_TRACKING_MAX_REQUEST_BYTES" in response.json()["error"]
    assert not Metric.objects.exists()


def test_only_an_active_runs_own_token_may_log(client):
    ended = _active_run(RunStatus.SUCCEEDED)
    assert ended.post(client, _series([1.0])).status_code == 401
    user = factories.user()
    client.force_login(user)
    response = client.post("/api/tracking", "{}", content_type="application/json")
    assert response.status_code == 401
    assert not Metric.objects.exists()


def test_two_runs_keep_their_own_series(client):
    first, second = _active_run(), _active_run()
    first.post(client, _series([1.0]))
    second.post(client, _series([2.0, 3.0]))
    assert Metric.objects.get(run=first.run).count == 1
    assert Metric.objects.get(run=second.run).count == 2


def test_a_large_batch_is_one_chunk_per_series(client, active):
    values = [math.sin(index / 100) for index in range(20_000)]
    response = active.post(client, _series(values, timestamp=[1_764_600_000.0] * 20_000))
    assert response.json()["points"] == 20_000
    loss = Metric.objects.get()
    assert loss.chunks.count() == 1 and len(metric_points(loss)) == 20_000
    assert loss.latest_at.timestamp() == 1_764_600_000.0


def test_a_thinned_series_keeps_its_ends_and_its_spike():
    from bedrock.tracking.series import Point

    series = [Point(index, 1.0, 0.0) for index in range(10_000)]
    series[5_000] = Point(5_000, 99.0, 0.0)
    kept = thinned(series, 100)
    assert len(kept) <= 102
    assert kept[0] == series[0] and kept[-1] == series[-1]
    assert max(point.value for point in kept) == 99.0
    assert [point.x for point in kept] == sorted(point.x for point in kept)


def test_each_chunk_keeps_a_preview_that_thinning_again_keeps_the_series_shape(client, active):
    from bedrock.tracking.series import PREVIEW_POINTS, preview

    values = [0.0] * 20_000
    values[12_345] = 7.0
    active.post(client, _series(values))

    chunk = MetricChunk.objects.get()
    assert len(chunk.preview_value) <= PREVIEW_POINTS + 2
    assert max(chunk.preview_value) == 7.0 and 12_345 in chunk.preview_x
    assert chunk.preview_x[0] == 0 and chunk.preview_x[-1] == 19_999
    short = list(range(10))
    assert preview(short, [float(v) for v in short]) == (short, [float(v) for v in short])
