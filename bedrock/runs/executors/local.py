"""The embedded executor: each step is a process on this machine.

With bubblewrap, the step sees its checkout at /app and the run's artefact directory at
/artefact, exactly as in a container, and the host's filesystem is left as it is (the sandbox's
root is a tmpfs with the host's top-level directories bound into it). Without bubblewrap the step
runs in its checkout, and ``BEDROCK_APP_DIR`` / ``BEDROCK_ARTEFACT_DIR`` say where things are.

Every step gets a fresh virtual environment, so ``pip install`` in a step never changes the host's
Python, and a minimal environment, so the server's own variables (database URL, keys) never leak
into user code.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings

from bedrock.runs.executors.base import ExecutorError, StepContext
from bedrock.runs.plan import StepPlan
from bedrock.runs.workspace import Workspace

_HIDDEN_ROOT_ENTRIES = {"app", "artefact", "proc", "dev"}


def bubblewrap() -> str | None:
    if not getattr(settings, "BEDROCK_LOCAL_SANDBOX", True):
        return None
    return shutil.which("bwrap")


def _host_python() -> str:
    # The interpreter a venv is made from: the base one, not Bedrock's own virtual environment.
    return getattr(sys, "_base_executable", None) or sys.executable


def _sandbox_args(context: StepContext) -> list[str]:
    args = ["bwrap", "--tmpfs", "/"]
    for entry in sorted(os.scandir("/"), key=lambda e: e.name):
        if entry.name in _HIDDEN_ROOT_ENTRIES:
            continue
        path = f"/{entry.name}"
        if entry.is_symlink():
            args += ["--symlink", os.readlink(path), path]
        elif entry.is_dir():
            args += ["--dev-bind", path, path]
        else:
            args += ["--ro-bind", path, path]
    args += [
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--bind",
        str(context.app_dir),
        "/app",
        "--bind",
        str(context.artefact_dir),
        "/artefact",
        "--chdir",
        "/app",
        "--unshare-pid",
        "--die-with-parent",
        "--",
    ]
    return args


class LocalHandle:
    def __init__(self, process: subprocess.Popen) -> None:
        self.process = process

    def output(self) -> Iterator[bytes]:
        assert self.process.stdout is not None
        yield from iter(self.process.stdout.readline, b"")

    def wait(self, timeout: float | None = None) -> int | None:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self, grace: float = 0.0) -> str:
        if self.process.poll() is not None:
            return ""
        # The step runs in its own session: signal the whole group, not just bash.
        if grace > 0:
            self._signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
            else:
                self._signal(signal.SIGKILL)  # whatever of the group outlived bash
                return "ended on SIGTERM"
        self._signal(signal.SIGKILL)
        self.process.wait()
        if grace > 0:
            return f"killed with SIGKILL after the {grace:g} s grace period"
        return "killed with SIGKILL"

    def _signal(self, number: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, number)


class LocalExecutor:
    name = "local"
    remote = False

    def start(self, step: StepPlan, context: StepContext) -> LocalHandle:
        venv = context.step_dir / "venv"
        if not (venv / "bin" / "python").exists():
            created = subprocess.run(
                [_host_python(), "-m", "venv", str(venv)],
                capture_output=True,
                text=True,
                timeout=300,
            )
            if created.returncode != 0:
                raise ExecutorError(
                    f"could not create the step's virtual environment: {created.stderr}"
                )
        home = context.step_dir / "home"
        home.mkdir(exist_ok=True)
        sandbox = bubblewrap()
        env = {
            "PATH": f"{venv}/bin:/usr/local/bin:/usr/bin:/bin",
            "VIRTUAL_ENV": str(venv),
            "HOME": str(home),
            "LANG": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "PIP_CACHE_DIR": str(Path(settings.BEDROCK_HOME) / "cache" / "pip"),
            "BEDROCK_APP_DIR": "/app" if sandbox else str(context.app_dir),
            "BEDROCK_ARTEFACT_DIR": "/artefact" if sandbox else str(context.artefact_dir),
            **context.environment,
            **context.secrets,
        }
        command = ["bash", "-c", step.command]
        if sandbox:
            command = _sandbox_args(context) + command
        process = subprocess.Popen(
            command,
            cwd=context.app_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        # Recorded so that a reconciler can kill the step if this supervisor dies first.
        with (context.step_dir / "pids").open("a") as pids:
            pids.write(f"{process.pid}\n")
        return LocalHandle(process)

    def cleanup_run(self, run_id: int) -> None:
        """Kill the process groups of the run's steps that are still alive."""
        root = Workspace(run_id).root
        for pids in root.glob("steps/*/pids"):
            for line in pids.read_text().split():
                pid = int(line)
                try:
                    # Only a group still working in this run's directory: pids get reused.
                    if not os.readlink(f"/proc/{pid}/cwd").startswith(str(root)):
                        continue
                    os.killpg(pid, signal.SIGKILL)
                except (FileNotFoundError, ProcessLookupError, PermissionError):
                    continue
