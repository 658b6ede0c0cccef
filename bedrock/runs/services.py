"""The run lifecycle: create, submit, stop, and the reconciler that repairs what a crash left.

Statuses move only through :mod:`bedrock.runs.transitions`, each a compare-and-swap, so every
function here is safe to run twice and from several processes at once.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from django.conf import settings
from django.contrib.auth.models import User as AuthUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import CharField, Max, Q
from django.utils import timezone

from bedrock.actors import Actor, person, require_role
from bedrock.envconfig import format_duration
from bedrock.events.delivery import webhook_deliveries_due
from bedrock.events.services import deliveries_prune
from bedrock.models.retention import versions_retain
from bedrock.models.services import archives_reconcile
from bedrock.pipelines import environment, git
from bedrock.pipelines import spec as hcl
from bedrock.pipelines.models import Pipeline, PipelineKind, Role
from bedrock.runs import installs, transitions
from bedrock.runs.cleanup import run_cleanup
from bedrock.runs.detach import detach, fork_safe
from bedrock.runs.executors.local import unsandboxed_refusal
from bedrock.runs.models import ACTIVE_STATUSES, Run, RunStatus, Trigger
from bedrock.runs.plan import stanza_for
from bedrock.runs.workspace import Workspace, logs_root

if TYPE_CHECKING:
    from bedrock.models.models import ModelAlias

logger = logging.getLogger(__name__)

PARAMETER_NAME = environment.ENVIRONMENT_NAME
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
    """The file's defaults overridden by the run's; names must be environment variable names
    that a step may be given (`bedrock.pipelines.environment`), values free of NUL bytes."""
    merged = dict(defaults)
    for name, value in (overrides or {}).items():
        merged[name] = "" if value is None else str(value)
        if problem := environment.parameter_problem(name, merged[name]):
            raise ValidationError({"parameters": problem})
    return merged


def run_create(
    *,
    actor: Actor,
    pipeline: Pipeline,
    ref: str | None = None,
    parameters: dict[str, Any] | None = None,
    model_version_id: int | None = None,
    trigger: str = Trigger.UI,
    idempotency_key: str | None = None,
    model_alias: str | None = None,
    rerun_of: Run | None = None,
) -> Run:
    """Create a run: ``Accepted`` and queued for submission, or ``Rejected`` with the reason.

    Raises PermissionDenied or ValidationError (and creates nothing) for a request that could not
    be a run at all: no permission, an archived pipeline, malformed parameters. The same
    idempotency key on the same pipeline returns the run it created the first time, if asked for
    the same ref, parameters and model version; otherwise it is a ValidationError on
    ``idempotency_key`` with the code ``conflict``.

    A batch scoring run may name its model version by ``model_alias`` instead (``model@alias``, or
    an alias only one model of the project has): the run keeps the alias as ``model@alias`` and
    the version it named at creation, which is the one a rerun uses.
    """
    require_role(
        actor,
        pipeline.project,
        Role.DEVELOPER,
        "Only project developers and admins may start runs.",
    )
    if pipeline.archived:
        raise ValidationError({"pipeline": f"The pipeline {pipeline} is archived."})
    _refuse_nul_bytes(ref=ref, idempotency_key=idempotency_key, model_alias=model_alias)
    ref = (ref or pipeline.branch).strip()
    alias = _model_alias(pipeline, model_alias, model_version_id)
    digest = request_digest(
        ref=ref,
        parameters=parameters,
        model_version_id=model_version_id,
        model_alias=str(alias) if alias is not None else "",
    )
    if idempotency_key:
        existing = Run.objects.filter(pipeline=pipeline, idempotency_key=idempotency_key).first()
        if existing is not None:
            return _same_request(existing, digest)
    for field, value in (("ref", ref), ("idempotency_key", idempotency_key)):
        limit = cast(CharField, Run._meta.get_field(field)).max_length  # both are CharFields
        if value and limit is not None and len(value) > limit:
            raise ValidationError(
                {field: ValidationError(f"At most {limit} characters.", code="max_length")}
            )
    overrides = parameters or {}
    # Malformed or refused names, and too large an environment, fail before any work is done.
    if problem := environment.environment_size_problem(
        merge_parameters({}, overrides), "The run's parameters"
    ):
        raise ValidationError({"parameters": problem})

    fields: dict[str, Any] = {"ref": ref, "parameters": dict(overrides)}
    if alias is not None:
        fields["input_model_alias"] = str(alias)
        model_version_id = alias.version_id
    try:
        _resolve(pipeline, ref, overrides, model_version_id, fields)
        if rerun_of is not None and fields["commit_sha"] == rerun_of.commit_sha:
            # A re-run is of its run's branch still: it publishes where that run would have.
            fields["branch"] = rerun_of.branch
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
                    # person() is typed for any auth user; the one it returns is signed in.
                    triggered_by=cast("AuthUser | None", person(actor)),
                    idempotency_key=idempotency_key or None,
                    request_digest=digest,
                    max_run_time=pipeline.max_run_time,
                    finished_at=timezone.now() if status == RunStatus.REJECTED else None,
                    **fields,
                )
                if status == RunStatus.ACCEPTED:
                    transaction.on_commit(functools.partial(enqueue_submit, run.pk))
            return run
        except IntegrityError:
            if idempotency_key:
                existing = Run.objects.filter(
                    pipeline=pipeline, idempotency_key=idempotency_key
                ).first()
                if existing is not None:
                    return _same_request(existing, digest)
            # Another run took the number; take the next one.
    raise RuntimeError(f"could not number a new run of {pipeline}")  # pragma: no cover


def _refuse_nul_bytes(**fields: str | None) -> None:
    """A NUL byte cannot reach Git, PostgreSQL or a process's argv: refuse it, naming the field."""
    for field, value in fields.items():
        if value and (problem := environment.nul_byte_problem(value, f"The {field}")):
            raise ValidationError({field: problem + "."})


