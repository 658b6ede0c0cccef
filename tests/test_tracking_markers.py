from __future__ import annotations

import pytest

from bedrock.actors import SYSTEM
from bedrock.runs.models import Run, RunStatus, RunStep
from bedrock.runs.services import run_create
from bedrock.tracking.markers import MarkerReader
from bedrock.tracking.models import Metric, Param
from bedrock.tracking.series import metric_points
from tests import factories
from tests.repos import hcl, step
from tests.runflow import pipeline_for, repo_with, step_log, wait_until_done


def _run() -> Run:
    pipeline = factories.pipeline(factories.project())
    run = Run.objects.create(pipeline=pipeline, number=1, ref="main", status=RunStatus.RUNNING)
    RunStep.objects.create(run=run, name="train", position=0)
    return run


@pytest.mark.django_db
def test_marker_lines_become_metrics_and_parameters_even_split_across_writes():
    run = _run()
    reader = MarkerReader(run.pk, "train")
    for chunk in [
        "epoch 1\n::metric lo",
        "ss=0.5 x=1\n::metric loss=0.25 x=2\n",
        "::param lr=0.01\n",
    ]:
        reader.feed(chunk)
    reader.feed("::metric ROC AUC=0.91\nnot a ::metric line=3\n")
    reader.flush()

    loss = Metric.objects.get(run=run, name="loss")
    assert [(point.x, point.value) for point in metric_points(loss)] == [(1, 0.5), (2, 0.25)]
    assert Metric.objects.get(run=run, name="ROC AUC").latest_value == 0.91
    assert Param.objects.get(run=run).value == "0.01"
    assert Metric.objects.count() == 2
    assert reader.report() == ""


@pytest.mark.django_db
def test_a_marker_that_cannot_be_read_is_reported_and_the_rest_is_kept():
    run = _run()
    reader = MarkerReader(run.pk, "train")
    reader.feed("::metric loss=nan\n::metric loss=abc\n::metric =1\n::metric acc=0.8\n")
    reader.flush()

    assert list(Metric.objects.values_list("name", flat=True)) == ["acc"]
    report = reader.report()
    assert "3 marker line(s) not recorded" in report
    assert "'nan' is not a finite number" in report and "'abc' is not a number" in report


@pytest.mark.django_db
def test_markers_past_the_runs_limit_are_reported_not_raised(settings):
    settings.BEDROCK_TRACKING_MAX_POINTS_PER_RUN = 2
    run = _run()
    reader = MarkerReader(run.pk, "train")
    reader.feed("::metric a=1\n::metric a=2\n::metric a=3\n")
    reader.flush()
    assert not Metric.objects.exists()
    assert "the limit is 2" in reader.report()


@pytest.mark.django_db(transaction=True)
def test_a_step_that_prints_markers_has_its_metrics_on_its_run(tmp_path):
    printing = step(
        "train",
        "echo ::metric accuracy=0.75",
        "echo ::param depth=4",
        "echo ::metric loss=0.5 x=1; echo ::metric loss=0.25 x=2",
        "echo done > $BEDROCK_ARTEFACT_DIR/model",
    )
    pipeline = pipeline_for(repo_with(tmp_path, hcl("train", printing)))

    run = wait_until_done(run_create(actor=SYSTEM, pipeline=pipeline))

    assert run.status == RunStatus.SUCCEEDED, run.failure_reason
    assert dict(run.metrics.values_list("name", "latest_value")) == {"accuracy": 0.75, "loss": 0.25}
    assert run.metrics.get(name="loss").step_name == "train"
    assert dict(run.logged_params.values_list("name", "value")) == {"depth": "4"}
    assert "::metric accuracy=0.75" in step_log(run, "train")
