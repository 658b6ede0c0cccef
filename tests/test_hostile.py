"""Steps and users acting as attackers would: every case must end in a clear error, with nothing
half-written and no run left in a state that is not true.

The sections follow the threat they answer; each case names the behaviour it holds.
"""

from __future__ import annotations

import pytest

from tests import lifecycle

# --- 1. A step sees its own run only -----------------------------------------------------------


# --- 2. What a run may set in a step's environment --------------------------------------------


# --- 3. Bounded work ---------------------------------------------------------------------------


# --- 4. Every run ends in a true state ---------------------------------------------------------
def _pipeline(tmp_path, *steps: str, **fields):
    from tests.repos import hcl
    from tests.runflow import pipeline_for, repo_with

    return pipeline_for(repo_with(tmp_path, hcl("train", "\n".join(steps))), **fields)


def _write(name: str) -> str:
    return f"echo {name} > $BEDROCK_ARTEFACT_DIR/{name}"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("extra", "said"),
    [
        ({"BAD": "a\0b"}, "embedded null byte"),
        ({"HUGE": "x" * 300_000}, "Argument list too long"),
    ],
    ids=["nul-byte", "argument-list-too-long"],
)
def test_a_step_that_cannot_be_spawned_fails_with_the_reason_and_so_does_its_run(
    tmp_path, monkeypatch, extra, said
):
    """Whatever slipped past the checks at creation, the OS refusing the process ends the step."""
    import dataclasses

    from bedrock.runs.executors.local import LocalExecutor
    from bedrock.runs.models import RunStatus
    from tests.repos import step
    from tests.runflow import wait_until_done

    real_start = LocalExecutor.start

    def start(self, plan, context):
        environment = {**context.environment, **extra}
        return real_start(self, plan, dataclasses.replace(context, environment=environment))

    monkeypatch.setattr(LocalExecutor, "start", start)
    pipeline = _pipeline(tmp_path, step("a", _write("a")), step("b", "true", depends_on='"a"'))

    run = wait_until_done(lifecycle.start(pipeline), timeout=120)

    assert run.status == RunStatus.FAILED
    assert run.failure_reason.startswith("step 'a' could not start: ")
    assert said in run.failure_reason
    steps = lifecycle.steps_of(run)
    assert steps["a"][0] == RunStatus.FAILED and said in steps["a"][1]
    assert steps["b"] == (RunStatus.STOPPED, f"not run: {run.failure_reason}")
    lifecycle.assert_ended_true(run)


@pytest.mark.django_db
def test_a_run_whose_supervisor_died_ends_with_every_step_it_had(tmp_path):
    import socket
    import subprocess
    from datetime import timedelta

    from django.utils import timezone

    from bedrock.runs.models import Run, RunStatus, RunStep
    from bedrock.runs.services import runs_reconcile
    from tests import factories

    gone = subprocess.Popen(["true"])
    gone.wait()  # a pid of this host that is no longer alive
    now = timezone.now()
    run = Run.objects.create(
        pipeline=factories.pipeline(factories.project()),
        number=1,
        ref="main",
        status=RunStatus.RUNNING,
        started_at=now - timedelta(minutes=5),
        heartbeat_at=now - timedelta(seconds=5),
        runner=f"{socket.gethostname()}:{gone.pid}",
        token_hash="f" * 64,
    )
    RunStep.objects.create(run=run, name="a", position=0, status=RunStatus.RUNNING, attempts=1)
    RunStep.objects.create(run=run, name="b", position=1, status=RunStatus.ACCEPTED)

    assert runs_reconcile()["ended"] == 1

    run.refresh_from_db()
    reason = "the run's supervisor stopped unexpectedly (the machine or process died)"
    assert (run.status, run.failure_reason) == (RunStatus.FAILED, reason)
    assert lifecycle.steps_of(run) == {
        "a": (RunStatus.FAILED, reason),
        "b": (RunStatus.STOPPED, f"not run: {reason}"),
    }
    lifecycle.assert_ended_true(run)
    assert runs_reconcile()["ended"] == 0  # the second pass finds nothing to do


