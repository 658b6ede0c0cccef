from __future__ import annotations

import os
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from bedrock.runs.hooks import HookConfig, HookError, hook_fetch, hook_upload


class Command(BaseCommand):
    help = (
        "The artefact hooks of a Nomad step job (run in the hook image, not by hand): "
        "`fetch` writes the run's source and the step's input artefacts into BEDROCK_HOOK_DIR, "
        "`upload` sends the step's artefact when its main task exited 0. They use the run's "
        "token over HTTP and never open the database; see bedrock.runs.hooks for the environment."
    )
    # Inside a job there is no database: no checks, no migration check.
    requires_system_checks: list[str] = []
    requires_migrations_checks = False

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=["fetch", "upload"])

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        def say(line: str) -> None:
            self.stdout.write(line)
            self.stdout.flush()  # Nomad's log shows progress as it happens

        try:
            config = HookConfig.from_environment(os.environ)
            if action == "fetch":
                hook_fetch(config, say)
            else:
                hook_upload(config, say)
        except HookError as exc:
            raise CommandError(f"bedrock hook {action}: {exc}") from None
