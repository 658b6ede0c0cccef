"""The supervisor executes one run from start to end, on the machine the run's steps run on.

It is started detached from the worker (forked from it, ``bedrock.runs.detach``, or as ``bedrock
execute RUN_ID``), so a worker that dies or is restarted does not take running steps with it.
While it lives it beats a heartbeat on the run; the reconciler fails a run whose heartbeat has
stopped. It owns:

- the order of steps (dependencies first, independent ones at once) and their retries;
- the logs, captured line by line as produced, with secret values masked before they are written;
- the time limit (the run fails with the reason once its deadline passes) and stopping;
- for training, packing /artefact and publishing the model version once every step succeeded.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets as _random
import socket
import threading
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

from bedrock.accounts.models import hash_token
from bedrock.pipelines import git
from bedrock.runs import transitions
from bedrock.runs.cleanup import run_cleanup
from bedrock.runs.executors import Executor, ExecutorError, StepContext
from bedrock.runs.executors.choice import get_executor
from bedrock.runs.logmask import MASK, LogWriter  # noqa: F401 - also imported from here
from bedrock.runs.models import ACTIVE_STATUSES, Run, RunStatus, RunStep
from bedrock.runs.plan import RunPlan, StepPlan, build
from bedrock.runs.slots import machine_slot
from bedrock.runs.workspace import Workspace, log_key, log_path
from bedrock.tracking.markers import MarkerReader

logger = logging.getLogger(__name__)


@dataclass
class Outcome:
    status: str
    reason: str = ""
    exit_code: int | None = None


@dataclass
class _Control:
    stop: threading.Event = field(default_factory=threading.Event)
    deadline_passed: threading.Event = field(default_factory=threading.Event)

    @property
    def halted(self) -> bool:
        return self.stop.is_set() or self.deadline_passed.is_set()


class Supervisor:
    def __init__(self, run_id: int, executor: Executor | None = None) -> None:
        self.run_id = run_id
        self.executor = executor
        self.control = _Control()
        self.plan: RunPlan | None = None
        self.deadline: datetime | None = None
        self.step_ids: dict[str, int] = {}
        self._done = threading.Event()
        self.workspace = Workspace(run_id)

    # -- entry point -------------------------------------------------------------------------
    def execute(self) -> str | None:
        """Run the run if it is queued; returns its final status, or None if another took it."""
        if not transitions.run_claim(self.run_id, runner=f"{socket.gethostname()}:{os.getpid()}"):
            return None
        run = Run.objects.select_related("pipeline__project", "input_model_version").get(
            pk=self.run_id
        )
        self.deadline = run.deadline
        heartbeat = threading.Thread(target=self._beat, daemon=True)
        heartbeat.start()
        try:
            outcome = self._execute(run)
        except Exception as exc:  # the run must end with a reason, whatever broke
            logger.exception("run %s failed in its supervisor", self.run_id)
            outcome = Outcome(RunStatus.FAILED, f"Bedrock failed to execute the run: {exc}")
        finally:
            self._done.set()
        if self.control.stop.is_set() and outcome.status != RunStatus.SUCCEEDED:
            outcome = Outcome(RunStatus.STOPPED, transitions.STOPPED_ON_REQUEST)
        transitions.run_finish(
            self.run_id, to=outcome.status, reason=outcome.reason, exit_code=outcome.exit_code
        )
        if self.executor is not None:
            run_cleanup(self.run_id, executor=self.executor)
        self.workspace.remove()
        return outcome.status

    def _beat(self) -> None:
        while True:
            close_old_connections()
            Run.objects.filter(pk=self.run_id, status__in=list(ACTIVE_STATUSES)).update(
                heartbeat_at=timezone.now()
            )
            self._check_halted()
            if self._done.wait(settings.BEDROCK_HEARTBEAT_SECONDS):
                break
        connection.close()

    def _check_halted(self) -> bool:
        """Learn from the database whether the run was asked to stop, and from the clock whether
        its time is up; True when it must not go on."""
        status = Run.objects.filter(pk=self.run_id).values_list("status", flat=True).first()
        if status not in (RunStatus.RUNNING, RunStatus.UNKNOWN):
            self.control.stop.set()
        if self.deadline is not None and timezone.now() >= self.deadline:
            self.control.deadline_passed.set()
        return self.control.halted

    # -- the run -----------------------------------------------------------------------------
    def _execute(self, run: Run) -> Outcome:
        plan = self.plan = build(run)
        self.workspace.create()
        self._create_steps(plan)
        pipeline = run.pipeline
        from bedrock.secrets.services import git_credentials_for, secret_values_for

        declared = plan.steps[0].secret_names if plan.steps else ()
        secrets = secret_values_for(pipeline=pipeline, names=list(declared))
        missing = [name for name in declared if name not in secrets]
        if missing:
            return Outcome(
                RunStatus.FAILED, f"the secret {', '.join(missing)} has no value any more"
            )
        credentials = git_credentials_for(pipeline)
        self.executor = self.executor or get_executor()
        remote = getattr(self.executor, "remote", False)

        # A remote executor's steps fetch the input version themselves.
        input_version = (
            run.input_model_version if run.input_model_version_id and not remote else None
        )
        if input_version is not None:
            from bedrock.models.artefacts import artefact_fetch

            artefact_fetch(
                input_version.storage_key, self.workspace.artefact, sha256=input_version.sha256
            )

        token = "bdrkrun_" + _random.token_urlsafe(32)
        Run.objects.filter(pk=run.pk).update(token_hash=hash_token(token))
        outcome = self._run_steps(run, plan, secrets, token, credentials)
        if outcome.status != RunStatus.SUCCEEDED or not plan.publishes_model:
            return outcome
        if self.control.halted:
            return self._halted_outcome(plan)
        from bedrock.models.artefacts import (
            ArchiveLimitError,
            EmptyArtefactError,
            RefusedEntryError,
        )
        from bedrock.models.services import training_output_store

        if remote:
            unsent = self._collect_stages(plan)
            if unsent:
                return Outcome(
                    RunStatus.FAILED,
                    f"step {unsent!r} succeeded but uploaded no /artefact: a training run "
                    "must write its model files there (or the upload never reached Bedrock)",
                )
        try:
            version = training_output_store(run=run, directory=self.workspace.artefact)
        except EmptyArtefactError:
            return Outcome(
                RunStatus.FAILED,
                "the steps succeeded but left /artefact empty; a training run must write its "
                "model files there",
            )
        except (ArchiveLimitError, RefusedEntryError) as exc:
            # What the steps left is at fault, not Bedrock: the reason says what to change.
            return Outcome(RunStatus.FAILED, f"/artefact could not be published: {exc}")
        if version is None:
            logger.info("run %s kept its archive: %s", run.pk, run.unpublished_reason)
        else:
            logger.info("run %s published %s", run.pk, version)
        return outcome

    def _collect_stages(self, plan: RunPlan) -> str | None:
        """Gather into the workspace what remote steps uploaded; the name of a step that did not.

        Each step's upload holds what its dependencies left too (its fetch unpacked theirs
        first), so the last steps of the graph together hold the run's whole /artefact.
        """
        from bedrock.runs.stages import stages_fetch

        needed = {name for step in plan.steps for name in step.depends_on}
        last = [step.name for step in plan.steps if step.name not in needed]
        stages = list(
            RunStep.objects.filter(run_id=plan.run_id, name__in=last).order_by("position")
        )
        for stage in stages:
            if not stage.artefact_key:
                return stage.name
        stages_fetch(stages, self.workspace.artefact)
        return None

    def _create_steps(self, plan: RunPlan) -> None:
        for position, step in enumerate(plan.steps):
            row, created = RunStep.objects.get_or_create(
                run_id=plan.run_id,
                name=step.name,
                defaults={
                    "position": position,
                    "depends_on": list(step.depends_on),
                    "retry_limit": step.retry_limit,
                    "log_key": log_key(plan.run_id, step.name),
                },
            )
            self.step_ids[step.name] = row.pk
            if created:
                # A log left by a run of the same id (a database reset, say) is not this run's.
                log_path(plan.run_id, step.name).unlink(missing_ok=True)

    def _halted_outcome(self, plan: RunPlan) -> Outcome:
        if self.control.stop.is_set():
            return Outcome(RunStatus.STOPPED, transitions.STOPPED_ON_REQUEST)
        return Outcome(RunStatus.FAILED, f"exceeded the maximum run time of {plan.time_limit_text}")

    def _run_steps(self, run: Run, plan: RunPlan, secrets, token, credentials) -> Outcome:
        """The DAG loop: start each step once its dependencies succeeded, at most
        ``BEDROCK_MAX_PARALLEL_STEPS`` at once, none once the run is halted or a step failed."""
        succeeded: set[str] = set()
        pending = list(plan.steps)
        running: dict[Future, StepPlan] = {}
        failure: Outcome | None = None
        limit = max(1, min(len(plan.steps), settings.BEDROCK_MAX_PARALLEL_STEPS))
        with ThreadPoolExecutor(max_workers=limit) as pool:
            while pending or running:
                if failure is None and not self.control.halted:
                    for step in list(pending):
                        if len(running) >= limit:
                            break
                        if set(step.depends_on) <= succeeded:
                            pending.remove(step)
                            future = pool.submit(
                                self._run_step, run, step, secrets, token, credentials
                            )
                            running[future] = step
                if not running:
                    break
                done, _ = wait(
                    list(running),
                    timeout=settings.BEDROCK_SUPERVISOR_POLL_SECONDS,
                    return_when=FIRST_COMPLETED,
                )
                for future in done:
                    step = running.pop(future)
                    result = future.result()
                    if result.status == RunStatus.SUCCEEDED:
                        succeeded.add(step.name)
                    elif failure is None:
                        failure = result
        # Steps never started stay Accepted: ending the run ends them as "not run".
        if self.control.halted:
            return self._halted_outcome(plan)
        if failure is not None:
            return failure
        return Outcome(RunStatus.SUCCEEDED)

    def _run_step(self, run: Run, step: StepPlan, secrets, token, credentials) -> Outcome:
        try:
            return self._attempts(run, step, secrets, token, credentials)
        except Exception as exc:
            return self._could_not_start(run, step, exc)
        finally:
            connection.close()

    def _could_not_start(self, run: Run, step: StepPlan, exc: Exception) -> Outcome:
        """Whatever kept the step from starting (an executor's refusal, Git, or the OS refusing
        the process: an argument list too long, a NUL byte), the step ends with it."""
        if not isinstance(exc, (ExecutorError, git.GitError)):
            logger.warning("step %r of run %s could not start", step.name, run.pk, exc_info=True)
        reason = str(exc) or type(exc).__name__
        transitions.step_finish(self.step_ids[step.name], to=RunStatus.FAILED, reason=reason)
        return Outcome(RunStatus.FAILED, f"step {step.name!r} could not start: {reason}")

    def _attempts(self, run: Run, step: StepPlan, secrets, token, credentials) -> Outcome:
        step_id = self.step_ids[step.name]
        remote = getattr(self.executor, "remote", False)
        markers = MarkerReader(run.pk, step.name)
        log = LogWriter(log_path(run.pk, step.name), [*secrets.values(), token], markers.feed)
        app_dir = self.workspace.step_app(step.name)
        try:
            if not app_dir.exists() and not remote:
                git.checkout(
                    run.pipeline.git_url,
                    run.commit_sha,
                    app_dir,
                    cache_key=f"pipeline-{run.pipeline_id}",
                    credentials=credentials,
                )
            exit_code: int | None = None
            for attempt in range(1, step.max_attempts + 1):
                # Every end of the attempt is recorded before its place is given up: a step of
                # another run that takes the place must not overlap this one, even in the record.
                with self._place(remote) as placed:
                    if not placed or not self._begin(step_id, attempt):
                        return self._halt_step(step_id, exit_code, began=attempt > 1)
                    ended, exit_code = self._attempt_once(
                        run, step, secrets, token, app_dir, attempt, log
                    )
                if ended is not None:
                    return ended
            raise AssertionError("the last attempt always ends the step")  # pragma: no cover
        finally:
            markers.flush()
            log.write(markers.report())
            log.close()

    def _attempt_once(
        self, run, step, secrets, token, app_dir, attempt, log
    ) -> tuple[Outcome | None, int | None]:
        """Run one attempt and record how the step ended, if it did (None when another attempt
        follows), with the attempt's exit code."""
        step_id = self.step_ids[step.name]
        if attempt > 1 and getattr(self.executor, "remote", False):
            # Uploads of the attempt before are refused from now on; drop what it sent.
            from bedrock.runs.stages import stage_forget

            stage_forget(step_id)
        if step.max_attempts > 1:
            log.write(f"--- attempt {attempt} of {step.max_attempts} ---\n")
        try:
            exit_code, detail, may_retry, killed = self._attempt(
                run, step, secrets, token, app_dir, attempt, log
            )
        except Exception as exc:
            return self._could_not_start(run, step, exc), None
        if killed:  # whatever its exit code, it did not finish its work
            return self._halt_step(step_id, exit_code, began=True), exit_code
        if exit_code == 0:
            transitions.step_finish(step_id, to=RunStatus.SUCCEEDED, exit_code=0)
            return Outcome(RunStatus.SUCCEEDED), exit_code
        if self.control.halted:
            return self._halt_step(step_id, exit_code, began=True), exit_code
        if attempt < step.max_attempts and may_retry:
            log.write(f"--- {detail or f'exit code {exit_code}'}; retrying ---\n")
            return None, exit_code
        if attempt < step.max_attempts:
            log.write(f"--- {detail}; not retrying ---\n")
        if detail:
            reason = f"step {step.name!r} failed: {detail}"
        else:
            reason = f"step {step.name!r} failed with exit code {exit_code}"
        if attempt > 1:
            reason += f" after {attempt} attempts"
        transitions.step_finish(step_id, to=RunStatus.FAILED, exit_code=exit_code, reason=reason)
        return Outcome(RunStatus.FAILED, reason, exit_code), exit_code

    def _place(self, remote: bool) -> contextlib.AbstractContextManager[bool]:
        """A place among the machine's steps running at once; remote steps use none here."""
        if remote:
            return contextlib.nullcontext(True)
        return machine_slot(give_up=self._check_halted)

    def _begin(self, step_id: int, attempt: int) -> bool:
        """Mark the attempt started, unless the run stopped meanwhile (then it does not start)."""
        if self._check_halted():
            return False
        if attempt == 1:
            began = transitions.step_begin(step_id)
        else:
            began = transitions.step_retry(step_id, attempt=attempt)
        if not began:
            self.control.stop.set()  # the run is no longer Running: it was asked to stop
        return began

    def _halt_step(self, step_id: int, exit_code: int | None, *, began: bool) -> Outcome:
        """End a step the run's halt interrupted; one that never began is left for the run's end
        to mark "not run"."""
        halted = self._halted_outcome_for_step()
        if began:
            transitions.step_finish(
                step_id, to=halted.status, exit_code=exit_code, reason=halted.reason
            )
        return halted

    def _halted_outcome_for_step(self) -> Outcome:
        if self.control.stop.is_set():
            return Outcome(RunStatus.STOPPED, transitions.STOPPED_ON_REQUEST)
        return Outcome(RunStatus.FAILED, "killed at the run's time limit")

    def _attempt(
        self, run, step, secrets, token, app_dir, attempt, log
    ) -> tuple[int | None, str, bool, bool]:
        """The attempt's exit code, the executor's account of a failure when it has one,
        whether another attempt may start (not while this one may still be running remotely),
        and whether the run's halt killed it."""
        context = StepContext(
            run_id=run.pk,
            app_dir=app_dir,
            artefact_dir=self.workspace.artefact,
            step_dir=self.workspace.step_dir(step.name),
            environment={**step.environment, "BEDROCK_API_TOKEN": token},
            secrets=secrets,
            attempt=attempt,
            plan=self.plan,
            deadline=run.deadline,
        )
        prepare = getattr(self.executor, "prepare", None)
        if prepare is not None:
            # The slow part (a virtual environment, an image) comes before anything of the
            # step runs: a stop that arrives meanwhile keeps its command from starting at all.
            prepare(step, context)
            if self._check_halted():
                log.write(f"--- {self._halted_outcome_for_step().reason}: not started ---\n")
                return None, "", True, True
        assert self.executor is not None  # chosen by run() before the first step
        handle = self.executor.start(step, context)

        def pump_output() -> None:
            for line in handle.output():
                log.write(line)

        pump = threading.Thread(target=pump_output, daemon=True)
        pump.start()
        # Starting may take long (a virtual environment, an image): the run may have been
        # stopped meanwhile, so look again now rather than at the next heartbeat.
        self._check_halted()
        exit_code = None
        ended_by = ""
        while exit_code is None:
            if self.control.halted:
                ended_by = handle.kill(grace=settings.BEDROCK_STOP_GRACE.total_seconds())
                exit_code = handle.wait(30)
                exit_code = -9 if exit_code is None else exit_code
                break
            exit_code = handle.wait(settings.BEDROCK_SUPERVISOR_POLL_SECONDS)
        pump.join(timeout=30)
        if ended_by:
            log.write(f"--- {self._halted_outcome_for_step().reason}: {ended_by} ---\n")
        detail = getattr(handle, "failure_reason", "") if exit_code != 0 else ""
        return exit_code, detail, getattr(handle, "may_retry", True), bool(ended_by)
