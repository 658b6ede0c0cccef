"""Conda steps on the local executor: refused when the run is created, pointing to Docker."""

from __future__ import annotations

import pytest

from bedrock.actors import SYSTEM
from bedrock.pipelines.spec import Resources, Step
from bedrock.runs.installs.conda import conda_line
from bedrock.runs.models import RunStatus
from bedrock.runs.services import run_create
from tests.repos import hcl, step
from tests.runflow import pipeline_for, repo_with


def _step(*install: str) -> Step:
    return Step("train", "continuumio/miniconda3", install, ("python train.py",), Resources(), ())


@pytest.mark.parametrize(
    "line",
    [
        "conda env update -f environment.yml",
        "/opt/conda/bin/conda install -y numpy",
        "pip install -U pip && conda install scikit-learn",
        "source activate veritas",
        "CONDA_ALWAYS_YES=true mamba install lightgbm",
        "if true; then micromamba create -f env.yml; fi",
    ],
)
def test_a_line_that_runs_conda_is_found(line):
    assert conda_line(_step("echo hello", line)) == line


@pytest.mark.parametrize(
    "line",
    [
        "pip install conda-merge",
        "echo /opt/conda/bin/python",
        "python -m condaenv",
        "cat environment.yml",
    ],
)
def test_a_line_that_only_mentions_conda_is_not(line):
    assert conda_line(_step(line)) == ""


def _conda_pipeline(tmp_path):
    steps = step("build", "conda env update -f environment.yml", "python train.py")
    return pipeline_for(repo_with(tmp_path, hcl("train", steps)))


@pytest.mark.django_db
def test_a_conda_step_is_refused_on_the_local_executor_naming_the_step_and_docker(tmp_path):
    run = run_create(actor=SYSTEM, pipeline=_conda_pipeline(tmp_path))

    assert run.status == RunStatus.REJECTED
    assert run.failure_reason.startswith("step build of bedrock.hcl runs conda (")
    assert "'conda env update -f environment.yml'" in run.failure_reason
    assert "run this pipeline on the Docker executor (BEDROCK_EXECUTOR=docker)" in (
        run.failure_reason
    )


@pytest.mark.django_db
def test_a_conda_step_is_accepted_where_the_image_brings_conda(tmp_path, settings):
    settings.BEDROCK_EXECUTOR = "docker"

    run = run_create(actor=SYSTEM, pipeline=_conda_pipeline(tmp_path))

    assert run.status == RunStatus.ACCEPTED, run.failure_reason
