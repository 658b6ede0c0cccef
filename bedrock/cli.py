"""The ``bedrock`` console script: Django's management commands under Bedrock's settings.

``bedrock migrate`` and ``python manage.py migrate`` are the same command.

``django.setup()`` imports every installed app, strawberry-django's GraphQL machinery among them,
which is most of a second. ``bedrock --help``, ``bedrock validate`` and ``bedrock artefact`` use
no model and no app, so they run before it, importing only what they use: they are the commands
people run by hand and in CI loops, where that second is most of the time they take.
"""

from __future__ import annotations

import os
import secrets
import sys

# Commands that touch no model, no database and no app registry, and the app that has each.
STANDALONE_COMMANDS = {"artefact": "bedrock.models", "validate": "bedrock.pipelines"}
_HELP_ARGUMENTS = (["--help"], ["-h"], ["help"])


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bedrock.settings")
    argv = list(sys.argv if argv is None else argv)
    argv[0] = "bedrock"
    if argv[1:2] == ["hook"]:
        # The artefact hooks run inside jobs and use no key: throwaway ones keep the settings
        # from generating key files in BEDROCK_HOME, which a job's container may not write.
        os.environ.setdefault("BEDROCK_DJANGO_SECRET_KEY", secrets.token_urlsafe(50))
        os.environ.setdefault("BEDROCK_SECRET_KEYS", _throwaway_fernet_key())
    if _run_without_setup(argv):
        return
    from django.core.management import execute_from_command_line

    execute_from_command_line(argv)


def _run_without_setup(argv: list[str]) -> bool:
    """Run ``argv`` without ``django.setup()`` if it is a standalone command; False if not."""
    if not _may_skip_setup(argv):
        return False
    _configure_logging()
    if argv[1:] in _HELP_ARGUMENTS:
        sys.stdout.write(main_help_text(argv[0]) + "\n")
        return True
    import importlib

    name = argv[1]
    module = importlib.import_module(f"{STANDALONE_COMMANDS[name]}.management.commands.{name}")
    module.Command().run_from_argv(argv)
    return True


def _configure_logging() -> None:
    """Bedrock's ``LOGGING``, as django.setup() would apply it, less Django's own defaults:
    those only route the ``django.*`` loggers these commands never reach, and building their
    admin-mail handler imports Django's views and templates."""
    import logging.config

    from django.conf import settings

    if settings.LOGGING:
        logging.config.dictConfig(settings.LOGGING)


def _may_skip_setup(argv: list[str]) -> bool:
    # Django's own path reports broken settings, applies --settings and --pythonpath before
    # reading them, and answers shell completion: leave all of those to it.
    if "DJANGO_AUTO_COMPLETE" in os.environ:
        return False
    subcommand = argv[1] if len(argv) > 1 else ""
    if subcommand not in STANDALONE_COMMANDS and argv[1:] not in _HELP_ARGUMENTS:
        return False
    if any(arg.startswith(("--settings", "--pythonpath")) for arg in argv[2:]):
        return False
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    try:
        settings.INSTALLED_APPS  # noqa: B018 - loads the settings module
    except (ImproperlyConfigured, ImportError):
        return False
    if settings.LOGGING_CONFIG != "logging.config.dictConfig":
        return False
    if _app_command_paths() is None:
        return False
    # Another installed app's command of the same name would be the one Django runs.
    return subcommand not in STANDALONE_COMMANDS or (
        _commands().get(subcommand) == STANDALONE_COMMANDS[subcommand]
    )


def main_help_text(prog_name: str) -> str:
    """``ManagementUtility.main_help_text()``, with the apps' commands found without importing
    the apps: the same ``[app]`` sections and command names, in the same order."""
    from collections import defaultdict

    from django.core.management.color import color_style

    commands: dict[str, list[str]] = defaultdict(list)
    for name, app in _commands().items():
        commands["django" if app == "django.core" else app.rpartition(".")[-1]].append(name)
    style = color_style()
    usage = [
        "",
        f"Type '{prog_name} help <subcommand>' for help on a specific subcommand.",
        "",
        "Available subcommands:",
    ]
    for app in sorted(commands):
        usage += ["", style.NOTICE(f"[{app}]")]
        usage += [f"    {name}" for name in sorted(commands[app])]
    return "\n".join(usage)


def _commands() -> dict[str, str]:
    # As django.core.management.get_commands(): later apps' commands give way to earlier ones'.
    import django.core.management
    from django.core.management import find_commands

    core = os.path.dirname(django.core.management.__file__)
    commands = {name: "django.core" for name in find_commands(core)}
    for app, path in reversed(_app_command_paths() or []):
        commands.update({name: app for name in find_commands(path)})
    return commands


def _app_command_paths() -> list[tuple[str, str]] | None:
    """Each installed app's name and ``management`` directory, found by the import system
    without running the apps' code; None if an entry is not a plain package (an AppConfig's
    dotted path, say), whose name only importing it would tell."""
    import importlib.util

    from django.conf import settings

    paths = []
    for app in settings.INSTALLED_APPS:
        try:
            spec = importlib.util.find_spec(app)
        except ImportError:
            return None
        if spec is None or not spec.submodule_search_locations:
            return None
        package = next(iter(spec.submodule_search_locations))
        paths.append((app, os.path.join(package, "management")))
    return paths


def _throwaway_fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


if __name__ == "__main__":
    main()
