from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from bedrock.runs.examples import example_load


class Command(BaseCommand):
    help = (
        "Set up and run Bedrock on this machine: migrate, create an administrator (its password "
        "is printed once), load the example pipelines, then serve the UI and API and run the "
        "worker until Ctrl-C."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("addrport", nargs="?", default="127.0.0.1:8000")
        parser.add_argument("--no-worker", action="store_true", help="Serve without the worker.")

    def handle(self, *args: Any, addrport: str, no_worker: bool, **options: Any) -> None:
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
        self._announce_api_address(addrport)
        worker = None if no_worker else Worker(self.stdout.write)
        try:
            if worker is not None:
                worker.start()
            self.stdout.write(f"Serving Bedrock at http://{addrport}/ (Ctrl-C stops it).")
            call_command("runserver", addrport, use_reloader=False, insecure_serving=True)
        except KeyboardInterrupt:
            pass
        finally:
            if worker is not None:
                worker.stop()

    def _announce_api_address(self, addrport: str) -> None:
        """Tell steps the address served here, unless BEDROCK_API_DOMAIN says otherwise.

        The worker and the supervisors it starts are processes of their own and read their
        settings from the environment they inherit, so the address travels there.
        """
        if os.environ.get("BEDROCK_API_DOMAIN", "").strip():
            return
        address = api_address(addrport)
        os.environ["BEDROCK_API_DOMAIN"] = settings.BEDROCK_API_DOMAIN = address
        self.stdout.write(f"Steps reach the API at {address} (BEDROCK_API_DOMAIN overrides it).")

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


def api_address(addrport: str) -> str:
    """The URL at which a step on this machine reaches the server ``runserver addrport`` serves.

    ``addrport`` is runserver's: ``PORT``, ``ADDR:PORT`` or ``[IPv6]:PORT``. A server bound to every
    address is reached over the loopback address.
    """
    host, sep, port = addrport.rpartition(":")
    if not sep:
        host, port = "", addrport
    host = host.removeprefix("[").removesuffix("]")
    if host in ("", "0", "0.0.0.0"):  # noqa: S104 - read, not bound
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _ending(returncode: int) -> str:
    if returncode < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-returncode).name}"
    return f"exited with code {returncode}"


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


class Worker:
    """The qcluster process beside the server, started again when it dies.

    Restarts back off (1 s, doubling up to ``MAX_DELAY``) while the worker keeps dying soon
    after its start, so a worker that cannot run does not spin; one that ran ``STABLE`` long
    starts again after a second.
    """

    MAX_DELAY = 60.0
    STABLE = 60.0
    POLL = 0.5

    def __init__(self, write: Callable[[str], None]) -> None:
        self._write = write
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._process: subprocess.Popen | None = None
        self._started_at = 0.0
        self._delay = 1.0

    def start(self) -> None:
        self._spawn()
        threading.Thread(target=self._watch, name="worker-watch", daemon=True).start()

    def _spawn(self) -> None:
        with self._lock:
            if self._stopping.is_set():
                return
            # A session of its own: the pool of processes django-q2 forks goes with it as one
            # group, and Ctrl-C reaches the worker only through stop().
            self._process = subprocess.Popen(
                [sys.executable, "-m", "bedrock.cli", "qcluster"], start_new_session=True
            )
            self._started_at = time.monotonic()

    def _watch(self) -> None:
        while not self._stopping.wait(self.POLL):
            process = self._process
            if process is None or process.poll() is None:
                continue
            # Its forked processes may outlive it and keep taking tasks; end them first.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            if self._stopping.is_set():
                return
            if time.monotonic() - self._started_at >= self.STABLE:
                self._delay = 1.0
            self._write(
                f"The worker (pid {process.pid}) {_ending(process.returncode)}; "
                f"starting it again in {self._delay:g} s."
            )
            if self._stopping.wait(self._delay):
                return
            self._delay = min(self._delay * 2, self.MAX_DELAY)
            self._spawn()

    def stop(self, timeout: float = 10) -> None:
        """Stop the worker, killing it if it does not exit: qcluster can hang on SIGTERM."""
        with self._lock:
            self._stopping.set()
            process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
