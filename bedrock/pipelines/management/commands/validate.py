"""`bedrock validate FILE…`: check bedrock.hcl files the way a run would read them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from bedrock.pipelines import spec


class Command(BaseCommand):
    help = (
        "Check bedrock.hcl files. Prints 'FILE: OK' for a valid file, and every error and "
        "warning as FILE:LINE:COLUMN: key.path: message. Exits 1 if any file has an error."
    )
    # Checking a file needs neither the database nor the deployment's settings to be sound.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("files", nargs="+", metavar="FILE", help="bedrock.hcl files to check")

    def handle(self, *args: Any, **options: Any) -> None:
        failed = False
        for name in options["files"]:
            try:
                text = Path(name).read_text(encoding="utf-8-sig")
            except OSError as exc:
                self.stdout.write(f"{name}: cannot read the file: {exc.strerror or exc}")
                failed = True
                continue
            except UnicodeDecodeError as exc:
                self.stdout.write(f"{name}: not UTF-8 text (byte {exc.start}): {exc.reason}")
                failed = True
                continue
            problems = spec.check(text, filename=name)
            for problem in problems:
                self.stdout.write(problem.format(name))
            if any(problem.is_error for problem in problems):
                failed = True
            else:
                self.stdout.write(f"{name}: OK")
        if failed:
            # A plain exit status, so the output stays in the FILE:LINE:COLUMN format that
            # editors and CI annotate; CommandError would add its own "CommandError:" line.
            raise SystemExit(1)
