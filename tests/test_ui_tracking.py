"""What runs record, as the web UI shows it: the run page's metrics, parameters and charts, each
model version's metrics, and runs compared side by side.

The rows are made with the ORM, as the tracking endpoint stores them: a metric row with its
latest value and extremes, its points in chunks.
"""

from __future__ import annotations

import json
import random
import re
import secrets
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from bedrock.accounts.models import hash_token
from bedrock.pipelines.models import Role
from bedrock.runs.models import Run, RunStatus, RunStep
from bedrock.tracking.models import Param
from bedrock.tracking.series import Point, thinned, thinned_indices
from bedrock.ui import tracking
from bedrock.ui.tracking import CHART_POINTS, CHARTED_SERIES
from tests import factories

pytestmark = pytest.mark.django_db

THRESHOLDS = [round(0.05 * i, 2) for i in range(20)]


def classifier_data(**columns: list[int]) -> dict[str, list]:
    """A binary classifier's data as the tracking endpoint stores it, with ``columns`` replaced."""
    data: dict[str, list] = {
        "thresholds": THRESHOLDS,
        "tp": [40 - 2 * i for i in range(20)],
        "fp": [60 - 3 * i for i in range(20)],
        "tn": [3 * i for i in range(20)],
        "fn": [2 * i for i in range(20)],
    }
    return data | columns


class World:
    """A training pipeline with three finished runs, a viewer of its project and an outsider."""


@pytest.fixture
def world() -> World:
    w = World()
    w.project = factories.project("churn")
    w.model = factories.model(w.project, "churn-model")
    w.pipeline = factories.pipeline(w.project, name="churn-train", model=w.model)
    w.viewer = factories.user("vic")
    w.outsider = factories.user("oscar")
    factories.member(w.project, w.viewer, Role.VIEWER)
    w.runs = [
        Run.objects.create(
            pipeline=w.pipeline,
            number=number,
            ref="main",
            commit_sha=f"{number}" * 40,
            status=RunStatus.SUCCEEDED,
            parameters={"LEARNING_RATE": rate, "EPOCHS": "100"},
        )
        for number, rate in [(1, "0.1"), (2, "0.5"), (3, "0.5")]
    ]
    w.run = w.runs[0]
    return w


def text(response) -> str:
    return response.content.decode()


def chart_data(page: str) -> dict:
    """The chart data a page embeds for its charts (its json_script), empty when there is none."""
    found = re.search(r'<script id="chart-data" type="application/json">(.*?)</script>', page)
    return json.loads(found.group(1)) if found else {}


def row(page: str, marker: str) -> str:
    """The table row that carries ``marker`` (a data attribute), as HTML."""
    found = re.search(rf"<tr[^>]*{re.escape(marker)}[^>]*>.*?</tr>", page, re.S)
    assert found, f"no row {marker} on the page"
    return found.group(0)


def compare_url(w: World, *numbers: object) -> str:
    return f"/pipelines/{w.pipeline.pk}/compare?" + urlencode([("run", n) for n in numbers])


# --- the run page --------------------------------------------------------------------------------
def test_the_run_page_lists_each_metrics_latest_min_max_points_and_step(client, world):
    factories.metric(world.run, "loss", [0.9, 0.5, 0.25, 0.3125])
    factories.metric(world.run, "auc", [0.912345678], step_name="evaluate")
    client.force_login(world.viewer)

    page = text(client.get(f"/runs/{world.run.pk}/"))

    loss = row(page, 'data-metric="loss"')
    cells = re.findall(r'<td class="num"[^>]*>([^<]*)</td>', loss)
    assert cells == ["0.3125", "0.25", "0.9", "4"]
    assert '<span class="step-name">train</span>' in loss
    auc = row(page, 'data-metric="auc"')
    assert ">0.912346</td>" in auc and 'title="0.912345678 at x = 0' in auc
    assert "evaluate" in auc
    assert page.index('data-metric="auc"') < page.index('data-metric="loss"')


def test_the_run_page_embeds_each_series_for_its_chart_and_loads_the_vendored_library(
    client, world
):
    factories.metric(world.run, "loss", [0.9, 0.5, 0.25])
    client.force_login(world.viewer)

    page = text(client.get(f"/runs/{world.run.pk}/"))

    data = chart_data(page)
    assert data["metric-0"]["title"] == "loss"
    assert data["metric-0"]["lines"] == [
        {"label": "loss", "colour": 0, "x": [0, 1, 2], "y": [0.9, 0.5, 0.25]}
    ]
    assert '<figure class="figure" data-chart="metric-0" hidden>' in page
    assert '<script src="/static/ui/vendor/uplot/uPlot.iife.min.js" defer>' in page
    assert '<script src="/static/ui/charts.js" defer>' in page
    # Nothing comes from another origin.
    assert not re.search(r'(src|href)="(https?:)?//', page)


