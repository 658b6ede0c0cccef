"""The Docker executor: each step attempt is a container of the step's image.

The only module that imports the Docker SDK. Secret values are not put in the container's
environment (which ``docker inspect`` shows); they are written to a file readable only by root,
mounted read-only, and exported by the step's shell before the user's commands run.
"""

from __future__ import annotations

import contextlib
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
from docker.errors import APIError, DockerException, ImageNotFound, NotFound

from bedrock.runs.executors.base import ExecutorError, StepContext
from bedrock.runs.plan import StepPlan

SECRETS_MOUNT = "/run/bedrock"
LABEL_RUN = "io.bedrock.run"
LABEL_STEP = "io.bedrock.step"


def client() -> docker.DockerClient:
    try:
        return docker.from_env(timeout=120)
    except DockerException as exc:
        raise ExecutorError(f"cannot reach the Docker Engine: {exc}") from exc


def container_options(step: StepPlan, context: StepContext) -> dict[str, Any]:
    """The arguments of ``containers.run`` for one attempt, apart so that tests can read them."""
    command = step.command
    if context.secrets:
        command = f"set -a; . {SECRETS_MOUNT}/secrets.env; set +a; {command}"
    volumes = {
        str(context.app_dir): {"bind": "/app", "mode": "rw"},
        str(context.artefact_dir): {"bind": "/artefact", "mode": "rw"},
    }
    if context.secrets:
        volumes[str(_secrets_dir(context))] = {"bind": SECRETS_MOUNT, "mode": "ro"}
    options: dict[str, Any] = {
        "image": step.image,
        "command": ["bash", "-c", command],
        "working_dir": "/app",
        "environment": {
            "BEDROCK_APP_DIR": "/app",
            "BEDROCK_ARTEFACT_DIR": "/artefact",
            **context.environment,
        },
        "volumes": volumes,
        "labels": {LABEL_RUN: str(context.run_id), LABEL_STEP: step.name},
        "name": f"bedrock-run-{context.run_id}-{step.name}-{context.attempt}".replace(".", "-"),
        "detach": True,
    }
    resources = step.resources
    if resources.millicpu:
        options["nano_cpus"] = resources.millicpu * 1_000_000
    if resources.memory_bytes:
        options["mem_limit"] = resources.memory_bytes
    if resources.gpu_count:
        options["device_requests"] = [
            docker.types.DeviceRequest(count=resources.gpu_count, capabilities=[["gpu"]])
        ]
    return options


def _secrets_dir(context: StepContext) -> Path:
    return context.step_dir / f"secrets-{context.attempt}"


def _write_secrets(context: StepContext) -> None:
    directory = _secrets_dir(context)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = directory / "secrets.env"
    path.touch(mode=0o600)
    path.write_text(
        "".join(f"{name}={shlex.quote(value)}\n" for name, value in context.secrets.items())
    )


class DockerHandle:
    def __init__(self, container, context: StepContext) -> None:
        self.container = container
        self.context = context
        self._exit_code: int | None = None

    def output(self) -> Iterator[bytes]:
        pending = b""
        for chunk in self.container.logs(stream=True, follow=True, stdout=True, stderr=True):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                yield line + b"\n"
        if pending:
            yield pending

    def wait(self, timeout: float | None = None) -> int | None:
        if self._exit_code is not None:
            return self._exit_code
        try:
            result = self.container.wait(timeout=timeout)
        except Exception:  # the SDK raises requests' ReadTimeout/ConnectionError on timeout
            self.container.reload()
            if self.container.status in ("running", "created", "restarting"):
                return None
            result = self.container.wait(timeout=5)
        self._exit_code = int(result.get("StatusCode", -1))
        self._finish()
        return self._exit_code

    def kill(self, grace: float = 0.0) -> str:
        with contextlib.suppress(NotFound, APIError):
            self.container.kill()
        self._finish()
        return "killed with SIGKILL"

    def _finish(self) -> None:
        with contextlib.suppress(NotFound, APIError):
            self.container.remove(force=True)
        secrets = _secrets_dir(self.context) / "secrets.env"
        secrets.unlink(missing_ok=True)


class DockerExecutor:
    name = "docker"
    remote = False

    def __init__(self) -> None:
        self.client = client()

    def start(self, step: StepPlan, context: StepContext) -> DockerHandle:
        options = container_options(step, context)
        try:
            self.client.images.get(step.image)
        except ImageNotFound:
            try:
                self.client.images.pull(step.image)
            except DockerException as exc:
                raise ExecutorError(
                    f"the image {step.image!r} of step {step.name!r} is not on this Docker Engine "
                    f"and could not be pulled: {exc}"
                ) from exc
        if context.secrets:
            _write_secrets(context)
        try:
            container = self.client.containers.run(**options)
        except DockerException as exc:
            (_secrets_dir(context) / "secrets.env").unlink(missing_ok=True)
            raise ExecutorError(f"Docker could not start step {step.name!r}: {exc}") from exc
        return DockerHandle(container, context)

    def cleanup_run(self, run_id: int) -> None:
        for container in self.client.containers.list(
            all=True, filters={"label": f"{LABEL_RUN}={run_id}"}
        ):
            with contextlib.suppress(NotFound, APIError):
                container.remove(force=True)
