"""The reconciler repairs what crashes leave, including a deadline nobody was awake for."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from bedrock.runs.models import Run, RunStatus, RunStep
from bedrock.runs.services import runs_reconcile
from tests import factories

pytestmark = pytest.mark.django_db


def running(pipeline, *, started_ago: timedelta, heartbeat_ago: timedelta, **fields) -> Run:
    now = timezone.now()
    run = Run.objects.create(
        pipeline=pipeline,
        number=Run.objects.filter(pipeline=pipeline).count() + 1,
        ref="main",
        status=fields.pop("status", RunStatus.RUNNING),
        started_at=now - started_ago,
        heartbeat_at=now - heartbeat_ago,
        runner=fields.pop("runner", "another-host:4242"),
        **fields,
    )
    RunStep.objects.create(run=run, name="train", position=0, status=RunStatus.RUNNING)
    return run


def test_a_run_past_its_deadline_is_failed_even_when_its_supervisor_still_beats():
    pipeline = factories.pipeline(factories.project())
    run = running(pipeline, started_ago=timedelta(hours=73), heartbeat_ago=timedelta(seconds=1))

    assert runs_reconcile()["ended"] == 1

    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert run.failure_reason == "exceeded the maximum run time of 3d"
    assert run.steps.get().status == RunStatus.FAILED


def test_a_run_whose_supervisor_went_silent_after_the_deadline_gives_the_time_limit_as_reason():
    pipeline = factories.pipeline(factories.project())
    run = running(
        pipeline,
        started_ago=timedelta(minutes=61),
        heartbeat_ago=timedelta(minutes=5),
        max_run_time=timedelta(hours=1),
    )

    runs_reconcile()

    run.refresh_from_db()
    assert (run.status, run.failure_reason) == (
        RunStatus.FAILED,
        "exceeded the maximum run time of 1h",
    )


def test_a_silent_supervisor_before_the_deadline_fails_the_run_as_crashed():
    pipeline = factories.pipeline(factories.project())
    run = running(pipeline, started_ago=timedelta(minutes=5), heartbeat_ago=timedelta(minutes=2))

    runs_reconcile()

    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert "supervisor stopped unexpectedly" in run.failure_reason


def test_a_stopping_run_whose_supervisor_is_gone_ends_stopped():
    pipeline = factories.pipeline(factories.project())
    run = running(
        pipeline,
        started_ago=timedelta(minutes=5),
        heartbeat_ago=timedelta(minutes=2),
        status=RunStatus.STOPPING,
    )

    runs_reconcile()

    run.refresh_from_db()
    assert run.status == RunStatus.STOPPED


def test_a_run_with_a_live_supervisor_inside_its_deadline_is_left_alone():
    pipeline = factories.pipeline(factories.project())
    run = running(pipeline, started_ago=timedelta(minutes=5), heartbeat_ago=timedelta(seconds=2))

    assert runs_reconcile() == {
        "resubmitted": 0,
        "restarted": 0,
        "ended": 0,
        "cleaned": 0,
        "archives": 0,
        "retained": 0,
    }

    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING


def test_an_overdue_run_with_a_live_local_supervisor_has_it_killed():
    import socket
    import subprocess

    stuck = subprocess.Popen(["sleep", "300"])
    try:
        pipeline = factories.pipeline(factories.project())
        run = running(
            pipeline,
            started_ago=timedelta(hours=80),
            heartbeat_ago=timedelta(seconds=1),
            runner=f"{socket.gethostname()}:{stuck.pid}",
        )

        runs_reconcile()

        assert stuck.wait(timeout=10) == -9
        run.refresh_from_db()
        assert run.failure_reason == "exceeded the maximum run time of 3d"
    finally:
        stuck.kill()
        stuck.wait()