def test_a_metric_named_like_markup_is_shown_as_text_everywhere(client, world):
    name = "</script><script>alert(1)</script>"
    factories.metric(world.run, name, [1.0, 2.0])
    Param.objects.create(run=world.run, name="<b>p</b>", value="<i>v</i>")
    client.force_login(world.viewer)

    page = text(client.get(f"/runs/{world.run.pk}/"))

    assert "<script>alert(1)" not in page and "<b>p</b>" not in page and "<i>v</i>" not in page
    assert "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert chart_data(page)["metric-0"]["title"] == name


def test_a_series_logged_with_its_x_out_of_order_is_charted_in_order_of_x(client, world):
    metric = factories.metric(world.run, "loss", [0.3, 0.9, 0.5])
    metric.chunks.update(x=[2, 0, 1], preview_x=[2, 0, 1])
    client.force_login(world.viewer)

    line = chart_data(text(client.get(f"/runs/{world.run.pk}/")))["metric-0"]["lines"][0]

    assert line["x"] == [0, 1, 2] and line["y"] == [0.9, 0.5, 0.3]


def test_what_a_step_sends_to_the_tracking_endpoint_shows_on_the_run_page(client, world):
    token = "bdrkrun_" + secrets.token_urlsafe(32)
    run = world.runs[2]
    Run.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, token_hash=hash_token(token))
    RunStep.objects.create(run=run, name="train", position=0)
    chart = {"kind": "binary_classifier", "thresholds": [0.0, 0.5]}
    chart.update(tp=[10, 6], fp=[10, 2], tn=[0, 8], fn=[0, 4])
    for batch in (
        {"step": "train", "metrics": {"loss": {"value": [0.9, 0.6]}}, "params": {"depth": "6"}},
        {"step": "train", "metrics": {"loss": {"value": [0.3]}}, "charts": {"roc": chart}},
    ):
        response = client.post(
            "/api/tracking",
            json.dumps(batch),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {token}",
        )
        assert response.status_code == 200, response.content
    client.force_login(world.viewer)

    page = text(client.get(f"/runs/{run.pk}/"))

    cells = re.findall(r'<td class="num"[^>]*>([^<]*)</td>', row(page, 'data-metric="loss"'))
    assert cells == ["0.3", "0.3", "0.9", "3"]
    assert chart_data(page)["metric-0"]["lines"][0]["y"] == [0.9, 0.6, 0.3]
    assert "shown as the run logs them" in page
    assert "<code>depth</code>" in row(page, "data-logged")
    precision = chart_data(page)["classifier-0"]["lines"][0]
    assert precision["label"] == "precision" and precision["y"] == [0.5, 0.75]


def test_the_status_of_a_run_changes_whenever_its_steps_log_and_the_parts_follow(client, world):
    client.force_login(world.viewer)

    def state() -> str:
        return client.get(f"/runs/{world.run.pk}/status").json()["tracking"]

    seen = [state()]
    metric = factories.metric(world.run, "loss", [0.5])
    seen.append(state())
    metric.count = 2
    metric.save()
    seen.append(state())
    param = Param.objects.create(run=world.run, name="depth", value="6")
    seen.append(state())
    Param.objects.filter(pk=param.pk).update(logged_at=param.logged_at + timedelta(seconds=1))
    seen.append(state())
    factories.chart(world.run, **classifier_data())
    seen.append(state())

    assert len(set(seen)) == len(seen)
    page = text(client.get(f"/runs/{world.run.pk}/"))
    assert f'data-tracking-state="{seen[-1]}"' in page
    parts = text(client.get(f"/runs/{world.run.pk}/tracking"))
    assert '<section class="panel" id="parameters" data-tracking-part="params">' in parts
    assert '<tr data-metric="loss">' in parts and 'id="chart-data"' in parts
    assert "<html" not in parts


def test_an_outsider_gets_a_404_for_a_runs_tracking_parts(client, world):
    factories.metric(world.run, "loss", [0.5])
    client.force_login(world.outsider)

    assert client.get(f"/runs/{world.run.pk}/tracking").status_code == 404