@pytest.mark.django_db(transaction=True)
def test_once_a_run_is_stopping_no_new_step_starts_and_every_step_ends_stopped(tmp_path, settings):
    from bedrock.runs.models import RunStatus
    from bedrock.runs.services import run_stop
    from tests.repos import step
    from tests.runflow import wait_for, wait_until_done

    settings.BEDROCK_MAX_PARALLEL_STEPS = 2
    marker = "sleep 81.25"
    pipeline = _pipeline(tmp_path, *(step(f"s{i}", marker) for i in range(12)))
    run = lifecycle.start(pipeline)
    wait_for(
        lambda: (
            run.steps.filter(status=RunStatus.RUNNING).count() == 2 and lifecycle.processes(marker)
        ),
        what="two steps running",
    )

    run_stop(actor=None, run=run)

    run = wait_until_done(run, timeout=60)
    assert (run.status, run.failure_reason) == (RunStatus.STOPPED, "stopped on request")
    begun = run.steps.filter(attempts__gt=0)
    assert begun.count() == 2, "no step started after the stop"
    for name, (status, reason) in lifecycle.steps_of(run).items():
        if begun.filter(name=name).exists():
            assert (status, reason) == (RunStatus.STOPPED, "stopped on request")
            assert "--- stopped on request: ended on SIGTERM ---" in lifecycle.log_of(run, name)
        else:
            assert (status, reason) == (RunStatus.STOPPED, "not run: stopped on request")
    lifecycle.assert_ended_true(run)
    wait_for(lambda: not lifecycle.processes(marker), timeout=10, what="no step process left")


@pytest.mark.django_db(transaction=True)
def test_a_step_that_traps_sigterm_cleans_up_on_stop_and_its_log_says_it_ended_on_sigterm(
    tmp_path,
):
    from bedrock.runs.models import RunStatus
    from bedrock.runs.services import run_stop
    from tests.repos import step
    from tests.runflow import wait_for, wait_until_done

    script = "trap 'echo cleaning up; exit 0' TERM; echo ready; while true; do sleep 0.2; done"
    run = lifecycle.start(_pipeline(tmp_path, step("trap", script)))
    wait_for(lambda: "ready" in _log_or_empty(run, "trap"), what="the step to be ready")

    run_stop(actor=None, run=run)

    run = wait_until_done(run, timeout=30)
    assert run.status == RunStatus.STOPPED
    # It exited 0, but it was stopped: it did not succeed.
    assert lifecycle.steps_of(run)["trap"] == (RunStatus.STOPPED, "stopped on request")
    log = lifecycle.log_of(run, "trap")
    assert log.index("cleaning up") < log.index("--- stopped on request: ended on SIGTERM ---")
    lifecycle.assert_ended_true(run)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "sandbox",
    [
        False,
        pytest.param(
            True,
            marks=pytest.mark.xfail(
                strict=True,
                reason="bwrap itself ends on SIGTERM, and --die-with-parent then SIGKILLs the "
                "step at once: the step gets no grace period",
            ),
        ),
    ],
    ids=["unsandboxed", "bubblewrap"],
)
def test_a_step_that_ignores_sigterm_is_killed_after_the_grace_period_and_its_log_says_so(
    tmp_path, settings, sandbox
):
    import time
    from datetime import timedelta

    from bedrock.runs.executors.local import bubblewrap
    from bedrock.runs.models import RunStatus
    from bedrock.runs.services import run_stop
    from tests.repos import step
    from tests.runflow import wait_for, wait_until_done

    settings.BEDROCK_LOCAL_SANDBOX = sandbox
    if sandbox and bubblewrap() is None:
        pytest.skip("bubblewrap is not installed")
    settings.BEDROCK_STOP_GRACE = timedelta(seconds=1)
    marker = "sleep 0.23"
    script = f"trap '' TERM; echo ready; while true; do {marker}; done"
    run = lifecycle.start(_pipeline(tmp_path, step("stubborn", script)))
    wait_for(lambda: "ready" in _log_or_empty(run, "stubborn"), what="the step to be ready")

    asked = time.monotonic()
    run_stop(actor=None, run=run)

    run = wait_until_done(run, timeout=30)
    assert time.monotonic() - asked >= 1, "the grace period was given"
    assert lifecycle.steps_of(run)["stubborn"] == (RunStatus.STOPPED, "stopped on request")
    assert (
        "--- stopped on request: killed with SIGKILL after the 1 s grace period ---"
        in lifecycle.log_of(run, "stubborn")
    )
    lifecycle.assert_ended_true(run)
    wait_for(lambda: not lifecycle.processes(marker), timeout=10, what="no step process left")


