"""``export_schema SCHEMA --path FILE``: strawberry-django's command, without its app.

strawberry-django is not an installed app (importing it at ``django.setup()`` is half a second
every command and every supervisor would pay); its command lives on here, unchanged, for CI's
``schema.graphql`` check.
"""

from __future__ import annotations

from strawberry_django.management.commands.export_schema import Command as _ExportSchema


class Command(_ExportSchema):
    pass