def test_a_run_without_metrics_says_how_to_log_them_and_loads_no_chart_code(client, world):
    client.force_login(world.viewer)

    page = text(client.get(f"/runs/{world.run.pk}/"))

    assert "None logged." in page and "::metric auc=0.91" in page
    assert "uPlot" not in page and 'id="chart-data"' not in page


def test_the_run_page_lists_the_runs_parameters_and_those_its_steps_logged_marked_as_such(
    client, world
):
    Param.objects.create(run=world.run, name="n_estimators", value="200", step_name="train")
    client.force_login(world.viewer)

    page = text(client.get(f"/runs/{world.run.pk}/"))

    logged = row(page, "data-logged")
    assert "<code>n_estimators</code>" in logged and "<code>200</code>" in logged
    assert ">logged</span>" in logged and "by train" in logged
    assert "<code>EPOCHS</code></td><td><code>100</code>" in page
    assert page.count(">logged</span>") == 1


def test_the_run_page_shows_a_binary_classifiers_confusion_matrix_precision_and_recall(
    client, world
):
    factories.chart(world.run, **classifier_data())
    client.force_login(world.viewer)

    page = text(client.get(f"/runs/{world.run.pk}/"))

    section = page[page.index('data-classifier="binary_classifier"') :]
    # At the threshold 0.1: tp 36, fp 54, tn 6, fn 4; precision 36/90, recall 36/40.
    assert re.search(
        r"<td class=\"num\">0.1</td>\s*<td class=\"num\">36</td>\s*<td class=\"num\">54</td>"
        r"\s*<td class=\"num\">6</td>\s*<td class=\"num\">4</td>\s*"
        r"<td class=\"num\">0.400</td>\s*<td class=\"num\">0.900</td>",
        section,
    )
    assert "logged by train" in section
    lines = chart_data(page)["classifier-0"]["lines"]
    assert [line["label"] for line in lines] == ["precision", "recall"]
    assert lines[0]["x"] == THRESHOLDS
    assert lines[0]["y"][2] == pytest.approx(0.4) and lines[1]["y"][2] == pytest.approx(0.9)


def test_a_threshold_without_predicted_positives_shows_no_precision(client, world):
    factories.chart(world.run, **classifier_data(tp=[0] * 20, fp=[0] * 20))
    client.force_login(world.viewer)

    page = text(client.get(f"/runs/{world.run.pk}/"))

    assert page.count('title="no positive predictions">—</span>') == 20
    assert chart_data(page)["classifier-0"]["lines"][0]["y"] == [None] * 20


def test_a_classifier_chart_whose_lists_differ_in_length_is_reported_not_drawn(client, world):
    factories.chart(world.run, **classifier_data(tp=[1, 2, 3]))
    client.force_login(world.viewer)

    response = client.get(f"/runs/{world.run.pk}/")

    assert response.status_code == 200
    assert (
        "The chart binary_classifier cannot be shown: its lists thresholds, tp, fp, tn and fn"
        in (text(response))
    )
    assert "classifier-0" not in chart_data(text(response))


def test_the_run_page_charts_the_first_series_by_name_and_says_how_many_it_left_out(client, world):
    for index in range(CHARTED_SERIES + 5):
        factories.metric(world.run, f"m{index:02d}", [1.0, 2.0])
    client.force_login(world.viewer)

    page = text(client.get(f"/runs/{world.run.pk}/"))

    assert sorted(chart_data(page)) == sorted(f"metric-{i}" for i in range(CHARTED_SERIES))
    assert page.count("data-metric=") == CHARTED_SERIES + 5
    assert f"Charted: the first {CHARTED_SERIES} metrics by name" in page
    assert "single point" not in page


def test_a_metric_of_one_point_is_in_the_table_and_not_charted(client, world):
    factories.metric(world.run, "accuracy", [0.78])
    factories.metric(world.run, "loss", [0.5, 0.4])
    client.force_login(world.viewer)

    page = text(client.get(f"/runs/{world.run.pk}/"))

    assert [chart["title"] for chart in chart_data(page).values()] == ["loss"]
    assert ">0.78</td>" in row(page, 'data-metric="accuracy"')
    assert "A metric of a single point is in the table only." in page
    assert "Charted: the first" not in page


