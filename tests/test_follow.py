"""`bedrock run --wait` follows a run by its wake file and logs, not by polling the database."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from django.db import connection

from bedrock.actors import SYSTEM
from bedrock.runs import transitions
from bedrock.runs.management.commands.run import follow
from bedrock.runs.models import Run, RunStatus, RunStep
from bedrock.runs.services import run_create
from bedrock.runs.workspace import wake_path
from tests import factories
from tests.repos import hcl, step
from tests.runflow import pipeline_for, repo_with

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_follower_that_would_poll_once_an_hour_sees_the_run_end(tmp_path):
    steps = step("s", "echo one", "echo done > $BEDROCK_ARTEFACT_DIR/model")
    run = run_create(actor=SYSTEM, pipeline=pipeline_for(repo_with(tmp_path, hcl("train", steps))))
    lines: list[str] = []

    def follower() -> None:
        try:
            follow(run, lines.append, poll=3600)
        finally:
            connection.close()

    thread = threading.Thread(target=follower, daemon=True)
    thread.start()
    thread.join(timeout=300)  # only a follower deaf to the changes waits the hour

    assert not thread.is_alive(), lines
    assert "[s] one" in lines
    assert lines[-1] == f"run {run.number}: {RunStatus.SUCCEEDED}"


def test_every_status_change_of_a_run_or_its_steps_wakes_its_followers():
    run = Run.objects.create(pipeline=factories.pipeline(factories.project()), number=1, ref="main")
    step_id = RunStep.objects.create(run=run, name="s", position=0).pk
    changes = [
        lambda: transitions.run_queue(run.pk),
        lambda: transitions.run_claim(run.pk, runner="here:1"),
        lambda: transitions.step_begin(step_id),
        lambda: transitions.step_begin(step_id),  # begun already: nothing changes
        lambda: transitions.step_finish(step_id, to=RunStatus.SUCCEEDED),
        lambda: transitions.run_finish(run.pk, to=RunStatus.SUCCEEDED),
    ]
    woken = []
    for change in changes:
        before = _size(wake_path(run.pk))
        moved = change()
        woken.append((moved, _size(wake_path(run.pk)) > before))

    assert woken == [(True, True)] * 3 + [(False, False)] + [(True, True)] * 2


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0
