"""The run lifecycle: create, submit, stop, and the reconciler that repairs what a crash left.

Statuses move by compare-and-swap (``filter(status=OLD).update(status=NEW)``), so every function
here is safe to run twice and from several processes at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Max, Q
from django.utils import timezone

from bedrock.envconfig import format_duration
from bedrock.pipelines import git
from bedrock.pipelines import spec as hcl
from bedrock.pipelines.models import Pipeline, PipelineKind, Role
from bedrock.pipelines.selectors import User, has_role
from bedrock.runs.executors.local import unsandboxed_refusal
from bedrock.runs.models import ACTIVE_STATUSES, Run, RunStatus, RunStep, Trigger
from bedrock.runs.plan import stanza_for
from bedrock.runs.workspace import Workspace

logger = logging.getLogger(__name__)

PARAMETER_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# A supervisor beats every 2 s; silence this long means it is gone.
HEARTBEAT_STALE = timedelta(seconds=30)
QUEUED_STALE = timedelta(seconds=60)
# A supervisor enforces its run's deadline itself; past this grace the reconciler does it instead.
DEADLINE_GRACE = timedelta(minutes=2)


class _Rejection(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _next_number(pipeline: Pipeline) -> int:
    latest = Run.objects.filter(pipeline=pipeline).aggregate(latest=Max("number"))["latest"]
    return (latest or 0) + 1


def merge_parameters(defaults: dict[str, str], overrides: dict[str, Any] | None) -> dict[str, str]:
    """The file's defaults overridden by the run's; names must be environment variable names."""
    merged = dict(defaults)
    for name, value in (overrides or {}).items():
        if not PARAMETER_NAME.match(name):
            raise ValidationError(
                {"parameters": f"{name!r} is not a valid parameter (environment variable) name."}
            )
        if name.startswith("BEDROCK_"):
            raise ValidationError(
                {"parameters": f"{name!r}: names starting with BEDROCK_ are reserved."}
            )
        merged[name] = "" if value is None else str(value)
    return merged


def run_create(
    *,
    actor: User | None,
    pipeline: Pipeline,
    ref: str | None = None,
    parameters: dict[str, Any] | None = None,
    model_version_id: int | None = None,
    trigger: str = Trigger.UI,
    idempotency_key: str | None = None,
) -> Run:
    """Create a run: ``Accepted`` and queued for submission, or ``Rejected`` with the reason.

    Raises PermissionDenied or ValidationError (and creates nothing) for a request that could not
    be a run at all: no permission, an archived pipeline, malformed parameters. The same
    idempotency key on the same pipeline returns the run it created the first time.
    """
    if actor is not None and not has_role(actor, pipeline.project, Role.DEVELOPER):
        raise PermissionDenied("Only project developers and admins may start runs.")
    if pipeline.archived:
        raise ValidationError({"pipeline": f"The pipeline {pipeline} is archived."})
    if idempotency_key:
        existing = Run.objects.filter(pipeline=pipeline, idempotency_key=idempotency_key).first()
        if existing is not None:
            return existing
    ref = (ref or pipeline.branch).strip()
    for field, value in (("ref", ref), ("idempotency_key", idempotency_key)):
        limit = Run._meta.get_field(field).max_length
        if value and len(value) > limit:
            raise ValidationError(
                {field: ValidationError(f"At most {limit} characters.", code="max_length")}
            )
    overrides = parameters or {}
    merge_parameters({}, overrides)  # malformed names fail before any work is done

    fields: dict[str, Any] = {"ref": ref, "parameters": dict(overrides)}
    try:
        _resolve(pipeline, ref, overrides, model_version_id, fields)
        status, reason = RunStatus.ACCEPTED, ""
    except _Rejection as rejection:
        status, reason = RunStatus.REJECTED, rejection.reason
    if status == RunStatus.ACCEPTED and (refusal := unsandboxed_refusal(actor)):
        status, reason = RunStatus.REJECTED, refusal

    for _ in range(5):
        try:
            with transaction.atomic():
                Pipeline.objects.select_for_update().filter(pk=pipeline.pk).first()
                run = Run.objects.create(
                    pipeline=pipeline,
                    number=_next_number(pipeline),
                    status=status,
                    failure_reason=reason,
                    trigger=trigger,
                    triggered_by=actor if actor and actor.is_authenticated else None,
                    idempotency_key=idempotency_key or None,
                    max_run_time=pipeline.max_run_time,
                    finished_at=timezone.now() if status == RunStatus.REJECTED else None,
                    **fields,
                )
                if status == RunStatus.ACCEPTED:
                    transaction.on_commit(lambda run_id=run.pk: enqueue_submit(run_id))
            return run
        except IntegrityError:
            if idempotency_key:
                existing = Run.objects.filter(
                    pipeline=pipeline, idempotency_key=idempotency_key
                ).first()
                if existing is not None:
                    return existing
            # Another run took the number; take the next one.
    raise RuntimeError(f"could not number a new run of {pipeline}")  # pragma: no cover


def _resolve(
    pipeline: Pipeline,
    ref: str,
    overrides: dict[str, Any],
    model_version_id: int | None,
    fields: dict[str, Any],
) -> None:
    """Fix in ``fields`` everything a run needs at creation, as far as it gets.

    Raises _Rejection with a user-facing reason; what was learnt before (the commit, the config)
    stays in ``fields`` so that a rejected run still shows it.
    """
    from bedrock.secrets.services import git_credentials_for, secret_values_for

    credentials = git_credentials_for(pipeline)
    cache_key = f"pipeline-{pipeline.pk}"
    try:
        git.validate_ref(ref)
        sha = git.resolve_ref(pipeline.git_url, ref, cache_key=cache_key, credentials=credentials)
        fields["commit_sha"] = sha
        config_text = git.read_file(
            pipeline.git_url,
            sha,
            pipeline.config_path,
            cache_key=cache_key,
            credentials=credentials,
        )
    except git.GitError as exc:
        raise _Rejection(str(exc)) from exc
    fields["config_text"] = config_text
    try:
        stanza = stanza_for(config_text, pipeline.kind, filename=pipeline.config_path)
    except hcl.SpecError as exc:
        problems = "; ".join(
            problem.format(pipeline.config_path)
            for problem in exc.problems
            if problem.severity == "error"
        )
        raise _Rejection(f"{pipeline.config_path} at {sha[:10]} is invalid: {problems}") from exc
    fields["parameters"] = merge_parameters(stanza.parameters, overrides)
    values = secret_values_for(pipeline=pipeline, names=list(stanza.secrets))
    missing = [name for name in stanza.secrets if not values.get(name)]
    if missing:
        raise _Rejection(
            f"the secret{'s' if len(missing) > 1 else ''} {', '.join(missing)} declared in "
            f"{pipeline.config_path} {'have' if len(missing) > 1 else 'has'} no value; "
            "set it on the pipeline's secrets page"
        )
    if pipeline.kind == PipelineKind.BATCH_SCORING:
        fields["input_model_version"] = _input_model_version(pipeline, model_version_id)
    elif model_version_id is not None:
        raise _Rejection("a training run takes no model version")


def _input_model_version(pipeline: Pipeline, model_version_id: int | None):
    from bedrock.models.models import ModelVersion

    if model_version_id is None:
        raise _Rejection("a batch scoring run needs a model version")
    version = ModelVersion.objects.select_related("model").filter(pk=model_version_id).first()
    if version is None:
        raise _Rejection(f"model version {model_version_id} does not exist")
    if version.model.project_id != pipeline.project_id:
        # Say no more than that: the version's project may be one the user cannot see.
        raise _Rejection(
            f"model version {model_version_id} does not belong to the project {pipeline.project}"
        )
    return version


def run_rerun(*, actor: User | None, run: Run, trigger: str = Trigger.UI) -> Run:
    """A new run of the same commit, parameters and input model version."""
    return run_create(
        actor=actor,
        pipeline=run.pipeline,
        ref=run.commit_sha or run.ref,
        parameters=run.parameters,
        model_version_id=run.input_model_version_id,
        trigger=trigger,
    )


# --- submission -------------------------------------------------------------------------------
def enqueue_submit(run_id: int) -> None:
    from django_q.tasks import async_task

    async_task("bedrock.runs.tasks.run_submit", run_id, task_name=f"submit-run-{run_id}")


def run_submit(*, run_id: int) -> bool:
    """Queue an accepted run and start its supervisor. False if it was not Accepted any more."""
    if not Run.objects.filter(pk=run_id, status=RunStatus.ACCEPTED).update(status=RunStatus.QUEUED):
        return False
    supervisor_start(run_id)
    return True


def supervisor_start(run_id: int) -> None:
    """Start the run's supervisor apart from this process, so it outlives a worker restart."""
    if settings.BEDROCK_SUPERVISOR == "thread":
        threading.Thread(
            target=_supervise_in_thread, args=(run_id,), name=f"run-{run_id}", daemon=True
        ).start()
        return
    log = open(_supervisor_log(run_id), "ab")  # noqa: SIM115 - handed to the child
    try:
        subprocess.Popen(
            [sys.executable, "-m", "bedrock.cli", "execute", str(run_id)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    finally:
        log.close()


def _supervise_in_thread(run_id: int) -> None:
    from django.db import connection

    from bedrock.runs.supervisor import Supervisor

    try:
        Supervisor(run_id).execute()
    finally:
        connection.close()


def _supervisor_log(run_id: int):
    path = settings.BEDROCK_HOME / "logs" / f"run-{run_id}" / "supervisor.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


# --- stopping -----------------------------------------------------------------------------------
def run_stop(*, actor: User | None, run: Run) -> Run:
    """Ask a run to stop. Its supervisor kills the steps and ends it as ``Stopped``."""
    if actor is not None and not has_role(actor, run.pipeline.project, Role.DEVELOPER):
        raise PermissionDenied("Only project developers and admins may stop runs.")
    now = timezone.now()
    # Nothing runs yet for an accepted or queued run without a supervisor: stop it at once.
    Run.objects.filter(
        pk=run.pk, status__in=[RunStatus.ACCEPTED, RunStatus.QUEUED], runner=""
    ).update(status=RunStatus.STOPPED, finished_at=now, failure_reason="stopped on request")
    Run.objects.filter(pk=run.pk, status__in=[RunStatus.RUNNING, RunStatus.UNKNOWN]).update(
        status=RunStatus.STOPPING
    )
    run.refresh_from_db()
    return run


# --- reconciling --------------------------------------------------------------------------------
def _runner_alive(runner: str) -> bool | None:
    """True/False when the supervisor is on this host and its pid can be checked, else None."""
    host, _, pid = runner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return None
    try:
        with open(f"/proc/{int(pid)}/stat") as stat:
            # A zombie (state Z) has exited; it only waits for a parent that may never reap it.
            state = stat.read().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return False
    except OSError:
        return None
    return state not in ("Z", "X")


def runs_reconcile() -> dict[str, int]:
    """Repair what a crash left behind. Runs periodically; every branch is a compare-and-swap."""
    now = timezone.now()
    repaired = {"resubmitted": 0, "restarted": 0, "ended": 0, "cleaned": 0}

    for run_id in Run.objects.filter(
        status=RunStatus.ACCEPTED, created_at__lt=now - QUEUED_STALE
    ).values_list("pk", flat=True):
        repaired["resubmitted"] += run_submit(run_id=run_id)

    for run_id in Run.objects.filter(
        status=RunStatus.QUEUED, runner="", created_at__lt=now - QUEUED_STALE
    ).values_list("pk", flat=True):
        supervisor_start(run_id)
        repaired["restarted"] += 1

    stale = Q(heartbeat_at__lt=now - HEARTBEAT_STALE) | Q(heartbeat_at__isnull=True)
    for run in Run.objects.filter(
        status__in=[RunStatus.RUNNING, RunStatus.STOPPING, RunStatus.UNKNOWN]
    ).exclude(runner=""):
        overdue = run.deadline is not None and now >= run.deadline + DEADLINE_GRACE
        alive = _runner_alive(run.runner)
        if overdue:
            # The watchdog of last resort: whatever the supervisor is doing, the run is over.
            if alive:
                _kill_runner(run.runner)
            repaired["ended"] += _end_orphaned(run, now)
            continue
        if alive is True:
            continue
        if alive is None and not Run.objects.filter(pk=run.pk).filter(stale).exists():
            continue
        repaired["ended"] += _end_orphaned(run, now)

    for run_id in (
        Run.objects.filter(cleanup_pending=True)
        .exclude(status__in=list(ACTIVE_STATUSES))
        .values_list("pk", flat=True)
    ):
        repaired["cleaned"] += run_cleanup(run_id)
    return repaired


def run_cleanup(run_id: int, *, executor=None) -> bool:
    """Remove what the run left outside the database: its executor's jobs, processes or
    containers, and its stage archives. True when all is gone; otherwise the run is marked
    ``cleanup_pending`` and the reconciler calls this again."""
    from bedrock.runs.executors import get_executor
    from bedrock.runs.stages import stages_delete

    complete = True
    try:
        (executor or get_executor()).cleanup_run(run_id)
    except Exception as exc:
        logger.warning("cleaning up run %s: %s", run_id, exc)
        complete = False
    try:
        stages_delete(run_id)
    except Exception as exc:
        logger.warning("deleting the stage archives of run %s: %s", run_id, exc)
        complete = False
    Run.objects.filter(pk=run_id).update(cleanup_pending=not complete)
    return complete


def _kill_runner(runner: str) -> None:
    with contextlib.suppress(ProcessLookupError, ValueError):
        os.kill(int(runner.rpartition(":")[2]), signal.SIGKILL)


def _end_orphaned(run: Run, now) -> int:
    """End a run whose supervisor is gone, cleaning up whatever of it still runs."""
    if run.status == RunStatus.STOPPING:
        status, reason = RunStatus.STOPPED, "stopped on request"
    elif run.deadline is not None and now >= run.deadline:
        status = RunStatus.FAILED
        reason = f"exceeded the maximum run time of {format_duration(run.max_run_time)}"
    else:
        status = RunStatus.FAILED
        reason = "the run's supervisor stopped unexpectedly (the machine or process died)"
    try:
        run_cleanup(run.pk)
        Workspace(run.pk).remove()
    except Exception:  # cleanup must not keep the run from ending
        logger.exception("cleaning up run %s", run.pk)
    ended = Run.objects.filter(pk=run.pk, status=run.status, runner=run.runner).update(
        status=status, failure_reason=reason, finished_at=now, token_hash=""
    )
    if ended:
        RunStep.objects.filter(run=run, status__in=list(ACTIVE_STATUSES)).update(
            status=status, failure_reason=reason, finished_at=now
        )
    return ended
