"""The ``bdrk`` client distribution, run as a step runs it: in a subprocess, against an HTTP server.

Each scenario runs under the host's Python and under Python 3.6, the oldest the client supports.
The server records every request and answers in the tracking endpoint's format.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import subprocess
import sys
import textwrap
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

CLIENT = Path(__file__).resolve().parents[1] / "bedrock" / "client"
PYTHON36 = Path.home() / ".pyenv" / "versions" / "3.6.15" / "bin" / "python"
TOKEN = "run-token-1"


@dataclass
class Recorder:
    """What the test server received, and how it answers."""

    posts: list[dict[str, Any]] = field(default_factory=list)
    gets: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    error: str = ""
    failures_before_success: int = 0
    archives: dict[str, bytes] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def bodies(self) -> list[dict[str, Any]]:
        return [post["body"] for post in self.posts]

    def series(self, name: str) -> dict[str, list[Any]]:
        """One metric's columns, joined over every request in the order they arrived."""
        joined: dict[str, list[Any]] = {"value": [], "x": [], "timestamp": []}
        for body in self.bodies():
            for column, values in body.get("metrics", {}).get(name, {}).items():
                joined[column].extend(values)
        return joined


def _handler(recorder: Recorder) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            body = json.loads(self.rfile.read(length))
            with recorder.lock:
                if recorder.failures_before_success > 0:
                    recorder.failures_before_success -= 1
                    self._answer(503, {"error": "the database is restarting"})
                    return
                recorder.posts.append(
                    {"path": self.path, "headers": dict(self.headers), "body": body}
                )
            if recorder.status != 200:
                self._answer(recorder.status, {"error": recorder.error})
                return
            points = sum(len(s["value"]) for s in body.get("metrics", {}).values())
            answer = {"points": points, "params": len(body.get("params", {}))}
            self._answer(200, {**answer, "charts": len(body.get("charts", {}))})

        def do_GET(self) -> None:
            with recorder.lock:
                recorder.gets.append({"path": self.path, "headers": dict(self.headers)})
            archive = recorder.archives.get(self.path)
            if archive is None:
                self._answer(404, {"error": f"no model version at {self.path}"})
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/zip")
            self.send_header("Content-Length", str(len(archive)))
            self.end_headers()
            self.wfile.write(archive)

        def _answer(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def server() -> Iterator[tuple[str, Recorder]]:
    recorder = Recorder()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(recorder))
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", recorder
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(params=["host", "3.6"])
def python(request: pytest.FixtureRequest) -> str:
    if request.param == "host":
        return sys.executable
    if not PYTHON36.exists():
        pytest.skip(f"Python 3.6 is not installed at {PYTHON36}")
    return str(PYTHON36)


@pytest.fixture
def no_shap(tmp_path: Path) -> Path:
    """A directory whose ``shap`` fails to import, so the run is the same wherever shap is."""
    shadow = tmp_path / "no-shap"
    shadow.mkdir()
    (shadow / "shap.py").write_text("raise ImportError('shap is shadowed in this test')\n")
    return shadow


