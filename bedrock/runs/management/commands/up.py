from __future__ import annotations

import secrets
import signal
import subprocess
import sys

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import transaction

from bedrock.runs.examples import example_load


class Command(BaseCommand):
    help = (
        "Set up and run Bedrock on this machine: migrate, create an administrator (its password "
        "is printed once), load the example pipelines, then serve the UI and API and run the "
        "worker until Ctrl-C."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("addrport", nargs="?", default="127.0.0.1:8000")
        parser.add_argument("--no-worker", action="store_true", help="Serve without the worker.")

    def handle(self, *args, addrport: str, no_worker: bool, **options) -> None:
        call_command("migrate", interactive=False, verbosity=0)
        self.stdout.write("Database is up to date.")
        self._ensure_administrator()
        example = example_load()
        self.stdout.write(
            f"Loaded the example project {example.project.name!r}: pipelines "
            f"{example.training.name!r} (training) and {example.scoring.name!r} (batch scoring), "
            f"from the Git repository {example.training.git_url}."
        )

        # Ctrl-C and a service manager's SIGTERM both end in the same shutdown, which stops the
        # worker too. Set explicitly: a process started in the background of a shell inherits
        # SIGINT ignored, and SIGTERM's default would leave the worker behind.
        for stop_signal in (signal.SIGINT, signal.SIGTERM):
            signal.signal(stop_signal, _interrupt)
        worker = None
        if not no_worker:
            # The worker is a process of its own: django-q2 forks, and runserver must stay in front.
            worker = subprocess.Popen([sys.executable, "-m", "bedrock.cli", "qcluster"])
        try:
            self.stdout.write(f"Serving Bedrock at http://{addrport}/ (Ctrl-C stops it).")
            call_command("runserver", addrport, use_reloader=False, insecure_serving=True)
        except KeyboardInterrupt:
            pass
        finally:
            if worker is not None:
                _stop(worker)

    def _ensure_administrator(self) -> None:
        User = get_user_model()
        with transaction.atomic():
            if User.objects.filter(is_superuser=True).exists():
                self.stdout.write("An administrator exists already; log in as them.")
                return
            password = secrets.token_urlsafe(12)
            User.objects.create_superuser(username="admin", email="", password=password)
        self.stdout.write(
            self.style.SUCCESS(
                f"Created the administrator 'admin' with password: {password}\n"
                "This password is shown once. Change it after logging in."
            )
        )


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _stop(process: subprocess.Popen, timeout: float = 10) -> None:
    """Stop the worker, killing it if it does not exit: qcluster can hang on SIGTERM."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
