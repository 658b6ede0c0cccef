from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from bedrock.events.services import webhook_secrets_rotate
from bedrock.secrets.services import secrets_rotate


class Command(BaseCommand):
    help = (
        "Re-encrypt every secret and webhook signing secret with the newest key in "
        "BEDROCK_SECRET_KEYS. "
        "Run it after prepending a new key, before removing an old one."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        count = secrets_rotate() + webhook_secrets_rotate()
        self.stdout.write(f"Re-encrypted {count} secret(s) with the newest key.")