def test_compare_charts_no_more_points_than_a_page_may_read(client, world, monkeypatch):
    monkeypatch.setattr(tracking, "CHART_READ_POINTS", 100)
    for run in world.runs[:2]:
        factories.metric(run, "a_small", [1.0] * 10)
        factories.metric(run, "b_large", [1.0] * 60)  # 120 points over both runs: too many
        factories.metric(run, "c_small", [1.0] * 30)
    read: list[str] = []

    def series_of(metrics):
        metrics = list(metrics)
        read.extend(metric.name for metric in metrics)
        return real_series_of(metrics)

    real_series_of = tracking._series_of
    monkeypatch.setattr(tracking, "_series_of", series_of)
    client.force_login(world.viewer)

    page = text(client.get(compare_url(world, 1, 2)))

    assert [chart["title"] for chart in chart_data(page).values()] == ["a_small", "c_small"]
    assert "Charted: the first 2 metrics by name" in page and "from 100 points in all" in page
    assert 'data-row="b_large"' in page
    assert sorted(read) == ["a_small", "a_small", "c_small", "c_small"]


@pytest.mark.parametrize("length", [0, 3, 999, 1000, 1001, 1003, 2_500, 100_000])
@pytest.mark.parametrize("limit", [2, 4, 5, 1000])
def test_thinning_keeps_the_ends_a_spike_and_each_buckets_extremes_in_order(length, limit):
    shuffled = random.Random(length * limit)
    # Few distinct values, so that buckets have ties, and a spike or two.
    values = [float(shuffled.randrange(20)) for _ in range(length)]
    for _ in range(min(2, length)):
        values[shuffled.randrange(length)] = 1e6

    kept = thinned_indices(values, limit)

    if length <= limit or limit < 4:
        assert kept == list(range(length))
        return
    assert kept == sorted(set(kept)) and kept[0] == 0 and kept[-1] == length - 1
    assert len(kept) <= limit + 2
    assert max(values[at] for at in kept) == max(values)  # a spike survives
    buckets = limit // 2
    for index in range(buckets):
        start, end = int(index * length / buckets), int((index + 1) * length / buckets)
        inside = [values[at] for at in kept if start <= at < end]
        assert min(inside) == min(values[start:end]) and max(inside) == max(values[start:end])
    series = [Point(float(i), value, 0.0) for i, value in enumerate(values)]
    assert thinned(series, limit) == [series[at] for at in kept]


def run_page_queries(client, run: Run) -> tuple[int, str]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(f"/runs/{run.pk}/")
    assert response.status_code == 200
    return len(captured), text(response)


def test_a_run_with_100000_points_costs_the_page_no_more_queries_and_embeds_about_1000(
    client, world
):
    small = world.runs[1]
    factories.metric(small, "loss", [0.5, 0.4, 0.3])
    values = [1.0 / (1 + i) for i in range(100_000)]
    values[54_321] = 50.0  # a spike the thinned chart must keep
    factories.metric(world.run, "loss", values)
    for name in ("auc", "f1", "precision", "recall"):
        factories.metric(world.run, name, [0.8] * 100)
    client.force_login(world.viewer)
    run_page_queries(client, small)  # the session and the user, read once

    small_queries, _ = run_page_queries(client, small)
    big_queries, page = run_page_queries(client, world.run)

    assert big_queries == small_queries
    (line,) = [chart["lines"][0] for chart in chart_data(page).values() if chart["title"] == "loss"]
    assert len(line["x"]) <= CHART_POINTS + 2
    assert line["x"][0] == 0 and line["x"][-1] == 99_999
    assert max(line["y"]) == 50.0
    assert ">100000</td>" in row(page, 'data-metric="loss"')


# --- the model page ------------------------------------------------------------------------------
def test_the_model_page_shows_each_versions_metrics_beside_its_provenance(client, world):
    factories.metric(world.run, "auc", [0.7, 0.912345678])
    factories.metric(world.run, "loss", [0.25])
    factories.model_version(world.model, world.run, 1)
    factories.model_version(world.model, world.runs[1], 2)
    client.force_login(world.viewer)

    page = text(client.get(f"/models/{world.model.pk}/"))

    v1 = page[page.index('id="version-1"') :]
    v2 = page[page.index('id="version-2"') : page.index('id="version-1"')]
    assert ">auc 0.912346</code>" in v1 and ">loss 0.25</code>" in v1
    assert "none logged" in v2 and "auc" not in v2


# --- compare -------------------------------------------------------------------------------------
def test_the_pipeline_page_offers_a_checkbox_per_run_and_a_compare_button(client, world):
    client.force_login(world.viewer)

    page = text(client.get(f"/pipelines/{world.pipeline.pk}/"))

    assert f'<form method="get" action="/pipelines/{world.pipeline.pk}/compare"' in page
    for number in (1, 2, 3):
        assert f'<input type="checkbox" name="run" value="{number}"' in page
    assert '<button type="submit">Compare</button>' in page