def _model_alias(
    pipeline: Pipeline, asked: str | None, model_version_id: int | None
) -> ModelAlias | None:
    """The alias a batch scoring run asks for, if it asks for one; ValidationError otherwise."""
    from bedrock.models.aliases import alias_resolve

    if not asked:
        return None
    if model_version_id is not None:
        raise ValidationError({"model_alias": "Give a model alias or a model version, not both."})
    if pipeline.kind != PipelineKind.BATCH_SCORING:
        raise ValidationError(
            {"model_alias": f"{pipeline} is a training pipeline; only batch scoring takes a model."}
        )
    return alias_resolve(pipeline.project, asked)


def request_digest(
    *,
    ref: str,
    parameters: dict[str, Any] | None,
    model_version_id: int | None,
    model_alias: str = "",
) -> str:
    """A fingerprint of what a start request asked for, to tell a retry from a different request."""
    asked: dict[str, Any] = {
        "ref": ref,
        "parameters": {
            str(name): "" if value is None else str(value)
            for name, value in (parameters or {}).items()
        },
        "model_version_id": model_version_id,
    }
    if model_alias:  # only when asked, so the fingerprints of runs without one stay as they were
        asked["model_alias"] = model_alias
    return hashlib.sha256(json.dumps(asked, sort_keys=True).encode()).hexdigest()