def run(
    python: str,
    script: str,
    *,
    api: str = "",
    extra_path: Path | None = None,
    cwd: Path | None = None,
    **env: str,
) -> subprocess.CompletedProcess:
    """Run a script with the client importable, in an environment with nothing of the host's."""
    path = str(CLIENT) if extra_path is None else os.pathsep.join([str(extra_path), str(CLIENT)])
    environment = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": path, "LANG": "C.UTF-8"}
    if api:
        environment |= {"BEDROCK_API_DOMAIN": api, "BEDROCK_API_TOKEN": TOKEN}
    environment |= env
    return subprocess.run(
        [python, "-c", textwrap.dedent(script)],
        env=environment,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, result.stderr
    return result


@dataclass
class Step:
    """A script run as a step on Bedrock: the API is the test server, the token a run's."""

    python: str
    api: str
    recorder: Recorder

    def __call__(self, script: str, **options: Any) -> subprocess.CompletedProcess:
        return ok(run(self.python, script, api=self.api, **options))


@pytest.fixture
def step(python: str, server: tuple[str, Recorder]) -> Step:
    return Step(python, *server)


def test_a_loop_of_100k_metric_calls_arrives_complete_and_in_order_in_few_requests(
    step: Step,
) -> None:
    recorder = step.recorder
    step(
        """
        import bdrk
        bdrk.init()
        with bdrk.start_run():
            for i in range(100000):
                bdrk.log_metric("loss", i * 0.5)
        """,
        BEDROCK_RUN_STEP_NAME="train",
    )
    loss = recorder.series("loss")
    assert loss["value"] == [i * 0.5 for i in range(100000)]
    assert loss["x"] == []  # the server numbers the points
    assert loss["timestamp"] == sorted(loss["timestamp"])
    assert 10 <= len(recorder.posts) <= 30
    for post in recorder.posts:
        assert post["path"] == "/api/tracking"
        assert post["headers"]["Authorization"] == f"Bearer {TOKEN}"
        assert post["body"]["step"] == "train"
        assert len(post["body"]["metrics"]["loss"]["value"]) <= 10000


# Labels and probabilities checked by hand: predicted positive when probability >= threshold.
ACTUAL = [0, 1, 1, 0]
PROBABILITY = [0.1, 0.9, 0.4, 0.6]
THRESHOLDS = [round(step * 0.05, 2) for step in range(20)]


def expected_chart() -> dict[str, Any]:
    # 0.1 (negative) is predicted positive up to 0.1, 0.4 (positive) up to 0.4, 0.6 (negative)
    # up to 0.6, and 0.9 (positive) up to 0.9.
    tp = [2 if t <= 0.4 else 1 if t <= 0.9 else 0 for t in THRESHOLDS]
    fp = [2 if t <= 0.1 else 1 if t <= 0.6 else 0 for t in THRESHOLDS]
    return {
        "kind": "binary_classifier",
        "thresholds": THRESHOLDS,
        "tp": tp,
        "fp": fp,
        "tn": [2 - count for count in fp],
        "fn": [2 - count for count in tp],
    }


def test_metrics_params_and_the_classifier_chart_of_both_generations_reach_the_run(
    step: Step,
) -> None:
    recorder = step.recorder
    step(
        f"""
        import logging
        import bdrk
        import bedrock_client.bdrk as first
        from bedrock_client.bedrock.api import BedrockApi

        bdrk.init(project_id="churn")
        with bdrk.start_run(pipeline_id="p", environment_id="e"):
            bdrk.log_metrics({{"Accuracy": 0.75, "AUC": 0.5}})
            bdrk.log_metric(key="epoch_loss", value=0.3, x=1)
            bdrk.log_metric("mixed", 1.0)
            bdrk.log_metric("mixed", 2.0, x=5)
            bdrk.log_metric("mixed", 3.0)
            bdrk.log_batch({{"batch": [1, 2, 3], "other": [4, 5, 6]}}, x=[10, 20, 30])
            bdrk.log_batch({{"batch": [7]}})
            bdrk.log_params({{"LR": 0.01, "NUM_LEAVES": 31}})
            bdrk.log_param("N_ESTIMATORS", 100)
            bdrk.log_binary_classifier_metrics(actual={ACTUAL}, probability={PROBABILITY})
        bdrk.flush()
        api = BedrockApi(logging.getLogger(__name__))
        api.log_metric("Precision", 0.25)
        api.log_chart_data({ACTUAL}, {PROBABILITY})
        first.start_run(pipeline="p", run="1", step="train")
        first.log_metric("Recall", 1)
        first.log_param("seed", "42")
        """,
    )
    assert recorder.series("Accuracy")["value"] == [0.75]
    assert recorder.series("AUC")["value"] == [0.5]
    assert recorder.series("epoch_loss") | {"timestamp": []} == {
        "value": [0.3],
        "x": [1.0],
        "timestamp": [],
    }
    # A request carries x for all of a series' points or for none: the server numbers the rest.
    assert recorder.series("mixed")["value"] == [1.0, 2.0, 3.0]
    assert recorder.series("mixed")["x"] == [5.0]
    for body in recorder.bodies():
        mixed = body.get("metrics", {}).get("mixed", {"value": []})
        assert len(mixed.get("x", mixed["value"])) == len(mixed["value"])
    assert recorder.series("batch")["value"] == [1.0, 2.0, 3.0, 7.0]
    assert recorder.series("batch")["x"] == [10.0, 20.0, 30.0]
    assert recorder.series("other")["value"] == [4.0, 5.0, 6.0]
    assert recorder.series("Precision")["value"] == [0.25]
    assert recorder.series("Recall")["value"] == [1.0]
    params: dict[str, str] = {}
    charts = []
    for body in recorder.bodies():
        params |= body.get("params", {})
        charts += body.get("charts", {}).items()
    assert params == {"LR": "0.01", "NUM_LEAVES": "31", "N_ESTIMATORS": "100", "seed": "42"}
    assert charts == [("binary_classifier", expected_chart())] * 2


def test_a_value_that_is_not_a_finite_number_or_a_bad_name_raises_at_the_call(
    python: str,
) -> None:
    result = ok(
        run(
            python,
            """
            import bdrk
            from bedrock_client.bedrock.api import BedrockApi
            calls = [
                lambda: bdrk.log_metric("loss", float("nan")),
                lambda: bdrk.log_metric("loss", float("inf")),
                lambda: bdrk.log_metric("loss", "0.5"),
                lambda: bdrk.log_metrics({"acc": 1.0, "auc": float("-inf")}),
                lambda: bdrk.log_metric("", 1.0),
                lambda: bdrk.log_metric("n" * 251, 1.0),
                lambda: BedrockApi(None).log_metric("loss", float("nan")),
                lambda: bdrk.log_param("notes", "n" * 6001),
            ]
            for call in calls:
                try:
                    call()
                    print("accepted")
                except ValueError as error:
                    print("ValueError:", error)
            bdrk.log_metric("n" * 250, 1.0)
            print("250 accepted")
            """,
        )
    )
    lines = result.stdout.splitlines()
    assert len(lines) == 9 and lines[-1] == "250 accepted"
    assert all(line.startswith("ValueError: log_metric") for line in lines[:3] + lines[4:7])
    assert "'loss'" in lines[0] and "nan" in lines[0]
    assert "'loss'" in lines[1] and "inf" in lines[1]
    assert lines[3].startswith("ValueError: log_metrics") and "'auc'" in lines[3]
    assert "non-empty" in lines[4]
    assert "251 characters" in lines[5]
    assert lines[7].startswith("ValueError: log_param: the value of 'notes' is 6001 characters")
    assert "metric auc" not in result.stderr and "metric acc" not in result.stderr


def test_outside_bedrock_every_call_prints_what_it_logged_and_the_script_succeeds(
    python: str, tmp_path: Path, no_shap: Path
) -> None:
    model = tmp_path / "model.pkl"
    model.write_bytes(b"weights")
    (tmp_path / "tokenizer").mkdir()
    (tmp_path / "tokenizer" / "vocab.txt").write_text("a b c")
    artefacts = tmp_path / "artefact"
    result = ok(
        run(
            python,
            f"""
            import logging
            import bdrk
            import bedrock_client.bdrk as first
            from bdrk.model_analyzer import ModelAnalyzer, ModelTask, ModelTypes
            from bedrock_client.bedrock.api import BedrockApi
            from bedrock_client.bedrock.analyzer.model_analyzer import ModelAnalyzer as Old

            bdrk.init()
            with bdrk.start_run():
                bdrk.log_metric("loss", 0.5)
                bdrk.log_metric("loss", 0.25, x=2)
                bdrk.log_metrics({{"Accuracy": 0.75}})
                bdrk.log_params({{"LR": 0.01}})
                bdrk.log_param("seed", 42)
                bdrk.log_binary_classifier_metrics({ACTUAL}, {PROBABILITY})
                bdrk.log_model({str(model)!r})
                bdrk.log_model({str(tmp_path / "tokenizer")!r})
                bdrk.download_model("churn", 3, "models")
                analysis = (
                    ModelAnalyzer(object(), "tree_model", model_type=ModelTypes.TREE,
                                  model_task=ModelTask.BINARY_CLASSIFICATION)
                    .train_features([[1.0, 2.0]])
                    .test_features([[1.0, 2.0]])
                    .fairness_config({{"sex": {{"privileged_attribute_values": [1],
                                               "unprivileged_attribute_values": [0]}}}})
                    .test_labels([1])
                    .test_inference([1])
                    .analyze()
                )
                shap_values, base_values, global_xai, fairness = analysis
                print("analysis", analysis)
                print("old", Old(object(), model_type=ModelTypes.LINEAR).analyze())
            BedrockApi(logging.getLogger()).log_metric("Precision", 0.5)
            BedrockApi(logging.getLogger()).log_chart_data([0, 1], [0.2, 0.8])
            first.init(server_uri="http://x", api_token="t", environment="e", project="p",
                       logger=logging.getLogger())
            first.log_metric("Recall", 1.0)
            first.log_model(path={str(model)!r})
            first.download_model(model="churn", version=1, path="models")
            first.log_model_dependency(model="churn", version=1)
            """,
            extra_path=no_shap,
            BEDROCK_ARTEFACT_DIR=str(artefacts),
        )
    )
    printed = result.stderr
    for line in [
        "not on Bedrock",
        "metric loss = 0.5",
        "metric loss = 0.25 at x=2.0",
        "metric Accuracy = 0.75",
        "param LR = 0.01",
        "param seed = 42",
        "chart binary_classifier: thresholds 0.0..0.95, tp " + str(expected_chart()["tp"]),
        "would unpack churn version 3",
        "skipped the explanation of tree_model: shap is not installed",
        "metric Precision = 0.5",
        "metric Recall = 1.0",
    ]:
        assert line in printed
    assert "analysis (None, None, None, None)" in result.stdout
    assert "old (None, None, None, None)" in result.stdout
    assert (artefacts / "model.pkl").read_bytes() == b"weights"
    assert (artefacts / "tokenizer" / "vocab.txt").read_text() == "a b c"


def test_a_refused_request_is_reported_once_on_stderr_and_the_script_still_succeeds(
    step: Step,
) -> None:
    recorder = step.recorder
    recorder.status, recorder.error = 400, "metrics.loss: the run already has 1000 metrics."
    result = step(
        """
        import bdrk
        with bdrk.start_run():
            bdrk.log_metric("loss", 0.5)
        bdrk.log_metric("loss", 0.25)
        bdrk.flush()
        bdrk.log_metric("loss", 0.125)
        print("still running")
        """,
    )
    assert result.stdout == "still running\n"
    assert len(recorder.posts) == 3  # a 4xx is not retried
    assert result.stderr.count("the run already has 1000 metrics.") == 1
    assert "HTTP 400" in result.stderr


def test_a_5xx_is_retried_until_the_points_are_stored(
    step: Step,
) -> None:
    recorder = step.recorder
    recorder.failures_before_success = 2
    step('import bdrk\nbdrk.log_metric("loss", 0.5)\n')
    assert recorder.series("loss")["value"] == [0.5]


@pytest.mark.slow
def test_an_unreachable_server_is_reported_once_and_the_script_still_succeeds(
    python: str,
) -> None:
    # Port 9 (discard) is closed here: every attempt is refused at once, then backed off.
    result = ok(
        run(
            python,
            """
            import bdrk
            with bdrk.start_run():
                for i in range(25000):
                    bdrk.log_metric("loss", i)
            print("done")
            """,
            api="http://127.0.0.1:9",
        )
    )
    assert result.stdout == "done\n"
    assert result.stderr.count("failed 4 times") == 1
    assert "the points logged so far were not recorded" in result.stderr


def test_every_module_real_repositories_import_imports(python: str) -> None:
    result = ok(
        run(
            python,
            """
            import bdrk
            import bdrk.model_analyzer
            from bdrk.model_analyzer import ModelAnalyzer, ModelTask, ModelTypes
            from bdrk.model import BaseModel
            from bedrock_client.bedrock.api import BedrockApi
            from bedrock_client.bedrock.analyzer import ModelTask as Task, ModelTypes as Types
            from bedrock_client.bedrock.analyzer.model_analyzer import ModelAnalyzer as Analyzer
            from bedrock_client.bedrock.model import BaseModel as Base
            import bedrock_client.bdrk

            assert Analyzer is ModelAnalyzer and Types is ModelTypes and Task is ModelTask
            assert Base is BaseModel
            print(bdrk.__version__, ModelTypes.TREE.name, ModelTypes.LINEAR.name,
                  ModelTask.REGRESSION.name, bdrk.utils.vars.Constants.MAIN_LOG)

            class Model(BaseModel):
                def predict(self, features):
                    return [sum(row) for row in features]

            served = Model()
            score = served.predict(served.pre_process('[[1, 2], [3, 4]]'))
            print(served.post_process(score, "id-1"))

            for module in ["service", "collector", "encoder"]:
                try:
                    __import__("bedrock_client.bedrock.metrics." + module)
                    print(module, "imported")
                except ImportError as error:
                    print(module, "ImportError:", error)
            """,
        )
    )
    lines = result.stdout.splitlines()
    assert lines[0] == "0.10.0 TREE LINEAR REGRESSION bdrk"
    assert lines[1] == "{'result': [3, 7], 'prediction_id': 'id-1'}"
    for line in lines[2:]:
        assert "ImportError" in line and 'pip install "bdrk[model-monitoring]"' in line
    assert len(lines) == 5


def _zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_download_model_unpacks_a_version_and_refuses_an_entry_leaving_the_path(
    step: Step, tmp_path: Path
) -> None:
    recorder = step.recorder
    recorder.archives["/api/models/churn/versions/3/archive"] = _zip(
        {"model.pkl": b"weights", "features/columns.json": b"[]"}
    )
    recorder.archives["/api/models/evil/versions/1/archive"] = _zip(
        {"fine.txt": b"ok", "../escaped.txt": b"gotcha"}
    )
    result = step(
        """
        import bdrk
        import bedrock_client.bdrk as first
        bdrk.download_model("churn", 3, "models")
        first.download_model(model="churn", version=3, path="again")
        try:
            bdrk.download_model("evil", 1, "evil")
        except ValueError as error:
            print("ValueError:", error)
        try:
            bdrk.download_model("missing", 1, "missing")
        except RuntimeError as error:
            print("RuntimeError:", error)
        """,
        cwd=tmp_path,
    )
    for folder in ["models", "again"]:
        assert (tmp_path / folder / "model.pkl").read_bytes() == b"weights"
        assert (tmp_path / folder / "features" / "columns.json").read_bytes() == b"[]"
    assert "ValueError: download_model" in result.stdout and "'../escaped.txt'" in result.stdout
    assert not (tmp_path / "escaped.txt").exists()
    assert not (tmp_path / "evil" / "fine.txt").exists()
    assert "RuntimeError: download_model" in result.stdout and "HTTP 404" in result.stdout
    assert {get["headers"]["Authorization"] for get in recorder.gets} == {f"Bearer {TOKEN}"}


@pytest.mark.slow
def test_the_distribution_installs_as_bdrk_with_the_pip_python_36_ships(tmp_path: Path) -> None:
    # Python 3.6 has pip 18 and setuptools 40: no [project] table, no wheel package, no network.
    if not PYTHON36.exists():
        pytest.skip(f"Python 3.6 is not installed at {PYTHON36}")
    venv = tmp_path / "venv"
    subprocess.run([str(PYTHON36), "-m", "venv", str(venv)], check=True, timeout=120)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-index"]
    install = [*pip, "--no-build-isolation", "--no-deps", str(CLIENT)]
    subprocess.run(install, check=True, capture_output=True, timeout=300, cwd=tmp_path)
    shown = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import bdrk; print(bdrk.__version__)"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    assert shown.stdout == "0.10.0\n"
    listed = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "show", "bdrk"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert "Version: 0.10.0" in listed.stdout


FAKE_SHAP = """
class TreeExplainer:
    def __init__(self, model):
        self.model = model
        self.expected_value = 0.5

    def shap_values(self, features):
        return [[1.0, -2.0], [3.0, 0.0]]
"""


def test_with_shap_the_analysis_logs_each_features_mean_absolute_shap_value(
    step: Step, tmp_path: Path
) -> None:
    # A stand-in with shap's interface: the real one needs a compiled model stack to install.
    (tmp_path / "shap.py").write_text(FAKE_SHAP)
    result = step(
        """
        from bedrock_client.bedrock.analyzer import ModelTypes
        from bedrock_client.bedrock.analyzer.model_analyzer import ModelAnalyzer

        class Frame:
            columns = ["age", "income"]

        shap_values, base_values, global_xai, fairness = (
            ModelAnalyzer(object(), model_name="tree", model_type=ModelTypes.TREE)
            .test_features(Frame())
            .analyze()
        )
        print(shap_values, base_values, global_xai, fairness)
        """,
        extra_path=tmp_path,
    )
    importance = {"age": 2.0, "income": 1.0}
    assert result.stdout == f"[[1.0, -2.0], [3.0, 0.0]] 0.5 { ({'importance': importance}) } None\n"
    for feature, value in importance.items():
        assert step.recorder.series(f"feature_importance/{feature}")["value"] == [value]


@pytest.mark.django_db(transaction=True)
def test_what_a_step_logs_is_stored_by_bedrocks_own_endpoint(python: str, live_server) -> None:
    from bedrock.accounts.models import hash_token
    from bedrock.runs.models import Run, RunStatus, RunStep
    from bedrock.tracking.models import Chart, Metric
    from bedrock.tracking.series import metric_points
    from tests import factories

    pipeline = factories.pipeline(factories.project())
    token = "bdrkrun_" + secrets.token_urlsafe(32)
    logged = Run.objects.create(
        pipeline=pipeline,
        number=1,
        ref="main",
        status=RunStatus.RUNNING,
        token_hash=hash_token(token),
    )
    RunStep.objects.create(run=logged, name="train", position=0)
    ok(
        run(
            python,
            f"""
            import bdrk
            from bedrock_client.bedrock.api import BedrockApi
            with bdrk.start_run():
                for i in range(25000):
                    bdrk.log_metric("loss", i / 25000)
                bdrk.log_metric("epoch", 1, x=7)
                bdrk.log_batch({{"lr": [0.1, 0.01]}})
                bdrk.log_params({{"LR": 0.01}})
                BedrockApi(None).log_chart_data({ACTUAL}, {PROBABILITY})
            """,
            BEDROCK_API_DOMAIN=live_server.url,
            BEDROCK_API_TOKEN=token,
            BEDROCK_RUN_STEP_NAME="train",
        )
    )
    loss = Metric.objects.get(run=logged, name="loss")
    assert [point.value for point in metric_points(loss)] == [i / 25000 for i in range(25000)]
    assert loss.step_name == "train"
    epoch = Metric.objects.get(run=logged, name="epoch")
    assert (epoch.count, epoch.latest_x, epoch.latest_value) == (1, 7, 1.0)
    assert Metric.objects.get(run=logged, name="lr").count == 2
    assert dict(logged.logged_params.values_list("name", "value")) == {"LR": "0.01"}
    chart = Chart.objects.get(run=logged, name="binary_classifier")
    assert {key: chart.data[key] for key in ("tp", "fp", "tn", "fn")} == {
        key: expected_chart()[key] for key in ("tp", "fp", "tn", "fn")
    }
