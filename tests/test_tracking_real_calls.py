"""A pipeline whose steps make the calls real Bedrock repositories make, pinned as they pin the
client, runs on the local executor and its metrics reach the run page, the model page and
GraphQL. pip installs the client from the package index Bedrock serves (and PyPI beside it)."""

from __future__ import annotations

import json

import pytest

from bedrock.actors import SYSTEM
from bedrock.models.models import ModelVersion
from bedrock.pipelines.models import Role
from bedrock.runs.models import RunStatus
from bedrock.runs.services import run_create
from tests import factories
from tests.runflow import pipeline_for, repo_with, step_log, wait_until_done

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# The 2019-2021 generation, as basisai/churn_prediction and credit-scoring call it.
OLD = """
import logging
from bedrock_client.bedrock.analyzer import ModelTypes
from bedrock_client.bedrock.analyzer.model_analyzer import ModelAnalyzer
from bedrock_client.bedrock.api import BedrockApi

bedrock = BedrockApi(logging.getLogger(__name__))
bedrock.log_metric("Accuracy", 0.83)
bedrock.log_metric("ROC AUC", 0.91)
bedrock.log_chart_data([0, 1, 1, 0, 1, 0], [0.1, 0.8, 0.6, 0.3, 0.9, 0.55])
analyzer = (
    ModelAnalyzer(object(), model_name="churn", model_type=ModelTypes.TREE)
    .train_features([[1, 2]])
    .test_features([[1, 2]])
)
analyzer.test_labels([1]).test_inference([0.5])
analyzer.analyze()
open("/artefact/model.txt", "w").write("old")
"""
# The 0.7-0.9 generation.
NEW = """
import bdrk
from bdrk.model_analyzer import ModelAnalyzer, ModelTypes

bdrk.init()
with bdrk.start_run():
    bdrk.log_params({"max_depth": 4, "n_estimators": 100})
    for epoch in range(50):
        bdrk.log_metric("loss", 1 / (epoch + 1))
    bdrk.log_metrics({"Precision": 0.7, "Recall": 0.6})
    bdrk.log_binary_classifier_metrics([0, 1, 1, 0], [0.2, 0.7, 0.4, 0.1])
    ModelAnalyzer(object(), "churn", model_type=ModelTypes.LINEAR).test_features([[1]]).analyze()
    open("model.bin", "w").write("new")
    bdrk.log_model("model.bin")
"""
HCL = """
version = "1.0"
train {
  step "old" {
    image   = "python:3.7"
    install = ["pip install bdrk==0.3.2"]
    script  = [{ sh = ["python3 old.py"] }]
  }
  step "new" {
    image      = "python:3.9"
    install    = ["pip install -r requirements.txt"]
    script     = [{ sh = ["python3 new.py"] }]
    depends_on = ["old"]
  }
}
"""


def test_both_client_generations_log_to_the_run_page_the_model_page_and_graphql(
    tmp_path, live_server, settings, client
):
    settings.BEDROCK_API_DOMAIN = live_server.url
    repo = repo_with(
        tmp_path,
        HCL,
        **{"old.py": OLD, "new.py": NEW, "requirements.txt": "bdrk[analyzer]>=0.9.1,<0.10\n"},
    )
    pipeline = pipeline_for(repo)

    run = wait_until_done(run_create(actor=SYSTEM, pipeline=pipeline), timeout=600)

    assert run.status == RunStatus.SUCCEEDED, (
        run.failure_reason,
        step_log(run, "old")[-3000:],
        step_log(run, "new")[-3000:],
    )
    assert "Successfully installed bdrk-0.3.2" in step_log(run, "old")
    assert "bdrk-0.9.5" in step_log(run, "new")
    latest = dict(run.metrics.values_list("name", "latest_value"))
    assert latest == {
        "Accuracy": 0.83,
        "ROC AUC": 0.91,
        "loss": 1 / 50,
        "Precision": 0.7,
        "Recall": 0.6,
    }
    assert run.metrics.get(name="loss").count == 50
    assert run.metrics.get(name="Accuracy").step_name == "old"
    assert dict(run.logged_params.values_list("name", "value")) == {
        "max_depth": "4",
        "n_estimators": "100",
    }
    chart = run.charts.get()
    assert chart.step_name == "new" and len(chart.data["thresholds"]) == 20
    # At threshold 0.5 the new step's labels [0, 1, 1, 0] scored [0.2, 0.7, 0.4, 0.1]: one hit.
    at_half = chart.data["thresholds"].index(0.5)
    assert [chart.data[key][at_half] for key in ("tp", "fp", "tn", "fn")] == [1, 0, 2, 1]
    assert "skipped the explanation" in step_log(run, "old")
    version = ModelVersion.objects.get(run=run)

    viewer = factories.user()
    factories.member(pipeline.project, viewer, Role.VIEWER)
    client.force_login(viewer)
    run_page = client.get(f"/runs/{run.pk}/").content.decode()
    assert "ROC AUC" in run_page and "max_depth" in run_page and "Precision" in run_page
    model_page = client.get(f"/models/{pipeline.model_id}/").content.decode()
    assert "ROC AUC" in model_page

    query = """query ($run: ID!, $version: ID!) {
      run(id: $run) { metrics { name latestValue count } params { name value source }
                      charts { name kind thresholds tp } }
      modelVersion(id: $version) { metrics { name latestValue } } }"""
    answer = client.post(
        "/graphql",
        json.dumps({"query": query, "variables": {"run": run.pk, "version": version.pk}}),
        content_type="application/json",
    ).json()
    assert "errors" not in answer, answer
    metrics = {m["name"]: m for m in answer["data"]["run"]["metrics"]}
    assert metrics["loss"]["count"] == 50 and metrics["ROC AUC"]["latestValue"] == 0.91
    params = {(p["name"], p["source"]) for p in answer["data"]["run"]["params"]}
    assert ("max_depth", "STEP") in params
    assert answer["data"]["run"]["charts"][0]["kind"] == "BINARY_CLASSIFIER"
    version_metrics = {m["name"] for m in answer["data"]["modelVersion"]["metrics"]}
    assert version_metrics == set(latest)