def _same_request(existing: Run, digest: str) -> Run:
    """The run an idempotency key created, if this request asks for the same run again."""
    # Runs created before digests were kept have none; they are taken as the same request.
    if existing.request_digest and existing.request_digest != digest:
        raise ValidationError(
            {
                "idempotency_key": ValidationError(
                    f"The idempotency key {existing.idempotency_key!r} was used for run "
                    f"{existing.number} of {existing.pipeline}, with a different ref, parameters, "
                    "model version or model alias; use a new key for a different request.",
                    code="conflict",
                )
            }
        )
    return existing


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
        fields["branch"] = git.ref_branch(pipeline.git_url, ref, cache_key=cache_key)
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
    if refusal := installs.conda_refusal(stanza, pipeline.config_path):
        raise _Rejection(refusal)
    try:
        fields["installs_as_of"] = installs.installs_as_of(
            pipeline, sha, cache_key=cache_key, credentials=credentials
        )
    except git.GitError as exc:
        raise _Rejection(str(exc)) from exc
    fields["parameters"] = merge_parameters(stanza.parameters, overrides)
    values = secret_values_for(pipeline=pipeline, names=list(stanza.secrets))
    missing = [name for name in stanza.secrets if not values.get(name)]
    if missing:
        raise _Rejection(
            f"the secret{'s' if len(missing) > 1 else ''} {', '.join(missing)} declared in "
            f"{pipeline.config_path} {'have' if len(missing) > 1 else 'has'} no value; "
            "set it on the pipeline's secrets page"
        )
    variables = {**fields["parameters"], **values}
    if problem := environment.environment_size_problem(variables, "the parameters and secrets"):
        raise _Rejection(problem)
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
    if version.deleted_at is not None:
        raise _Rejection(
            f"model version {model_version_id} ({version}) was deleted and its archive with it; "
            "choose another version"
        )
    return version


def run_rerun(*, actor: Actor, run: Run, trigger: str = Trigger.UI) -> Run:
    """A new run of the same commit, parameters and input model version."""
    return run_create(
        actor=actor,
        pipeline=run.pipeline,
        ref=run.commit_sha or run.ref,
        parameters=run.parameters,
        model_version_id=run.input_model_version_id,
        trigger=trigger,
        rerun_of=run,
    )


# --- submission -------------------------------------------------------------------------------
def enqueue_submit(run_id: int) -> None:
    from django_q.tasks import async_task

    async_task("bedrock.runs.tasks.run_submit", run_id, task_name=f"submit-run-{run_id}")


def run_submit(*, run_id: int) -> bool:
    """Queue an accepted run and start its first supervisor; True if this call started it.

    Safe to try again after a failure part-way (queued, but the database locked before the
    start was counted): the retry finds the run Queued with no start yet and makes it. A run
    submitted twice, or started by the reconciler meanwhile, gets no second supervisor.
    """
    transitions.run_queue(run_id)
    return supervisor_start(run_id, first=True)


# Begins each start's part of the supervisor log, so a failure is told from its own lines.
START_MARK = "--- supervisor start "


def supervisor_command(run_id: int) -> list[str]:
    return [sys.executable, "-m", "bedrock.cli", "execute", str(run_id)]


