"""`bedrock nomad render FILE`: the Nomad job bodies a run of a bedrock.hcl would submit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from bedrock.nomad.images import UnsuitableImage
from bedrock.nomad.jobs import render_plan
from bedrock.pipelines import spec
from bedrock.runs.plan import build_plan
from bedrock.runs.services import merge_parameters

STANZAS = ("train", "batch_score")


class Command(BaseCommand):
    help = (
        "Nomad tools. `render FILE [--stanza train|batch_score]` prints, as JSON, the job bodies "
        "(POST /v1/job/<id>) a run of that bedrock.hcl would submit, one per step, without "
        "contacting Nomad. Secret values are never in them: only the names a template reads."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        commands = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        render = commands.add_parser("render", help="print the job bodies of a run of FILE")
        render.add_argument("file", metavar="FILE", help="a bedrock.hcl file")
        render.add_argument(
            "--stanza",
            choices=STANZAS,
            help="the stanza to run (default: train if the file has one, else batch_score)",
        )
        render.add_argument(
            "--param",
            action="append",
            default=[],
            metavar="K=V",
            help="override a parameter (repeatable)",
        )
        render.add_argument(
            "--model-version",
            type=int,
            metavar="ID",
            help="the model version a batch scoring run fetches (default: 1)",
        )
        render.add_argument(
            "--run-id", type=int, default=1, metavar="N", help="the run id to render for"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["file"])
        try:
            text = path.read_text(encoding="utf-8-sig")
        except OSError as exc:
            raise CommandError(f"{path}: cannot read the file: {exc.strerror or exc}") from None
        try:
            loaded = spec.load(text, filename=str(path))
        except spec.SpecError as exc:
            for problem in exc.problems:
                self.stderr.write(problem.format(str(path)))
            raise SystemExit(1) from None
        name = options["stanza"] or next((s for s in STANZAS if loaded.stanza(s)), None)
        stanza = loaded.stanza(name) if name else None
        if stanza is None:
            raise CommandError(f"{path}: the file has no {name or 'train or batch_score'} stanza")
        overrides = {}
        for item in options["param"]:
            key, sep, value = item.partition("=")
            if not sep:
                raise CommandError(f"--param {item!r}: write it as NAME=VALUE")
            overrides[key] = value
        try:
            parameters = merge_parameters(stanza.parameters, overrides)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        scoring = stanza.name == "batch_score"
        plan = build_plan(
            stanza,
            run_id=options["run_id"],
            run_number=1,
            pipeline_id=1,
            project_id=1,
            parameters=parameters,
            input_model_version_id=(options["model_version"] or 1) if scoring else None,
            time_limit=settings.BEDROCK_DEFAULT_MAX_RUN_TIME,
            publishes_model=not scoring,
        )
        try:
            bodies = [job.body for job in render_plan(plan)]
        except UnsuitableImage as exc:
            raise CommandError(f"{path}: {exc}") from None
        self.stdout.write(json.dumps(bodies, indent=2, sort_keys=False))