@pytest.mark.django_db(transaction=True)
def test_a_stop_while_a_step_is_being_prepared_keeps_its_command_from_starting(
    tmp_path, monkeypatch
):
    """Executors that prepare a step apart from starting it (a venv, an image) are asked
    whether to start once preparing is over."""
    from bedrock.runs import supervisor
    from bedrock.runs.executors.local import LocalExecutor
    from bedrock.runs.models import Run, RunStatus
    from bedrock.runs.services import run_stop
    from tests.repos import step
    from tests.runflow import wait_for, wait_until_done

    class Preparing(LocalExecutor):
        def prepare(self, plan, context):
            preparing.append(plan.name)
            wait_for(lambda: stopping(), what="the stop to arrive while preparing")

    preparing: list[str] = []
    monkeypatch.setattr(supervisor, "get_executor", Preparing)
    run = lifecycle.start(_pipeline(tmp_path, step("s", "echo started")))

    def stopping() -> bool:
        return Run.objects.filter(pk=run.pk, status=RunStatus.STOPPING).exists()

    wait_for(lambda: preparing, what="the step to be prepared")
    run_stop(actor=None, run=run)

    run = wait_until_done(run, timeout=60)
    assert run.status == RunStatus.STOPPED
    assert lifecycle.steps_of(run)["s"] == (RunStatus.STOPPED, "stopped on request")
    assert lifecycle.log_of(run, "s") == "--- stopped on request: not started ---\n"
    lifecycle.assert_ended_true(run)


def _log_or_empty(run, step: str) -> str:
    from bedrock.runs.models import RunStep

    if not RunStep.objects.filter(run=run, name=step).exists():
        return ""
    try:
        return lifecycle.log_of(run, step)
    except FileNotFoundError:
        return ""


@pytest.mark.django_db(transaction=True)
def test_a_run_past_its_time_limit_ends_every_step_with_the_reason(tmp_path):
    from datetime import timedelta

    from bedrock.runs.models import RunStatus
    from tests.repos import step
    from tests.runflow import wait_until_done

    marker = "sleep 82.5"
    pipeline = _pipeline(
        tmp_path,
        step("slow", marker),
        step("after", "true", depends_on='"slow"'),
        max_run_time=timedelta(seconds=3),
    )

    run = wait_until_done(lifecycle.start(pipeline), timeout=60)

    reason = "exceeded the maximum run time of 3s"
    assert (run.status, run.failure_reason) == (RunStatus.FAILED, reason)
    assert lifecycle.steps_of(run) == {
        "slow": (RunStatus.FAILED, "killed at the run's time limit"),
        "after": (RunStatus.STOPPED, f"not run: {reason}"),
    }
    assert "--- killed at the run's time limit: ended on SIGTERM ---" in lifecycle.log_of(
        run, "slow"
    )
    lifecycle.assert_ended_true(run)
    assert not lifecycle.processes(marker)


