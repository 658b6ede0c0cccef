from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from bedrock.checks import BEDROCK_CHECK_TAGS
from bedrock.runs.supervisor import Supervisor


class Command(BaseCommand):
    help = "Execute a queued run (started by Bedrock's worker; not usually run by hand)."
    # Bedrock's own checks (settings, executors, storage) but not Django's URL and model checks,
    # which import every view and the whole GraphQL schema: most of a second before the run.
    requires_system_checks = BEDROCK_CHECK_TAGS

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("run_id", type=int)

    def handle(self, *args: Any, run_id: int, **options: Any) -> None:
        status = Supervisor(run_id).execute()
        self.stdout.write(f"run {run_id}: {status or 'not queued; nothing to do'}")
