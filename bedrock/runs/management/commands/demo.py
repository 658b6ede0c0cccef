from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Callable
from typing import Any, NoReturn

from django.core.files.storage import default_storage
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser
from django.db import DatabaseError, connection

from bedrock.actors import SYSTEM
from bedrock.pipelines.models import Pipeline
from bedrock.runs.examples import example_load
from bedrock.runs.management.commands.run import follow
from bedrock.runs.models import Run, RunStatus, Trigger
from bedrock.runs.services import run_create, run_submit, runs_reconcile
from bedrock.runs.stepapi import api_for_steps
from bedrock.runs.workspace import read_log
from bedrock.transient import retry_transient


class Command(BaseCommand):
    help = (
        "Train the example model, publish its version, batch-score with it, and print the model "
        "version, the scoring result and where the archive is. Exit 0 when all succeeded."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--quiet", action="store_true", help="do not print step logs")

    def handle(self, *args: Any, quiet: bool, **options: Any) -> None:
        call_command("migrate", interactive=False, verbosity=0)
        with api_for_steps(self.stdout.write):
            self._demo(quiet)

    def _demo(self, quiet: bool) -> None:
        example = example_load()
        write = (lambda line: None) if quiet else self.stdout.write

        training = self._run(example.training, write)
        if training.status != RunStatus.SUCCEEDED:
            self._fail(training)
        version = retry_transient(lambda: training.output_model_version)
        try:
            location = default_storage.path(version.storage_key)
        except NotImplementedError:
            location = version.storage_key
        self.stdout.write(
            f"model version: {version} (id {version.pk}), {version.file_count} files, "
            f"{version.size} bytes, sha256 {version.sha256}"
        )
        self.stdout.write(f"archive: {location}")

        scoring = self._run(example.scoring, write, model_version_id=version.pk)
        if scoring.status != RunStatus.SUCCEEDED:
            self._fail(scoring)
        step = retry_transient(lambda: scoring.steps.order_by("-position").first())
        assert step is not None  # a run that succeeded ran at least one step
        text, _ = read_log(step.log_key)
        result = [line for line in text.splitlines() if line.startswith("scored ")]
        self.stdout.write(f"scoring result: {result[-1] if result else text.strip()[-200:]}")

    def _run(self, pipeline: Pipeline, write: Callable[[str], None], **kwargs: Any) -> Run:
        run = run_create(actor=SYSTEM, pipeline=pipeline, trigger=Trigger.CLI, **kwargs)
        self.stdout.write(f"{pipeline}: run {run.number} {run.status} at {run.commit_sha[:10]}")
        if run.status == RunStatus.REJECTED:
            return run
        retry_transient(lambda: run_submit(run_id=run.pk))
        # No worker may be running: repair as it would (a supervisor that could not start is
        # started again, then its run fails), so the demo never waits for ever.
        done = threading.Event()
        threading.Thread(target=_reconcile_until, args=(done,), daemon=True).start()
        try:
            run = follow(run, write)
        finally:
            done.set()
        self.stdout.write(f"{pipeline}: run {run.number} {run.status}")
        return run

    def _fail(self, run: Run) -> NoReturn:
        self.stderr.write(f"{run.pipeline}: run {run.number} {run.status}: {run.failure_reason}")
        sys.exit(1)


def _reconcile_until(done: threading.Event, every: float = 15.0) -> None:
    try:
        while not done.wait(every):
            with contextlib.suppress(DatabaseError):  # a locked database: try at the next turn
                runs_reconcile()
    finally:
        connection.close()
