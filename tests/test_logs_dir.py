"""BEDROCK_LOGS_DIR: where supervisors write the steps' logs and every web process reads them, so
that web processes and workers on several machines can share one directory."""

from __future__ import annotations

import pytest

from bedrock.actors import SYSTEM
from bedrock.runs.models import RunStatus
from bedrock.runs.services import run_create, supervisor_log
from tests.repos import hcl, step
from tests.runflow import pipeline_for, repo_with, step_log, wait_until_done

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_runs_logs_are_written_to_and_read_from_bedrock_logs_dir(tmp_path, settings, client):
    shared = tmp_path / "shared-logs"
    settings.BEDROCK_LOGS_DIR = str(shared)
    command = "echo logged-into-the-shared-dir && echo 1 > $BEDROCK_ARTEFACT_DIR/model.txt"
    pipeline = pipeline_for(repo_with(tmp_path, hcl("train", step("train", command))))

    run = wait_until_done(run_create(actor=SYSTEM, pipeline=pipeline))

    assert run.status == RunStatus.SUCCEEDED, run.failure_reason
    written = list(shared.glob(f"run-{run.pk}/*.log"))
    assert [path.name for path in written] == ["train.log"]
    assert "logged-into-the-shared-dir" in written[0].read_text()
    assert "logged-into-the-shared-dir" in step_log(run, "train")  # read back from there
    assert not (settings.BEDROCK_HOME / "logs" / f"run-{run.pk}").exists()
    assert supervisor_log(run.pk).is_relative_to(shared)
