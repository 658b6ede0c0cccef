"""Helpers for the cases where runs end: every way of ending leaves no step of the run active."""

from __future__ import annotations

import subprocess
from datetime import datetime

from bedrock.actors import SYSTEM
from bedrock.runs.models import ACTIVE_STATUSES, TERMINAL_STATUSES, Run, RunStatus
from bedrock.runs.services import run_create
from bedrock.runs.workspace import read_log


def start(pipeline, **kwargs) -> Run:
    return run_create(actor=SYSTEM, pipeline=pipeline, **kwargs)


def steps_of(run: Run) -> dict[str, tuple[str, str]]:
    """Each step's (status, failure reason), by name."""
    return {step.name: (step.status, step.failure_reason) for step in run.steps.all()}


def assert_ended_true(run: Run) -> None:
    """The run has ended, with a reason unless it succeeded, and none of its steps is active."""
    run.refresh_from_db()
    assert run.status in TERMINAL_STATUSES, run.status
    assert run.finished_at is not None and run.token_hash == ""
    if run.status != RunStatus.SUCCEEDED:
        assert run.failure_reason
    active = {
        name: status for name, (status, _) in steps_of(run).items() if status in ACTIVE_STATUSES
    }
    assert active == {}, f"steps of the {run.status} run {run.pk} still active: {active}"
    for step in run.steps.filter(attempts__gt=0):
        assert step.finished_at is not None, step.name


def log_of(run: Run, step: str) -> str:
    return read_log(run.steps.get(name=step).log_key)[0]


def processes(fragment: str) -> bool:
    return subprocess.run(["pgrep", "-f", fragment], capture_output=True).returncode == 0


def most_at_once(intervals: list[tuple[datetime, datetime]]) -> int:
    """The largest number of the intervals that overlap at any instant."""
    events = sorted(
        [(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals],
        key=lambda event: (event[0], event[1]),  # an end before a start at the same instant
    )
    now = most = 0
    for _, change in events:
        now += change
        most = max(most, now)
    return most
