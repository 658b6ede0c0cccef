from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from bedrock.actors import SYSTEM
from bedrock.checks import BEDROCK_CHECK_TAGS
from bedrock.pipelines.models import Pipeline
from bedrock.runs.models import TERMINAL_STATUSES, Run, RunStatus, Trigger
from bedrock.runs.services import run_create, run_submit
from bedrock.runs.stepapi import api_answers, api_for_steps
from bedrock.runs.workspace import log_path, read_log, wake_path
from bedrock.transient import retry_transient


def find_pipeline(name: str) -> Pipeline:
    """A pipeline by id, ``name`` or ``project/name``."""
    pipelines = Pipeline.objects.select_related("project").filter(archived_at__isnull=True)
    if name.isdigit():
        found = pipelines.filter(pk=int(name))
    elif "/" in name:
        project, _, pipeline = name.partition("/")
        found = pipelines.filter(project__name=project, name=pipeline)
    else:
        found = pipelines.filter(name=name)
    matches = list(found[:2])
    if not matches:
        raise CommandError(f"No active pipeline {name!r}. Name it as PROJECT/PIPELINE or by id.")
    if len(matches) > 1:
        raise CommandError(f"{name!r} names pipelines in several projects; use PROJECT/PIPELINE.")
    return matches[0]


def parse_params(items: list[str]) -> dict[str, str]:
    params = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise CommandError(f"--param {item!r}: expected NAME=VALUE.")
        params[name] = value
    return params


def follow(
    run: Run, write: Callable[[str], None], *, poll: float = 1.0, glance: float = 0.02
) -> Run:
    """Print step status changes and log lines until the run ends.

    Between looks at the database it stats, every ``glance`` seconds, the run's wake file and
    its steps' logs, and looks again as soon as one changed (or after ``poll`` seconds anyway:
    a change made where the wake file is not, another machine's, is seen too). A database that
    is locked or unreachable for a moment does not end the following: the run goes on without
    its follower, whose job is to report how it really ended.
    """
    offsets: dict[str, int] = {}
    seen: dict[str, str] = {}
    reported: dict[str, str] = {}

    def report_status() -> None:
        if reported.get("status") != run.status:
            reported["status"] = run.status
            write(f"run {run.number}: {run.status}")

    def look() -> None:
        # Repeatable: what was printed is remembered, so a retry prints nothing twice.
        run.refresh_from_db()
        # How the run ended comes last, after the steps' last lines, however fast they came.
        ended = run.status in TERMINAL_STATUSES
        if not ended:
            report_status()
        for step in run.steps.all():
            if seen.get(step.name) != step.status:
                seen[step.name] = step.status
                write(f"step {step.name}: {step.status}")
            text, offsets[step.name] = read_log(step.log_key, offsets.get(step.name, 0))
            for line in text.splitlines():
                write(f"[{step.name}] {line}")
        if ended:
            report_status()

    while True:
        before = _changes(run.pk, seen)
        retry_transient(look)
        if run.status in TERMINAL_STATUSES:
            return run
        _wait_for_change(run.pk, seen, before, poll=poll, glance=glance)


def _changes(run_id: int, steps: Iterable[str]) -> tuple[tuple[int, int], ...]:
    """The sizes and modification times of the run's wake file and its steps' logs."""
    found = []
    for path in (wake_path(run_id), *(log_path(run_id, name) for name in steps)):
        try:
            stat = path.stat()
        except OSError:
            found.append((-1, 0))
        else:
            found.append((stat.st_size, stat.st_mtime_ns))
    return tuple(found)


def _wait_for_change(
    run_id: int, steps: Iterable[str], before: tuple, *, poll: float, glance: float
) -> None:
    # Taken before the look, so a change made during it wakes the next wait at once.
    deadline = time.monotonic() + poll
    names = list(steps)
    while time.monotonic() < deadline:
        if _changes(run_id, names) != before:
            return
        time.sleep(glance)


class Command(BaseCommand):
    help = (
        "Start a run of PIPELINE; with --wait, follow its steps and logs and exit with its outcome."
    )
    # Bedrock's own checks (settings, executors, storage) but not Django's URL and model checks,
    # which import every view and the whole GraphQL schema: most of a second before the run.
    requires_system_checks = BEDROCK_CHECK_TAGS

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("pipeline", help="PROJECT/PIPELINE, PIPELINE or an id")
        parser.add_argument(
            "--ref", help="branch, tag or commit SHA (default: the pipeline's branch)"
        )
        parser.add_argument(
            "--param", action="append", default=[], metavar="K=V", help="override a parameter"
        )
        parser.add_argument("--model-version", type=int, help="model version id (batch scoring)")
        parser.add_argument(
            "--model-alias",
            metavar="ALIAS",
            help="model alias, MODEL@ALIAS or an alias one model of the project has (batch "
            "scoring); the run keeps the version it names now",
        )
        parser.add_argument("--wait", action="store_true", help="follow the run until it ends")

    def _api_for_steps(self, *, wait: bool) -> contextlib.AbstractContextManager[object]:
        """Steps install Bedrock's client from the API's package index and log to the API: when
        nothing answers at BEDROCK_API_DOMAIN, serve it here while the run is followed."""
        if api_answers(settings.BEDROCK_API_DOMAIN):
            return contextlib.nullcontext()
        if wait:
            return api_for_steps(self.stdout.write, force=True)
        self.stderr.write(
            f"Nothing answers at BEDROCK_API_DOMAIN ({settings.BEDROCK_API_DOMAIN}): steps that "
            "install Bedrock's client or log metrics need the server (`bedrock up`), or --wait."
        )
        return contextlib.nullcontext()

    def handle(self, *args: Any, **options: Any) -> None:
        pipeline = find_pipeline(options["pipeline"])
        try:
            run = run_create(
                actor=SYSTEM,
                pipeline=pipeline,
                ref=options["ref"],
                parameters=parse_params(options["param"]),
                model_version_id=options["model_version"],
                trigger=Trigger.CLI,
                model_alias=options["model_alias"],
            )
        except (ValidationError, PermissionDenied) as exc:
            raise CommandError("; ".join(getattr(exc, "messages", [str(exc)]))) from exc
        self.stdout.write(
            f"run {run.number} of {pipeline} (id {run.pk}): {run.status}"
            + (f" at {run.commit_sha[:10]}" if run.commit_sha else "")
            + (
                f", scoring with {run.input_model_alias} → v{run.input_model_version.number}"
                if run.input_model_alias and run.input_model_version
                else ""
            )
        )
        if run.status == RunStatus.REJECTED:
            self.stderr.write(f"rejected: {run.failure_reason}")
            sys.exit(1)
        with self._api_for_steps(wait=options["wait"]):
            # Submit now rather than wait for a worker; if a worker gets there first, this is a
            # no-op.
            retry_transient(lambda: run_submit(run_id=run.pk))
            if not options["wait"]:
                return
            run = follow(run, self.stdout.write)
        if run.failure_reason:
            self.stderr.write(f"run {run.number} {run.status.lower()}: {run.failure_reason}")
        sys.exit(0 if run.status == RunStatus.SUCCEEDED else 1)