def supervisor_start(run_id: int, *, first: bool = False) -> bool:
    """Start the run's supervisor apart from this process, so it outlives a worker restart.

    Counted on the run, so the reconciler knows how often it was tried; False (and nothing
    started) when the run is no longer waiting for one, or with ``first`` when one was started
    before.
    """
    attempt = transitions.run_supervisor_started(run_id, first=first)
    if not attempt:
        return False
    if settings.BEDROCK_SUPERVISOR == "thread":
        threading.Thread(
            target=_supervise_in_thread, args=(run_id,), name=f"run-{run_id}", daemon=True
        ).start()
        return True
    # The first start begins the log afresh: one left by a run of the same id is not this run's.
    log = open(supervisor_log(run_id), "ab" if attempt > 1 else "wb")  # noqa: SIM115 - the child's
    try:
        log.write(f"{START_MARK}{attempt} at {timezone.now().isoformat()} ---\n".encode())
        log.flush()
        if settings.BEDROCK_SUPERVISOR == "fork" and fork_safe():
            detach(functools.partial(_supervise_forked, run_id), log.fileno())
        else:
            subprocess.Popen(
                supervisor_command(run_id),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
    except OSError as exc:
        log.write(f"could not start the supervisor: {exc}\n".encode())
    finally:
        log.close()
    return True


def _supervise_forked(run_id: int) -> None:
    """What ``bedrock execute RUN_ID`` does, in a process forked with Django loaded."""
    from bedrock.runs.supervisor import Supervisor

    status = Supervisor(run_id).execute()
    print(f"run {run_id}: {status or 'not queued; nothing to do'}")


def _supervise_in_thread(run_id: int) -> None:
    from django.db import connection

    from bedrock.runs.supervisor import Supervisor

    try:
        Supervisor(run_id).execute()
    except Exception as exc:  # as a process would, leave the reason where the reconciler reads it
        logger.exception("the supervisor of run %s failed", run_id)
        with supervisor_log(run_id).open("a") as log:
            log.write(f"{type(exc).__name__}: {exc}\n")
    finally:
        connection.close()


def supervisor_log(run_id: int) -> Path:
    path = logs_root() / f"run-{run_id}" / "supervisor.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def supervisor_log_tail(run_id: int, *, lines: int = 5, limit: int = 500) -> str:
    """The last lines of the latest supervisor's own output (a traceback's last lines say
    why), shortened to ``limit`` characters; it holds no secret values."""
    try:
        with supervisor_log(run_id).open("rb") as log:
            log.seek(0, os.SEEK_END)
            log.seek(max(0, log.tell() - 8 * limit))
            text = log.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    if START_MARK in text:
        text = text.rpartition(START_MARK)[2].partition("\n")[2]
    said = [line.strip() for line in text.splitlines() if line.strip()]
    tail = " | ".join(said[-lines:])
    return tail if len(tail) <= limit else "…" + tail[-limit:]


# --- stopping -----------------------------------------------------------------------------------
def run_stop(*, actor: Actor, run: Run) -> Run:
    """Ask a run to stop. Its supervisor kills the steps and ends it as ``Stopped``."""
    require_role(
        actor,
        run.pipeline.project,
        Role.DEVELOPER,
        "Only project developers and admins may stop runs.",
    )
    # Nothing runs yet for an accepted or queued run without a supervisor: stop it at once.
    if not transitions.run_stop_unstarted(run.pk):
        transitions.run_stopping(run.pk)
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
        status__in=[RunStatus.ACCEPTED], created_at__lt=now - QUEUED_STALE
    ).values_list("pk", flat=True):
        repaired["resubmitted"] += run_submit(run_id=run_id)

    for run in Run.objects.filter(
        status__in=[RunStatus.QUEUED], runner="", created_at__lt=now - QUEUED_STALE
    ):
        outcome = _unclaimed(run, now)
        if outcome:
            repaired[outcome] += 1

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
    repaired["archives"] = archives_reconcile()
    repaired["retained"] = versions_retain()
    webhook_deliveries_due()
    deliveries_prune()
    return repaired


def _unclaimed(run: Run, now) -> str | None:
    """A queued run that no supervisor took: start one again after a backoff that doubles with
    each start, and fail the run once the last allowed start had its time too."""
    attempts = run.supervisor_attempts
    last = run.supervisor_started_at or run.created_at
    waited = settings.BEDROCK_SUPERVISOR_START_BACKOFF * 2 ** max(0, attempts - 1)
    if now < last + waited:
        return None
    if attempts < settings.BEDROCK_SUPERVISOR_START_ATTEMPTS:
        return "restarted" if supervisor_start(run.pk) else None
    said = supervisor_log_tail(run.pk)
    reason = (
        f"the run's supervisor could not start ({attempts} attempt"
        f"{'s' if attempts != 1 else ''}): {said or 'it left no output'}"
    )
    return "ended" if transitions.run_fail_unstarted(run.pk, reason=reason) else None


def _kill_runner(runner: str) -> None:
    with contextlib.suppress(ProcessLookupError, ValueError):
        os.kill(int(runner.rpartition(":")[2]), signal.SIGKILL)


def _end_orphaned(run: Run, now) -> int:
    """End a run whose supervisor is gone, cleaning up whatever of it still runs."""
    if run.status == RunStatus.STOPPING:
        status, reason = RunStatus.STOPPED, transitions.STOPPED_ON_REQUEST
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
    return int(transitions.run_end_orphaned(run, to=status, reason=reason))
