"""The ``nomad`` executor: each step attempt is a Nomad batch job (see :mod:`bedrock.nomad.jobs`).

The run's supervisor drives it like the other executors (dependency order, retries, the time
limit, stop, masked logs); this module submits, tracks and cleans up one job per attempt:

- **Submit** idempotently: the secrets variable first (create-only), then the job, registered
  create-only (``EnforceIndex`` with index 0). When Nomad says the job exists, or a register
  failed in a way that may have taken effect, the job is read back and adopted if its ``Meta``
  names this run, step and attempt; anything else is refused, never overwritten. A job that cannot
  be registered leaves no variable behind.
- **Track** by polling the job's allocations (:mod:`bedrock.nomad.status` maps them), reporting
  why a job waits to be placed, and failing it after ``BEDROCK_NOMAD_QUEUE_TIMEOUT``. An
  allocation Nomad reports ``unknown`` (its node cut off) for ``BEDROCK_NOMAD_LOST_AFTER`` fails
  the step as node lost (Nomad alone would wait for the node forever); at the time limit, the
  last log copy waits until ``main`` is dead, for at most its kill timeout and a grace.
- **Logs** of the three tasks are read while they run, by Nomad's file and offset across the
  rotation of their files (:mod:`bedrock.nomad.logs`), and copied into the step's log before the
  job is purged (Nomad garbage-collects allocation directories soon after).
- **Stop** deregisters the job (the poststop upload still runs); once the step is over the job is
  deregistered with purge and its variable deleted, so nothing of the run stays in Nomad. A job
  that cannot be purged (Nomad unreachable) is not retried, since it may still be running, and
  :meth:`NomadExecutor.cleanup_run` raises until it is gone, so the reconciler tries again.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import replace

from django.conf import settings
from django.utils import timezone

from bedrock.envconfig import format_duration
from bedrock.nomad import status as nomad_status
from bedrock.nomad.client import client, error_text, nomad_errors, status_of
from bedrock.nomad.jobs import (
    FETCH_TASK,
    MAIN_TASK,
    TOKEN_NAME,
    UPLOAD_TASK,
    StepJob,
    job_prefix,
    render_step,
    variable_path_for,
)
from bedrock.nomad.logs import Fetch, LogCursor
from bedrock.nomad.sizing import driver_memory_problem
from bedrock.runs.executors.base import ExecutorError, StepContext
from bedrock.runs.plan import StepPlan

logger = logging.getLogger(__name__)

ENFORCE_INDEX_CONFLICT = "Enforcing job modify index"
# Whose a job under one of our IDs is: a job is adopted or cleaned up only when all of these match.
OWNER_META = ("bedrock_run_id", "bedrock_run_key", "bedrock_step", "bedrock_attempt")
# The variable's owner mark. Not a secret name (those are identifiers), so no template reads it.
RUN_KEY_ITEM = "bedrock.run_key"
REGISTER_ATTEMPTS = 3
# How long Nomad may stay unreachable while a step runs before the step is given up on.
UNREACHABLE_LIMIT_SECONDS = 300
# How long past its kill timeout main may take to die at the time limit before the step ends
# without its last lines (docker stop, then the client reporting the death).
KILL_WAIT_GRACE_SECONDS = 30
_END = object()


class NomadExecutor:
    name = "nomad"
    # Steps fetch /app and /artefact themselves and upload /artefact through the API, instead of
    # sharing the supervisor's workspace.
    remote = True

    def __init__(self) -> None:
        if not settings.NOMAD_ADDR:
            raise ExecutorError("BEDROCK_EXECUTOR is nomad but NOMAD_ADDR is not set")

    # -- submit ------------------------------------------------------------------------------
    def start(self, step: StepPlan, context: StepContext) -> NomadStepHandle:
        if context.plan is None:
            raise ExecutorError("the nomad executor needs the run plan")
        time_left = context.plan.time_limit
        if context.deadline is not None:
            time_left = context.deadline - timezone.now()
        job = render_step(context.plan, step, attempt=context.attempt, time_left=time_left)
        api = client()
        # Nothing is written under an ID that holds somebody else's job: its workload identity
        # could read the variable.
        existing = self._existing(api, job)
        if existing is not None:
            self._check_ours(job, existing)
        # The token after the secrets: a secret of its name never replaces it.
        items = {
            **context.secrets,
            TOKEN_NAME: context.environment[TOKEN_NAME],
            RUN_KEY_ITEM: context.plan.run_key,
        }
        try:
            self._write_variable(api, job, items)
        except ExecutorError:
            raise
        except Exception as exc:
            raise _refused(f"the variable {job.variable_path}", exc) from None
        if existing is not None:
            logger.info("adopted the existing Nomad job %s", job.job_id)
            return NomadStepHandle(api, job)
        try:
            self._register(api, job)
        except BaseException:
            _delete_variable(api, job.variable_path)
            raise
        return NomadStepHandle(api, job)

    @staticmethod
    def _existing(api, job: StepJob) -> dict | None:
        try:
            return api.job.get_job(job.job_id)
        except nomad_errors.URLNotFoundNomadException:
            return None
        except Exception as exc:
            raise _refused(f"reading the job {job.job_id}", exc) from None

    def _write_variable(self, api, job: StepJob, items: dict[str, str]) -> None:
        """Create the variable; replace it only when an earlier try of this run wrote it.

        Error messages carry status codes only: Nomad answers a conflict with the variable in the
        way, values and all, and those must not reach a run's failure reason.
        """
        namespace = settings.NOMAD_NAMESPACE
        payload = {"Namespace": namespace, "Path": job.variable_path, "Items": items}
        try:
            api.variable.create_variable(job.variable_path, payload, namespace=namespace, cas=0)
            return
        except nomad_errors.VariableConflict:
            pass
        current = api.variable.get_variable(job.variable_path, namespace=namespace)
        if (current.get("Items") or {}).get(RUN_KEY_ITEM) != items[RUN_KEY_ITEM]:
            raise ExecutorError(
                f"Nomad already has a variable {job.variable_path} that is not this run's; "
                "it was left untouched"
            )
        api.variable.create_variable(
            job.variable_path, payload, namespace=namespace, cas=current.get("ModifyIndex", 0)
        )

    def _register(self, api, job: StepJob) -> None:
        last_error = ""
        for attempt in range(1, REGISTER_ATTEMPTS + 1):
            try:
                api.job.register_job(job.job_id, job.body)
                return
            except nomad_errors.BaseNomadException as exc:
                last_error = error_text(exc)
                if ENFORCE_INDEX_CONFLICT in last_error:
                    self._adopt(api, job, must_exist=True)
                    return
                if status_of(exc) in (400, 403):
                    raise ExecutorError(
                        f"Nomad refused the job {job.job_id}: {last_error}"
                    ) from None
            except Exception as exc:
                last_error = f"{type(exc).__name__}: {exc}"
            # A 500 or a lost connection may have happened after the job was stored.
            if self._adopt(api, job, must_exist=False):
                return
            if attempt < REGISTER_ATTEMPTS:
                time.sleep(attempt)
        raise ExecutorError(
            f"Nomad did not accept the job {job.job_id} after {REGISTER_ATTEMPTS} attempts: "
            f"{last_error}"
        )

    def _adopt(self, api, job: StepJob, *, must_exist: bool) -> bool:
        """True if the job Nomad has under this ID is this attempt's; refuse anyone else's."""
        try:
            existing = api.job.get_job(job.job_id)
        except nomad_errors.URLNotFoundNomadException:
            if must_exist:
                raise ExecutorError(
                    f"Nomad said the job {job.job_id} exists, then could not find it"
                ) from None
            return False
        except Exception:
            if must_exist:
                raise
            return False
        self._check_ours(job, existing)
        logger.info("adopted the existing Nomad job %s", job.job_id)
        return True

    @staticmethod
    def _check_ours(job: StepJob, existing: dict) -> None:
        """Refuse a job under this ID whose ``Meta`` names another run, step, attempt or install."""
        ours = job.body["Job"]["Meta"]
        theirs = existing.get("Meta") or {}
        if all(theirs.get(key) == ours[key] for key in OWNER_META):
            return
        raise ExecutorError(
            f"Nomad already has a job {job.job_id} that is not this step's "
            f"(its Meta names run {theirs.get('bedrock_run_id', '?')}); it was left untouched"
        )

    # -- cleanup -----------------------------------------------------------------------------
    def cleanup_run(self, run_id: int) -> None:
        """Purge every job of the run still in Nomad, and delete the run's variables.

        Only jobs whose ``Meta`` names this run (its run key included) and variables marked with
        its run key: a job or variable of someone else's under a colliding ID is never touched.
        Raises :class:`ExecutorError` when something could not be removed, so that the caller
        tries again later.
        """
        from bedrock.runs.models import Run
        from bedrock.runs.plan import run_key_for

        run = Run.objects.filter(pk=run_id).first()
        if run is None:
            return
        run_key = run_key_for(run)
        api = client()
        prefix = job_prefix(run_id)
        left: list[str] = []
        try:
            jobs = api.jobs.get_jobs(prefix=prefix)
            variables = api.variables.get_variables(
                prefix=variable_path_for(prefix), namespace=settings.NOMAD_NAMESPACE
            )
        except Exception as exc:
            raise _refused(f"listing what run {run_id} left", exc) from None
        kept: set[str] = set()  # variables to keep: someone else's, or of a job still there
        for stub in jobs:
            job_id = stub.get("ID", "")
            if not job_id.startswith(prefix):
                continue
            try:
                meta = api.job.get_job(job_id).get("Meta") or {}
            except nomad_errors.URLNotFoundNomadException:
                continue
            except Exception:
                left.append(job_id)
                continue
            if meta.get("bedrock_run_id") != str(run_id) or meta.get("bedrock_run_key") != run_key:
                kept.add(variable_path_for(job_id))
                continue
            if not _purge(api, job_id):
                left.append(job_id)
                kept.add(variable_path_for(job_id))  # kept while its job may still read it
        for variable in variables:
            path = variable.get("Path", "")
            if not path.startswith(variable_path_for(prefix)) or path in kept:
                continue
            try:
                items = api.variable.get_variable(path, namespace=settings.NOMAD_NAMESPACE)
            except nomad_errors.URLNotFoundNomadException:
                continue
            except Exception:
                left.append(path)
                continue
            if (items.get("Items") or {}).get(RUN_KEY_ITEM) != run_key:
                continue
            if not _delete_variable(api, path):
                left.append(path)
        if left:
            raise ExecutorError(
                f"could not remove from Nomad what run {run_id} left: {', '.join(left)}"
            )


def _refused(what: str, exc: Exception) -> ExecutorError:
    """An error for a failed Nomad call, by its status code only (never a response body)."""
    status = status_of(exc)
    if status is None:  # python-nomad wraps connection errors and timeouts
        return ExecutorError(f"Nomad at {settings.NOMAD_ADDR} is unreachable ({what})")
    return ExecutorError(f"Nomad refused {what}: HTTP {status}")


def _purge(api, job_id: str) -> bool:
    """Deregister the job with purge; True once it is gone."""
    try:
        api.job.deregister_job(job_id, purge=True)
    except nomad_errors.URLNotFoundNomadException:
        return True
    except Exception as exc:
        logger.warning("could not purge the Nomad job %s: %s", job_id, error_text(exc))
        return False
    return True


def _delete_variable(api, path: str) -> bool:
    """Delete the variable; True once it is gone. Logs status codes, never a response body."""
    try:
        api.variable.delete_variable(path, namespace=settings.NOMAD_NAMESPACE)
    except nomad_errors.URLNotFoundNomadException:
        return True
    except Exception as exc:
        logger.warning("could not delete the Nomad variable %s: %s", path, _refused(path, exc))
        return False
    return True


class NomadStepHandle:
    """Follows one step job until it ends, pumping its logs; the supervisor waits on it."""

    LOG_TASKS = ((FETCH_TASK, "[fetch] "), (MAIN_TASK, ""), (UPLOAD_TASK, "[upload] "))

    def __init__(self, api, job: StepJob) -> None:
        self.api = api
        self.job = job
        self.exit_code: int | None = None
        self.failure_reason = ""
        self.may_retry = True  # False when another attempt could run beside this one
        self._stop = threading.Event()
        self._done = threading.Event()
        self._lines: queue.Queue = queue.Queue()
        self._cursors: dict[tuple[str, str, str], LogCursor] = {}
        self._partial: dict[tuple[str, str, str], bytes] = {}
        self._said: set[str] = set()
        main = next(t for t in job.body["Job"]["TaskGroups"][0]["Tasks"] if t["Name"] == MAIN_TASK)
        self._memory_mb: int = main["Resources"]["MemoryMB"]
        self._warning = driver_memory_problem(main["Config"]["args"][-1], self._memory_mb)
        self._kill_wait = main["KillTimeout"] / 1e9 + KILL_WAIT_GRACE_SECONDS
        self._since: dict[str, float] = {}  # when a phase that may only last so long began
        self._thread = threading.Thread(target=self._track, daemon=True, name=job.job_id)
        self._thread.start()

    # -- StepHandle --------------------------------------------------------------------------
    def output(self) -> Iterator[bytes]:
        while True:
            item = self._lines.get()
            if item is _END:
                return
            yield item

    def wait(self, timeout: float | None = None) -> int | None:
        if self._done.wait(timeout):
            return self.exit_code
        return None

    def kill(self, grace: float = 0.0) -> str:
        # Nomad applies the grace itself: the job's KillTimeout between SIGTERM and SIGKILL.
        if self._stop.is_set():
            return ""
        self._stop.set()
        try:
            self.api.job.deregister_job(self.job.job_id, purge=False)
        except Exception as exc:
            logger.warning("could not stop the Nomad job %s: %s", self.job.job_id, exc)
            return f"could not stop the Nomad job: {exc}"
        return "stopped through Nomad (SIGTERM, then SIGKILL after the job's kill timeout)"

    # -- tracking ----------------------------------------------------------------------------
    def _say(self, text: str) -> None:
        if text not in self._said:
            self._said.add(text)
            self._lines.put(f"--- {text} ---\n".encode())

    def _track(self) -> None:
        state = nomad_status.StepState(nomad_status.QUEUED)
        try:
            self._say(f"submitted the Nomad job {self.job.job_id}")
            if self._warning:
                self._say(f"warning: {self._warning}")
            state = self._follow()
            if state.allocation_id:
                self._pump_logs(state.allocation_id, final=True)
        except Exception as exc:  # the step must end with a reason, whatever broke
            logger.exception("tracking the Nomad job %s failed", self.job.job_id)
            state = nomad_status.StepState(
                nomad_status.DONE, exit_code=-1, reason=f"tracking the Nomad job failed: {exc}"
            )
        finally:
            self._finish(state)

    def _follow(self) -> nomad_status.StepState:
        """Poll the job's allocations until the step has ended, saying what it is doing."""
        submitted = time.monotonic()
        unreachable_since: float | None = None
        while True:
            try:
                allocations = self.api.job.get_allocations(self.job.job_id)
                unreachable_since = None
            except nomad_errors.URLNotFoundNomadException:
                return nomad_status.StepState(
                    nomad_status.DONE,
                    exit_code=-1,
                    reason=f"the Nomad job {self.job.job_id} disappeared before it ended",
                    stopped=self._stop.is_set(),
                )
            except Exception as exc:
                unreachable_since = unreachable_since or time.monotonic()
                if time.monotonic() - unreachable_since > UNREACHABLE_LIMIT_SECONDS:
                    return nomad_status.StepState(
                        nomad_status.DONE,
                        exit_code=-1,
                        reason=f"lost contact with Nomad for over "
                        f"{UNREACHABLE_LIMIT_SECONDS // 60} minutes: {error_text(exc)}",
                    )
                time.sleep(self._poll_seconds())
                continue
            state = nomad_status.classify(
                allocations, stop_requested=self._stop.is_set(), memory_mb=self._memory_mb
            )
            state = self._bounded(state)
            # Not while the allocation is unknown: its client cannot be reached.
            if state.allocation_id and state.phase != nomad_status.UNKNOWN:
                self._pump_logs(state.allocation_id)
            if state.done:
                return state
            if state.phase == nomad_status.QUEUED:
                ended = self._still_queued(time.monotonic() - submitted)
                if ended is not None:
                    return ended
            elif state.phase == nomad_status.RUNNING:
                self._say("the step is running on Nomad")
            elif state.phase == nomad_status.FINISHING:
                self._say("the step ended; uploading /artefact")
            elif state.phase == nomad_status.STOPPING:
                self._say("Nomad is stopping the step at the run's maximum run time")
            elif state.phase == nomad_status.UNKNOWN:
                self._say("Nomad has lost contact with the node running the step")
            time.sleep(self._poll_seconds())

    def _bounded(self, state: nomad_status.StepState) -> nomad_status.StepState:
        """End the phases Nomad itself may never end: an allocation whose node is cut off, kept
        ``unknown`` until the node returns (``Disconnect.Replace`` is off), past
        ``BEDROCK_NOMAD_LOST_AFTER``; main still dying at the time limit past its kill timeout."""
        self._since = {state.phase: self._since.get(state.phase, time.monotonic())}
        waited = time.monotonic() - self._since[state.phase]
        if state.phase == nomad_status.STOPPING and waited > self._kill_wait:
            self._say(f"main did not end within {self._kill_wait:.0f}s; its last lines may be lost")
            return replace(state, phase=nomad_status.DONE)
        lost_after = settings.BEDROCK_NOMAD_LOST_AFTER
        if state.phase != nomad_status.UNKNOWN or waited <= lost_after.total_seconds():
            return state
        self.kill()  # and _finish purges: a returning node finds no job to carry on
        return nomad_status.StepState(
            nomad_status.DONE,
            exit_code=-1,
            reason="the Nomad node running the step was lost: its client did not report for "
            f"{format_duration(lost_after)} (BEDROCK_NOMAD_LOST_AFTER), so the job was stopped "
            "and purged",
            allocation_id=state.allocation_id,
        )

    def _still_queued(self, waited: float) -> nomad_status.StepState | None:
        """How a step that Nomad has not placed yet ends, or None while it may still wait."""
        stopped = self._stop.is_set()
        if not self._job_exists():  # Nomad lists no allocations for a missing job
            return nomad_status.StepState(
                nomad_status.DONE,
                exit_code=-9 if stopped else -1,
                reason="stopped"
                if stopped
                else f"the Nomad job {self.job.job_id} disappeared before it ran",
                stopped=stopped,
            )
        if stopped:
            return nomad_status.StepState(
                nomad_status.DONE, exit_code=-9, reason="stopped", stopped=True
            )
        problems = self._placement_problems()
        if problems:
            self._say(f"waiting for Nomad to place the step: {problems}")
        if waited <= settings.BEDROCK_NOMAD_QUEUE_TIMEOUT.total_seconds():
            return None
        self.kill()
        return nomad_status.StepState(
            nomad_status.DONE,
            exit_code=-1,
            reason="Nomad could not place the step within "
            f"{format_duration(settings.BEDROCK_NOMAD_QUEUE_TIMEOUT)}"
            + (f": {problems}" if problems else ""),
        )

    def _finish(self, state: nomad_status.StepState) -> None:
        self.exit_code = state.exit_code if state.exit_code is not None else -1
        self.failure_reason = state.reason
        if _purge(self.api, self.job.job_id):
            _delete_variable(self.api, self.job.variable_path)
        elif self.exit_code != 0:
            # The job may still be running: another attempt would train beside it.
            self.may_retry = False
            self.failure_reason = (
                f"{state.reason or f'exit code {self.exit_code}'}; the Nomad job "
                f"{self.job.job_id} could not be purged, so the step is not retried while "
                "it may still run (it is removed once Nomad answers again)"
            )
        self._lines.put(_END)
        self._done.set()

    @staticmethod
    def _poll_seconds() -> float:
        return float(settings.BEDROCK_NOMAD_POLL_SECONDS)

    def _job_exists(self) -> bool:
        try:
            self.api.job.get_job(self.job.job_id)
        except nomad_errors.URLNotFoundNomadException:
            return False
        except Exception:
            return True  # unreachable for a moment: the next poll asks again
        return True

    def _placement_problems(self) -> str:
        try:
            evaluations = self.api.job.get_evaluations(self.job.job_id)
        except Exception:
            return ""
        return nomad_status.placement_problems(evaluations)

    def _log_fetch(self, allocation_id: str, task: str, stream: str) -> Fetch:
        def fetch(origin: str, offset: int) -> bytes:
            response = self.api.client.stream_logs.request(
                allocation_id,
                params={
                    "task": task,
                    "type": stream,
                    "plain": False,  # the frames name the file each piece comes from
                    "follow": False,
                    "origin": origin,
                    "offset": offset,
                },
                method="get",
            )
            return response.content

        return fetch

    def _pump_logs(self, allocation_id: str, *, final: bool = False) -> None:
        for task, prefix in self.LOG_TASKS:
            for stream in ("stdout", "stderr"):
                key = (allocation_id, task, stream)
                cursor = self._cursors.setdefault(key, LogCursor())
                try:
                    data, lost = cursor.read(self._log_fetch(allocation_id, task, stream))
                except Exception as exc:  # not started yet, or the client is gone
                    logger.debug("no %s %s log yet for %s: %s", task, stream, allocation_id, exc)
                    continue
                if lost:
                    self._say(f"{task} {stream}: {lost}")
                if not data:
                    continue
                buffered = self._partial.pop(key, b"") + data
                *lines, rest = buffered.split(b"\n")
                for line in lines:
                    self._lines.put(prefix.encode() + line + b"\n")
                if rest:
                    self._partial[key] = rest
        if final:
            for (_, task, _), rest in sorted(self._partial.items()):
                prefix = dict(self.LOG_TASKS)[task]
                self._lines.put(prefix.encode() + rest + b"\n")
            self._partial.clear()
