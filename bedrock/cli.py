"""The ``bedrock`` console script: Django's management commands under Bedrock's settings.

``bedrock migrate`` and ``python manage.py migrate`` are the same command.
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bedrock.settings")
    from django.core.management import execute_from_command_line

    argv = list(sys.argv if argv is None else argv)
    argv[0] = "bedrock"
    execute_from_command_line(argv)


if __name__ == "__main__":
    main()
