"""What runs record, drawn in real Chromium: the run page's charts and runs compared, with and
without JavaScript. The rows are made with the ORM, as the tracking endpoint stores them."""

from __future__ import annotations

import math
import re

import pytest

from bedrock.pipelines.models import Pipeline, PipelineKind, Project
from bedrock.runs.models import Run, RunStatus
from bedrock.tracking.models import Param
from tests import factories
from tests.browser.conftest import SCREENSHOTS

pytestmark = pytest.mark.django_db(transaction=True)

THRESHOLDS = [round(0.05 * i, 2) for i in range(20)]

# How many of a canvas's pixels are painted: a chart that drew its lines paints some.
PAINTED = """(canvas) => {
  const { data } = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height);
  let painted = 0;
  for (let i = 3; i < data.length; i += 4) if (data[i] > 0) painted++;
  return painted;
}"""


@pytest.fixture
def expect():
    from playwright.sync_api import expect

    return expect


@pytest.fixture
def tracked(scientist) -> Pipeline:
    """A training pipeline with three runs that logged metrics, parameters and a chart; the
    first logged 100,000 points of its loss."""
    project = Project.objects.get(name="example")
    pipeline = Pipeline.objects.create(
        project=project,
        name="churn-train",
        git_url="https://git.example.com/team/churn.git",
        kind=PipelineKind.TRAINING,
        model=project.models.get(),
    )
    for number, rate in [(1, "0.1"), (2, "0.05"), (3, "0.05")]:
        run = Run.objects.create(
            pipeline=pipeline,
            number=number,
            ref="main",
            commit_sha=f"{number}" * 40,
            status=RunStatus.SUCCEEDED,
            parameters={"LEARNING_RATE": rate, "EPOCHS": "100"},
        )
        points = 100_000 if number == 1 else 2_000
        decay = 1 / (points / 5)
        loss = [0.7 * math.exp(-decay * i) + 0.05 * math.sin(i / 50) ** 2 for i in range(points)]
        factories.metric(run, "loss", loss, chunk=5_000)
        factories.metric(
            run, "auc", [0.6 + 0.3 * (1 - math.exp(-e / (3 + number))) for e in range(30)]
        )
        Param.objects.create(run=run, name="max_depth", value=str(4 + number), step_name="train")
        factories.chart(run, thresholds=THRESHOLDS, **confusion(THRESHOLDS))
    return pipeline


def confusion(thresholds: list[float]) -> dict[str, list[int]]:
    """A classifier's confusion matrices: 100 positives scored 0.3 to 1, 100 negatives 0 to 0.7."""
    positives = [0.3 + 0.007 * i for i in range(100)]
    negatives = [0.007 * i for i in range(100)]
    tp = [sum(p >= t for p in positives) for t in thresholds]
    fp = [sum(n >= t for n in negatives) for t in thresholds]
    return {
        "tp": tp,
        "fp": fp,
        "tn": [100 - count for count in fp],
        "fn": [100 - count for count in tp],
    }


def figure_of(page, metric: str):
    return page.locator("figure[data-chart]").filter(
        has=page.locator("figcaption").get_by_text(metric, exact=True)
    )


def charts_drew(page, expect, count: int) -> None:
    """Every chart of the page is shown, has a canvas of non-zero size with lines painted on it,
    and uPlot's legend."""
    figures = page.locator("figure[data-chart]")
    expect(figures).to_have_count(count)
    for index in range(count):
        figure = figures.nth(index)
        expect(figure).to_be_visible()
        canvas = figure.locator("canvas")
        box = canvas.bounding_box()
        assert box and box["width"] > 100 and box["height"] > 100
        assert canvas.evaluate(PAINTED) > 500
        expect(figure.locator(".u-legend")).to_be_visible()


def test_the_run_page_charts_each_series_and_the_classifier(
    page, login, screenshot, scientist, tracked, expect
):
    run = tracked.runs.get(number=1)
    login(scientist)

    page.goto(f"/runs/{run.pk}/")

    charts_drew(page, expect, 3)
    loss = figure_of(page, "loss")
    expect(loss.locator(".u-legend")).to_contain_text("loss")
    classifier = page.locator("[data-classifier] figure")
    expect(classifier.locator(".u-legend")).to_contain_text("precision")
    expect(classifier.locator(".u-legend")).to_contain_text("recall")
    expect(page.locator('tr[data-metric="loss"]')).to_contain_text("100000")
    expect(page.locator("tr[data-logged]")).to_contain_text("max_depth")
    screenshot("tracking-01-run")

    # Hovering a chart shows the values under the cursor in its legend.
    box = loss.locator(".u-over").bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] / 3, box["y"] + box["height"] / 2)
    expect(loss.locator(".u-legend .u-series").nth(1).locator(".u-value")).not_to_have_text("—")
    screenshot("tracking-02-run-hover")


