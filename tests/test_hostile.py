"""Steps and users acting as attackers would: every case must end in a clear error, with nothing
half-written and no run left in a state that is not true.

The sections follow the threat they answer; each case names the behaviour it holds.
"""

from __future__ import annotations

import pytest

# --- 1. A step sees its own run only -----------------------------------------------------------


# --- 2. What a run may set in a step's environment --------------------------------------------


# --- 3. Bounded work ---------------------------------------------------------------------------


# --- 4. Every run ends in a true state ---------------------------------------------------------


# --- 4b. Followers, the worker, archives, idempotency, addresses, repositories ------------------


# Case: a follower meets a database locked for a moment.
class _LockedFor:
    """Run.refresh_from_db, failing as a locked SQLite database does for its first ``n`` calls
    from the follower's thread (the supervisor's thread reads as usual)."""

    def __init__(self, n: int) -> None:
        import threading

        from bedrock.runs.models import Run

        self.left, self.failed = n, 0
        self.original = Run.refresh_from_db
        self.follower = threading.current_thread()

    def __call__(self, instance, *args, **kwargs):
        import threading

        from django.db import OperationalError

        if threading.current_thread() is self.follower and self.left:
            self.left -= 1
            self.failed += 1
            raise OperationalError("database is locked")
        return self.original(instance, *args, **kwargs)


@pytest.mark.django_db(transaction=True)
def test_run_wait_reports_the_real_outcome_when_the_database_is_locked_for_a_moment(
    tmp_path, monkeypatch
):
    from io import StringIO

    from django.core.management import call_command

    from bedrock.runs.models import ACTIVE_STATUSES, Run, RunStatus, RunStep
    from tests.repos import hcl, step
    from tests.runflow import pipeline_for, repo_with

    talk = step("talk", "echo hello from the step", "echo m > $BEDROCK_ARTEFACT_DIR/m")
    pipeline = pipeline_for(repo_with(tmp_path, hcl("train", talk)))
    locked = _LockedFor(3)
    monkeypatch.setattr(Run, "refresh_from_db", lambda run, *a, **kw: locked(run, *a, **kw))
    out, err = StringIO(), StringIO()

    with pytest.raises(SystemExit) as exited:
        call_command("run", str(pipeline.pk), "--wait", stdout=out, stderr=err)

    assert locked.failed == 3, "the follower's reads did fail"
    assert exited.value.code == 0, out.getvalue() + err.getvalue()
    assert "run 1: Succeeded" in out.getvalue()
    assert "[talk] hello from the step" in out.getvalue()
    assert out.getvalue().count("[talk] hello from the step") == 1, "a retry prints nothing twice"
    assert "Traceback" not in err.getvalue()
    run = Run.objects.get(pipeline=pipeline)
    assert run.status == RunStatus.SUCCEEDED
    assert not RunStep.objects.filter(run=run, status__in=list(ACTIVE_STATUSES)).exists()


def test_a_lock_that_outlasts_the_retries_is_raised_and_other_errors_at_once():
    from django.db import OperationalError

    from bedrock.transient import retry_transient

    calls, slept = [], []

    def locked():
        calls.append(1)
        raise OperationalError("database is locked")

    with pytest.raises(OperationalError, match="locked"):
        retry_transient(locked, sleep=slept.append)
    assert len(calls) == 8 and sum(slept) < 25, "bounded: eight tries, under 25 s of waiting"

    calls.clear()

    def broken():
        calls.append(1)
        raise OperationalError("no such table: runs_run")

    with pytest.raises(OperationalError, match="no such table"):
        retry_transient(broken, sleep=slept.append)
    assert len(calls) == 1


@pytest.mark.django_db(transaction=True)
def test_demo_follows_through_a_dropped_connection(tmp_path, monkeypatch):
    from django.db import InterfaceError

    from bedrock.runs.management.commands.run import follow
    from bedrock.runs.models import Run, RunStatus
    from bedrock.runs.services import run_create
    from tests.repos import hcl, step
    from tests.runflow import pipeline_for, repo_with

    pipeline = pipeline_for(
        repo_with(tmp_path, hcl("train", step("s", "echo m > $BEDROCK_ARTEFACT_DIR/m")))
    )
    run = run_create(actor=None, pipeline=pipeline)
    dropped = _LockedFor(2)

    def drop(instance, *args, **kwargs):
        try:
            return dropped(instance, *args, **kwargs)
        except Exception as exc:
            raise InterfaceError("connection already closed") from exc

    monkeypatch.setattr(Run, "refresh_from_db", drop)
    lines: list[str] = []

    followed = follow(run, lines.append, poll=0.2)

    assert dropped.failed == 2
    assert followed.status == RunStatus.SUCCEEDED, followed.failure_reason
    assert lines[-1] == "run 1: Succeeded" or "run 1: Succeeded" in lines


# --- 5. Masking --------------------------------------------------------------------------------


# --- 6. Deployment -----------------------------------------------------------------------------


# --- 7. The Docker executor --------------------------------------------------------------------
