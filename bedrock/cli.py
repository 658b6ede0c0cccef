"""The ``bedrock`` console script: Django's management commands under Bedrock's settings.

``bedrock migrate`` and ``python manage.py migrate`` are the same command.
"""

from __future__ import annotations

import os
import secrets
import sys


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bedrock.settings")
    from django.core.management import execute_from_command_line

    argv = list(sys.argv if argv is None else argv)
    argv[0] = "bedrock"
    if argv[1:2] == ["hook"]:
        # The artefact hooks run inside jobs and use no key: throwaway ones keep the settings
        # from generating key files in BEDROCK_HOME, which a job's container may not write.
        os.environ.setdefault("BEDROCK_DJANGO_SECRET_KEY", secrets.token_urlsafe(50))
        os.environ.setdefault("BEDROCK_SECRET_KEYS", _throwaway_fernet_key())
    execute_from_command_line(argv)


def _throwaway_fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


if __name__ == "__main__":
    main()
