"""Crashes with real processes: the worker and the supervisor killed in the middle of a run.

These tests run Bedrock as a user would, with the `bedrock` command and its own SQLite database
in a scratch BEDROCK_HOME, so no test database is involved.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.repos import hcl, make_repo, step
from tests.runflow import wait_for

# Each one kills and starts processes and waits for the reconciler: the slow suite's.
pytestmark = pytest.mark.slow

BEDROCK = [sys.executable, "-m", "bedrock.cli"]
ROOT = Path(__file__).resolve().parents[1]

SETUP = """
from bedrock.models.models import Model
from bedrock.pipelines.models import Pipeline, Project
project = Project.objects.create(name="crash")
model = Model.objects.create(project=project, name="m")
Pipeline.objects.create(project=project, name="p", git_url={repo!r}, kind="training", model=model)
"""
CREATE_RUN = """
from bedrock.actors import SYSTEM
from bedrock.pipelines.models import Pipeline
from bedrock.runs.services import run_create
run = run_create(actor=SYSTEM, pipeline=Pipeline.objects.get(name="p"))
print(run.pk, run.status)
"""


@pytest.fixture
def home(tmp_path):
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("BEDROCK_", "DATABASE_", "DJANGO_"))
    }
    env.update(BEDROCK_HOME=str(tmp_path / "home"), BEDROCK_ALLOW_LOCAL_REPOS="1")
    marker = f"sleep 8.{os.getpid() % 1000}"
    steps = step("slow", f"{marker}; echo trained > $BEDROCK_ARTEFACT_DIR/model")
    repo = make_repo(tmp_path / "repo", {"bedrock.hcl": hcl("train", steps)})
    bedrock(env, "migrate", "--noinput", "-v", "0")
    bedrock(env, "shell", "-c", SETUP.format(repo=str(repo)))
    processes: list[subprocess.Popen] = []
    yield env, marker, processes
    for process in processes:
        _kill_group(process)
    subprocess.run(["pkill", "-f", marker], check=False)


def bedrock(env, *args: str) -> str:
    result = subprocess.run(
        [*BEDROCK, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def run_row(env, run_id: int) -> dict:
    with sqlite3.connect(Path(env["BEDROCK_HOME"]) / "bedrock.sqlite3", timeout=20) as db:
        db.row_factory = sqlite3.Row
        row = db.execute("SELECT * FROM runs_run WHERE id = ?", [run_id]).fetchone()
    return dict(row)


def start_worker(env, processes) -> subprocess.Popen:
    worker = subprocess.Popen(
        [*BEDROCK, "qcluster"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    processes.append(worker)
    return worker


def _kill_group(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _running(marker: str) -> bool:
    return subprocess.run(["pgrep", "-f", marker], capture_output=True).returncode == 0


def test_a_run_survives_its_worker_being_killed_and_started_again(home):
    env, marker, processes = home
    # `shell` prints its own banner first; the run is on the last line.
    run_id = int(bedrock(env, "shell", "-c", CREATE_RUN).splitlines()[-1].split()[0])
    worker = start_worker(env, processes)
    wait_for(lambda: run_row(env, run_id)["status"] == "Running", what="the run to start")
    wait_for(lambda: _running(marker), what="the step's process")

    _kill_group(worker)  # SIGKILL to the worker and every process of its group
    start_worker(env, processes)

    row = wait_for(
        lambda: (r := run_row(env, run_id))["status"] in ("Succeeded", "Failed") and r,
        timeout=90,
        what="the run to end",
    )
    assert row["status"] == "Succeeded", row["failure_reason"]
    with sqlite3.connect(Path(env["BEDROCK_HOME"]) / "bedrock.sqlite3") as db:
        assert db.execute(
            "SELECT count(*) FROM models_modelversion WHERE run_id = ?", [run_id]
        ).fetchone() == (1,)


def test_a_run_whose_supervisor_dies_is_failed_by_the_reconciler_leaving_no_process(home):
    env, marker, _ = home
    output = bedrock(env, "run", "crash/p")
    run_id = int(output.split("(id ")[1].split(")")[0])
    wait_for(lambda: _running(marker), what="the step's process")
    pid = int(run_row(env, run_id)["runner"].rpartition(":")[2])

    os.kill(pid, signal.SIGKILL)
    time.sleep(0.5)
    bedrock(env, "shell", "-c", "from bedrock.runs.tasks import reconcile; print(reconcile())")

    row = run_row(env, run_id)
    assert row["status"] == "Failed"
    assert "supervisor stopped unexpectedly" in row["failure_reason"]
    wait_for(lambda: not _running(marker), timeout=10, what="the orphaned step to be killed")
