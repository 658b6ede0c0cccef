"""Every change of a run's or a step's status, each one compare-and-swap.

Nothing else writes ``status``. Each function moves a row only while it is still in the statuses
it expects (``filter(pk=…, status__in=OLD).update(…)``) and says whether it did, so it is safe to
call twice and from several processes at once. Where a run ends, its steps end with it in the
same transaction: no step of an ended run is ever left active.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from django.db import transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from bedrock.runs.models import ACTIVE_STATUSES, Run, RunStatus, RunStep
from bedrock.runs.workspace import run_wake

# A step in one of these has not started any attempt yet.
NOT_STARTED = frozenset({RunStatus.ACCEPTED, RunStatus.QUEUED})
STARTED = ACTIVE_STATUSES - NOT_STARTED
STOPPED_ON_REQUEST = "stopped on request"


# --- runs ---------------------------------------------------------------------------------------
def run_queue(run_id: int) -> bool:
    """Accepted → Queued: its supervisor is about to be started."""
    return _move_run(run_id, {RunStatus.ACCEPTED}, status=RunStatus.QUEUED)


def run_supervisor_started(run_id: int, *, first: bool = False) -> int:
    """Count a supervisor start for a queued run that no supervisor has claimed yet: the
    number of this start, or 0 when the run is not waiting for one. With ``first``, only if no
    start was counted before: a submission tried again, or made twice, starts one supervisor."""
    runs = Run.objects.filter(pk=run_id, status=RunStatus.QUEUED, runner="")
    if first:
        runs = runs.filter(supervisor_attempts=0)
    # One transaction: a count that commits with its number unread would be a start never made.
    with transaction.atomic():
        counted = runs.update(
            supervisor_attempts=F("supervisor_attempts") + 1, supervisor_started_at=timezone.now()
        )
        if not counted:
            return 0
        return Run.objects.filter(pk=run_id).values_list("supervisor_attempts", flat=True).get()


def run_claim(run_id: int, *, runner: str) -> bool:
    """Queued → Running, taken by the supervisor ``runner``; False if another took it first."""
    now = timezone.now()
    return _move_run(
        run_id,
        {RunStatus.QUEUED},
        status=RunStatus.RUNNING,
        started_at=now,
        heartbeat_at=now,
        runner=runner,
    )


def run_stopping(run_id: int) -> bool:
    """Running → Stopping: its supervisor starts no new step and kills the running ones."""
    return _move_run(run_id, {RunStatus.RUNNING, RunStatus.UNKNOWN}, status=RunStatus.STOPPING)


def run_stop_unstarted(run_id: int) -> bool:
    """Accepted or Queued with no supervisor yet → Stopped: nothing of it runs."""
    return _end_run(
        run_id,
        Q(status__in=[RunStatus.ACCEPTED, RunStatus.QUEUED], runner=""),
        to=RunStatus.STOPPED,
        reason=STOPPED_ON_REQUEST,
    )


def run_fail_unstarted(run_id: int, *, reason: str) -> bool:
    """Queued with no supervisor, after every start failed → Failed with ``reason``."""
    return _end_run(
        run_id,
        Q(status=RunStatus.QUEUED, runner=""),
        to=RunStatus.FAILED,
        reason=reason,
    )


def run_finish(run_id: int, *, to: str, reason: str = "", exit_code: int | None = None) -> bool:
    """An active run → its outcome, as its supervisor saw it end; its active steps end too."""
    return _end_run(
        run_id,
        Q(status__in=list(ACTIVE_STATUSES)),
        to=to,
        reason=reason,
        exit_code=exit_code,
    )


def run_end_orphaned(run: Run, *, to: str, reason: str) -> bool:
    """End a run whose supervisor is gone, unless it moved or another supervisor took it since
    ``run`` was read."""
    return _end_run(
        run.pk,
        Q(status=run.status, runner=run.runner),
        to=to,
        reason=reason,
    )


def _move_run(run_id: int, old: set[str], **fields: Any) -> bool:
    return _woken(
        run_id, bool(Run.objects.filter(pk=run_id, status__in=list(old)).update(**fields))
    )


def _woken(run_id: int | None, moved: bool) -> bool:
    """Wake the run's followers once what moved is committed (a follower woken before would
    read the old status and sleep again)."""
    if moved and run_id is not None:
        transaction.on_commit(lambda: run_wake(run_id))
    return moved


def _end_run(
    run_id: int, expected: Q, *, to: str, reason: str, exit_code: int | None = None
) -> bool:
    assert to not in ACTIVE_STATUSES, to
    now = timezone.now()
    with transaction.atomic():
        ended = Run.objects.filter(expected, pk=run_id).update(
            status=to,
            failure_reason=reason,
            exit_code=exit_code,
            finished_at=now,
            token_hash="",
        )
        if ended:
            steps = RunStep.objects.filter(run_id=run_id)
            steps.filter(status__in=list(NOT_STARTED)).update(
                status=RunStatus.STOPPED, failure_reason=f"not run: {reason or 'the run ended'}"
            )
            steps.filter(status__in=list(STARTED)).update(
                status=to, failure_reason=reason, finished_at=now
            )
    return _woken(run_id, bool(ended))


# --- steps --------------------------------------------------------------------------------------
def step_begin(step_id: int) -> bool:
    """The step's first attempt starts; only while its run is Running (not Stopping)."""
    return _begin(step_id, NOT_STARTED, attempt=1)


def step_retry(step_id: int, *, attempt: int) -> bool:
    """Another attempt of a running step starts; only while its run is Running."""
    return _begin(step_id, {RunStatus.RUNNING}, attempt=attempt)


def _begin(step_id: int, old: Collection[str], *, attempt: int) -> bool:
    # The run's row is locked first, as every transition touching a run and its steps does (so
    # none deadlocks another): a run ending meanwhile holds it until its steps are ended, and
    # this then sees the ended run. A filter on the run inside the step's UPDATE would not do
    # on PostgreSQL: blocked on the step's row, it rechecks that row only, not the run's.
    run_id = RunStep.objects.filter(pk=step_id).values_list("run_id", flat=True).first()
    if run_id is None:
        return False
    with transaction.atomic():
        running = (
            Run.objects.select_for_update()
            .filter(pk=run_id, status=RunStatus.RUNNING)
            .values_list("pk", flat=True)
            .first()
        )
        if running is None:
            return False
        began = RunStep.objects.filter(pk=step_id, status__in=list(old)).update(
            status=RunStatus.RUNNING,
            attempts=attempt,
            exit_code=None,
            finished_at=None,
            started_at=Coalesce(F("started_at"), Value(timezone.now())),
        )
    return _woken(run_id, bool(began))


def step_finish(step_id: int, *, to: str, exit_code: int | None = None, reason: str = "") -> bool:
    """An active step → its outcome (a step that never started may fail too: its checkout or
    its process could not be made)."""
    assert to not in ACTIVE_STATUSES, to
    finished = RunStep.objects.filter(pk=step_id, status__in=list(ACTIVE_STATUSES)).update(
        status=to, exit_code=exit_code, failure_reason=reason, finished_at=timezone.now()
    )
    if not finished:
        return False
    return _woken(RunStep.objects.filter(pk=step_id).values_list("run_id", flat=True).first(), True)