@pytest.mark.django_db(transaction=True)
def test_a_run_whose_model_version_cannot_be_published_fails_with_every_step_ended(
    tmp_path, monkeypatch
):
    from bedrock.models import services as model_services
    from bedrock.models.models import ModelVersion
    from bedrock.runs.models import RunStatus
    from tests.repos import step
    from tests.runflow import wait_until_done

    def publish(**kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(model_services, "model_version_publish", publish)
    pipeline = _pipeline(tmp_path, step("train", _write("model")))

    run = wait_until_done(lifecycle.start(pipeline), timeout=120)

    assert run.status == RunStatus.FAILED
    assert "No space left on device" in run.failure_reason
    assert lifecycle.steps_of(run) == {"train": (RunStatus.SUCCEEDED, "")}
    assert not ModelVersion.objects.exists()
    lifecycle.assert_ended_true(run)


@pytest.mark.django_db
def test_a_supervisor_that_cannot_start_is_retried_with_backoff_then_its_run_fails_saying_why(
    monkeypatch, settings
):
    import sys
    from datetime import timedelta

    from django.utils import timezone

    from bedrock.runs import services
    from bedrock.runs.models import Run, RunStatus
    from tests import factories
    from tests.runflow import wait_for

    settings.BEDROCK_SUPERVISOR = "process"
    settings.BEDROCK_SUPERVISOR_START_ATTEMPTS = 3
    settings.BEDROCK_SUPERVISOR_START_BACKOFF = timedelta(seconds=30)
    crash = (
        "import sys; print('Traceback (most recent call last):'); "
        "print('django.db.utils.OperationalError: database is locked'); sys.exit(1)"
    )
    monkeypatch.setattr(
        services, "supervisor_command", lambda run_id: [sys.executable, "-c", crash]
    )
    run = Run.objects.create(
        pipeline=factories.pipeline(factories.project()),
        number=1,
        ref="main",
        status=RunStatus.ACCEPTED,
        created_at=timezone.now() - timedelta(minutes=10),
    )
    log = services.supervisor_log(run.pk)

    def started(count: int) -> None:
        run.refresh_from_db()
        assert (run.status, run.supervisor_attempts) == (RunStatus.QUEUED, count)
        wait_for(lambda: log.read_text().count("database is locked") == count, what="its log")

    def waited(seconds: float) -> None:
        Run.objects.filter(pk=run.pk).update(
            supervisor_started_at=timezone.now() - timedelta(seconds=seconds)
        )

    assert services.run_submit(run_id=run.pk)
    started(1)
    assert services.runs_reconcile()["restarted"] == 0  # within the first 30 s: no new start
    waited(31)
    assert services.runs_reconcile()["restarted"] == 1
    started(2)
    waited(59)  # the backoff doubled
    assert services.runs_reconcile()["restarted"] == 0
    waited(61)
    assert services.runs_reconcile()["restarted"] == 1
    started(3)
    waited(119)
    assert services.runs_reconcile() == {"resubmitted": 0, "restarted": 0, "ended": 0, "cleaned": 0}
    started(3)
    waited(121)

    assert services.runs_reconcile()["ended"] == 1

    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert run.failure_reason == (
        "the run's supervisor could not start (3 attempts): Traceback (most recent call last): "
        "| django.db.utils.OperationalError: database is locked"
    )
    assert run.supervisor_attempts == 3
    lifecycle.assert_ended_true(run)
    assert services.runs_reconcile()["restarted"] == 0  # never started again


def _twenty_step_intervals(runs) -> list:
    from bedrock.runs.models import RunStep

    rows = RunStep.objects.filter(run__in=runs).values_list("started_at", "finished_at")
    assert all(start and end for start, end in rows)
    return list(rows)


@pytest.mark.django_db(transaction=True)
def test_a_run_never_has_more_steps_running_at_once_than_its_limit(tmp_path, settings):
    from bedrock.runs.models import RunStatus
    from tests.repos import step
    from tests.runflow import wait_until_done

    settings.BEDROCK_MAX_PARALLEL_STEPS = 4
    settings.BEDROCK_MACHINE_MAX_STEPS = 20
    steps = [step(f"s{i:02}", f"{_write(f's{i:02}')}; sleep 1") for i in range(20)]

    run = wait_until_done(lifecycle.start(_pipeline(tmp_path, *steps)), timeout=400)

    assert run.status == RunStatus.SUCCEEDED, run.failure_reason
    assert 2 <= lifecycle.most_at_once(_twenty_step_intervals([run])) <= 4


@pytest.mark.django_db(transaction=True)
def test_the_steps_of_every_run_on_the_machine_share_its_limit(tmp_path, settings):
    from bedrock.runs.models import RunStatus
    from tests.repos import step
    from tests.runflow import wait_until_done

    settings.BEDROCK_MAX_PARALLEL_STEPS = 8
    settings.BEDROCK_MACHINE_MAX_STEPS = 3
    steps = [step(f"s{i}", f"{_write(f's{i}')}; sleep 1") for i in range(6)]
    first = lifecycle.start(_pipeline(tmp_path / "one", *steps, name="one"))
    second = lifecycle.start(_pipeline(tmp_path / "two", *steps, name="two"))

    for run in (first, second):
        wait_until_done(run, timeout=400)
        assert run.status == RunStatus.SUCCEEDED, run.failure_reason
    assert 2 <= lifecycle.most_at_once(_twenty_step_intervals([first, second])) <= 3


def test_a_place_for_a_step_is_freed_when_the_process_holding_it_dies(settings):
    import subprocess
    import sys

    from bedrock.runs.slots import machine_slot, slots_dir

    settings.BEDROCK_MACHINE_MAX_STEPS = 1
    hold = (
        "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); "
        "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", hold, str(slots_dir() / "slot-0")], stdout=subprocess.PIPE
    )
    try:
        assert holder.stdout.readline() == b"held\n"
        with machine_slot(give_up=lambda: True) as placed:
            assert placed is False
    finally:
        holder.kill()
        holder.wait()
    with machine_slot(give_up=lambda: True) as placed:
        assert placed is True


# --- 4b. Followers, the worker, archives, idempotency, addresses, repositories ------------------


# --- 5. Masking --------------------------------------------------------------------------------


# --- 6. Deployment -----------------------------------------------------------------------------


# --- 7. The Docker executor --------------------------------------------------------------------