def test_the_page_of_a_running_run_shows_what_its_steps_log_without_reloading(
    page, login, screenshot, scientist, tracked, expect
):
    run = Run.objects.create(
        pipeline=tracked, number=4, ref="main", status=RunStatus.RUNNING, parameters={"EPOCHS": "9"}
    )
    login(scientist)
    page.goto(f"/runs/{run.pk}/")
    expect(page.locator("#metrics")).to_contain_text("None logged.")
    page.evaluate("window.notReloaded = true")

    factories.metric(run, "loss", [0.9, 0.7, 0.6])
    Param.objects.create(run=run, name="max_depth", value="8", step_name="train")
    expect(page.locator('tr[data-metric="loss"]')).to_contain_text("0.6")
    expect(page.locator("tr[data-logged]")).to_contain_text("max_depth")
    charts_drew(page, expect, 1)
    factories.chart(run, thresholds=THRESHOLDS, **confusion(THRESHOLDS))
    factories.metric(run, "auc", [0.7, 0.81])
    Run.objects.filter(pk=run.pk).update(status=RunStatus.SUCCEEDED)

    expect(page.locator("[data-run-status]")).to_have_text("Succeeded")
    expect(page.locator('tr[data-metric="auc"]')).to_contain_text("0.81")
    expect(page.locator("#metrics")).not_to_contain_text("as the run logs them")
    charts_drew(page, expect, 3)
    assert page.evaluate("window.notReloaded") is True
    screenshot("tracking-07-run-followed")


def test_the_model_page_shows_each_versions_metrics(
    page, login, screenshot, scientist, tracked, expect
):
    run = tracked.runs.get(number=1)
    factories.model_version(tracked.model, run)
    login(scientist)

    page.goto(f"/models/{tracked.model_id}/")

    metrics = page.locator("#version-1 [data-version-metrics]")
    expect(metrics).to_contain_text("auc 0.899787")
    expect(metrics).to_contain_text("loss 0.0486342")
    screenshot("tracking-06-model")


def test_runs_ticked_on_the_pipeline_page_are_compared_with_their_series_overlaid(
    page, login, screenshot, scientist, tracked, expect
):
    login(scientist)
    page.goto(f"/pipelines/{tracked.pk}/")

    page.get_by_label("Compare run #1").check()
    page.get_by_role("button", name="Compare").click()
    expect(page.locator(".message.error")).to_contain_text("1 was ticked")
    page.get_by_label("Compare run #1").check()
    page.get_by_label("Compare run #3").check()
    screenshot("tracking-03-pipeline-ticked")
    page.get_by_role("button", name="Compare").click()

    expect(page).to_have_url(re.compile(r"/compare\?run=3&run=1$"))
    expect(page.get_by_role("heading", name="Compare 2 runs of churn-train")).to_be_visible()
    charts_drew(page, expect, 2)
    legend = figure_of(page, "loss").locator(".u-legend")
    expect(legend).to_contain_text("#1")
    expect(legend).to_contain_text("#3")
    expect(page.locator('tr[data-row="LEARNING_RATE"]')).to_have_class("differs")
    expect(page.locator('tr[data-row="EPOCHS"]')).not_to_have_class("differs")
    screenshot("tracking-04-compare")


def test_without_javascript_the_tables_are_the_page(
    browser, live_server, scientist, tracked, expect
):
    context = browser.new_context(base_url=live_server.url, java_script_enabled=False)
    page = context.new_page()
    page.goto("/login/")
    page.get_by_label("Username").fill(scientist.username)
    page.get_by_label("Password").fill("pw-" + scientist.username)
    page.get_by_role("button", name="Log in").click()

    page.goto(f"/runs/{tracked.runs.get(number=1).pk}/")
    expect(page.locator('tr[data-metric="auc"]')).to_be_visible()
    expect(page.locator("[data-classifier] table tbody tr")).to_have_count(20)
    expect(page.locator("figure[data-chart]").first).to_be_hidden()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "tracking-05-run-without-javascript.png", full_page=True)
    page.goto(f"/pipelines/{tracked.pk}/compare?run=1&run=2&run=3")
    expect(page.locator('tr[data-row="max_depth"]')).to_have_class("differs")
    expect(page.locator("canvas")).to_have_count(0)
    context.close()