def test_compare_shows_parameters_and_metrics_side_by_side_and_highlights_differences(
    client, world
):
    factories.metric(world.runs[0], "auc", [0.5, 0.8])
    factories.metric(world.runs[1], "auc", [0.6, 0.9])
    factories.metric(world.runs[0], "epochs_done", [10.0])
    factories.metric(world.runs[1], "epochs_done", [10.0])
    Param.objects.create(run=world.runs[0], name="max_depth", value="6", step_name="train")
    client.force_login(world.viewer)

    page = text(client.get(compare_url(world, 2, 1)))

    assert "Compare 2 runs of churn-train" in page
    assert page.index(f'href="/runs/{world.runs[0].pk}/">#1') < page.index(
        f'href="/runs/{world.runs[1].pk}/">#2'
    )
    rate = row(page, 'data-row="LEARNING_RATE"')
    assert 'class="differs"' in rate and ">0.1</code>" in rate and ">0.5</code>" in rate
    assert "differs" not in row(page, 'data-row="EPOCHS"')
    depth = row(page, 'data-row="max_depth"')
    assert (
        "differs" in depth and ">logged</span>" in depth and '<span class="muted">—</span>' in depth
    )
    auc = row(page, 'data-row="auc"')
    assert "differs" in auc and 'title="0.8">0.8</td>' in auc and 'title="0.9">0.9</td>' in auc
    assert "differs" not in row(page, 'data-row="epochs_done"')


def test_compare_overlays_each_metrics_series_one_line_per_run(client, world):
    factories.metric(world.runs[0], "loss", [0.9, 0.5])
    factories.metric(world.runs[2], "loss", [0.8, 0.4, 0.2])
    client.force_login(world.viewer)

    page = text(client.get(compare_url(world, 1, 2, 3)))

    lines = chart_data(page)["metric-0"]["lines"]
    assert [(line["label"], line["colour"], line["y"]) for line in lines] == [
        ("#1", 0, [0.9, 0.5]),
        ("#3", 2, [0.8, 0.4, 0.2]),
    ]
    assert '<span class="swatch swatch-2" aria-hidden="true"></span>' in page


def test_compare_thins_each_runs_series_so_an_overlay_stays_small(client, world):
    for run in world.runs:
        factories.metric(run, "loss", [float(i % 97) for i in range(20_000)], chunk=5000)
    client.force_login(world.viewer)

    lines = chart_data(text(client.get(compare_url(world, 1, 2, 3))))["metric-0"]["lines"]

    assert len(lines) == 3
    assert all(len(line["x"]) <= 2 * CHART_POINTS // 3 + 2 for line in lines)


@pytest.mark.parametrize(
    "numbers, message",
    [
        ((1,), "Tick between 2 and 10 runs of churn-train to compare them; 1 was ticked."),
        ((), "Tick between 2 and 10 runs of churn-train to compare them; 0 were ticked."),
        ((1, 1), "Tick between 2 and 10 runs of churn-train to compare them; 1 was ticked."),
        (tuple(range(1, 12)), "Tick between 2 and 10 runs of churn-train to compare them; 11 were"),
        ((1, 7, 9), "churn-train has no run #7, #9."),
        ((1, "two"), "&#x27;two&#x27; is not a run number."),
    ],
)
def test_compare_sends_a_request_it_cannot_answer_back_with_a_message(
    client, world, numbers, message
):
    client.force_login(world.viewer)

    response = client.get(compare_url(world, *numbers), follow=True)

    assert response.redirect_chain == [(f"/pipelines/{world.pipeline.pk}/", 302)]
    assert message in text(response)


def test_compare_takes_only_runs_of_its_own_pipeline(client, world):
    other = factories.pipeline(world.project, name="other")
    Run.objects.create(pipeline=other, number=4, ref="main", status=RunStatus.SUCCEEDED)
    client.force_login(world.viewer)

    response = client.get(compare_url(world, 1, 4), follow=True)

    assert "churn-train has no run #4." in text(response)


def test_an_outsider_gets_a_404_for_the_compare_page(client, world):
    client.force_login(world.outsider)

    assert client.get(compare_url(world, 1, 2)).status_code == 404
    assert client.get(f"/pipelines/{world.pipeline.pk}/compare").status_code == 404


def test_an_anonymous_visitor_of_the_compare_page_is_sent_to_log_in(client, world):
    response = client.get(compare_url(world, 1, 2))

    assert response.status_code == 302 and response["Location"].startswith("/login/?next=")
