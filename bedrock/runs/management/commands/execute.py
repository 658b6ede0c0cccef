from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from bedrock.runs.supervisor import Supervisor


class Command(BaseCommand):
    help = "Execute a queued run (started by Bedrock's worker; not usually run by hand)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("run_id", type=int)

    def handle(self, *args: Any, run_id: int, **options: Any) -> None:
        status = Supervisor(run_id).execute()
        self.stdout.write(f"run {run_id}: {status or 'not queued; nothing to do'}")
