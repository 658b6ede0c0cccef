"""Helpers for tests that run pipelines for real and wait for the outcome."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

from bedrock.models.models import Model
from bedrock.pipelines.models import Pipeline, PipelineKind, Project
from bedrock.runs.models import TERMINAL_STATUSES, Run
from bedrock.runs.workspace import read_log
from tests.repos import make_repo


def wait_for(predicate, *, timeout: float = 120, interval: float = 0.2, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def wait_until_done(run: Run, timeout: float = 180) -> Run:
    def done():
        run.refresh_from_db()
        return run.status in TERMINAL_STATUSES

    wait_for(done, timeout=timeout, what=f"run {run.pk} to end (last status {run.status})")
    return run


def step_log(run: Run, step: str) -> str:
    return read_log(run.steps.get(name=step).log_key)[0]


def pipeline_for(
    repo: Path,
    *,
    kind: str = PipelineKind.TRAINING,
    project: Project | None = None,
    name: str = "pipe",
    max_run_time: timedelta | None = None,
) -> Pipeline:
    project = project or Project.objects.create(name=f"p-{Project.objects.count() + 1}")
    fields = {"max_run_time": max_run_time} if max_run_time else {}
    model = None
    if kind == PipelineKind.TRAINING:
        model = Model.objects.create(project=project, name=f"{name}-model")
    return Pipeline.objects.create(
        project=project, name=name, git_url=str(repo), kind=kind, model=model, **fields
    )


def repo_with(tmp_path: Path, bedrock_hcl: str, **files: str) -> Path:
    return make_repo(tmp_path / "repo", {"bedrock.hcl": bedrock_hcl, **files})
