"""The Docker executor: each step attempt is a container of the step's image.

The only module that imports the Docker SDK. Neither the secret values nor the run token are put
in the container's environment (which ``docker inspect`` shows); they are written to a file,
mounted read-only, and exported by the step's shell before the user's commands run, followed by
Bedrock's own variables so that no secret can replace them.

The container holds no capability (``cap_drop=ALL``) and cannot gain one (``no-new-privileges``).
It runs as the image's user when the image names one; an image without a ``USER`` runs as root
without capabilities, which can neither change owners nor bypass file permissions. Whoever the
container's user is to the host, when it is not the server's own (an image's ``USER``, or root
while the server is not), /app, /artefact and the secrets file are opened to it. The image's root
stays root rather than becoming the server's uid, so that ``pip install`` into the image's own
Python (owned by root) works as in any ``docker run``. Docker's init is PID 1, so a stop's
SIGTERM reaches the step instead of being ignored by ``bash``.

Containers reach the host through the bridge's gateway: an API address on a loopback interface
(the default, ``http://127.0.0.1:8000``) is given to them as ``host.docker.internal``, which
Docker maps to that gateway. ``BEDROCK_DOCKER_NETWORK`` names another network for the steps.
"""

from __future__ import annotations

import contextlib
import ipaddress
import math
import os
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import docker
from django.conf import settings
from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from docker.models.containers import Container
from docker.models.images import Image
from docker.utils import parse_repository_tag
from requests.exceptions import RequestException

from bedrock.runs.executors.base import (
    ExecutorError,
    StepContext,
    own_variables,
    package_index_variables,
    refusal_notice,
    step_variables,
)
from bedrock.runs.plan import StepPlan
from bedrock.runs.workdir import host_workdir, missing_workdir

if TYPE_CHECKING:
    from docker._types import WaitContainerResponse  # the stubs' name; not in the SDK

SECRETS_MOUNT = "/run/bedrock"
LABEL_RUN = "io.bedrock.run"
LABEL_STEP = "io.bedrock.step"
HOST_ALIAS = "host.docker.internal"
TOKEN_NAME = "BEDROCK_API_TOKEN"  # noqa: S105 (a variable name, not a value)
SIGKILL_EXIT = 137  # 128 + 9: what Docker reports for a container killed with SIGKILL


def client() -> docker.DockerClient:
    try:
        return docker.from_env(timeout=120)
    except DockerException as exc:
        raise ExecutorError(f"cannot reach the Docker Engine: {exc}") from exc


def container_api_domain(domain: str) -> str:
    """The API address as a container sees it: a loopback host becomes the host's gateway."""
    parts = urlsplit(domain)
    host = parts.hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        return domain
    netloc = HOST_ALIAS + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _variables(context: StepContext) -> tuple[dict[str, str], dict[str, str]]:
    """The container's environment (parameters, Bedrock's variables and pip's index, nothing
    secret) and what the mounted file exports after it: the secrets, then the run token and
    Bedrock's variables again, so that a secret of the same name never replaces them."""
    user, secrets = step_variables(context)
    own = own_variables(context) | {"BEDROCK_APP_DIR": "/app", "BEDROCK_ARTEFACT_DIR": "/artefact"}
    if "BEDROCK_API_DOMAIN" in own:
        own["BEDROCK_API_DOMAIN"] = container_api_domain(own["BEDROCK_API_DOMAIN"])
    token = {TOKEN_NAME: own.pop(TOKEN_NAME)} if TOKEN_NAME in own else {}
    # pip's variables hold a secret's value when a secret of that name had one (a private index
    # with its credentials): those go to the file, never to what `docker inspect` shows.
    pip = package_index_variables(own.get("BEDROCK_API_DOMAIN", ""), user | secrets)
    shown = {name: value for name, value in pip.items() if name not in secrets}
    hidden = {name: value for name, value in pip.items() if name in secrets}
    return {**user, **own, **shown}, {**secrets, **hidden, **token, **own}


def container_options(step: StepPlan, context: StepContext, user: str = "") -> dict[str, Any]:
    """The arguments of ``containers.run`` for one attempt, apart so that tests can read them.
    ``user`` is the image's own user, if any."""
    environment, exported = _variables(context)
    command = step.command
    volumes = {
        str(context.app_dir): {"bind": "/app", "mode": "rw"},
        str(context.artefact_dir): {"bind": "/artefact", "mode": "rw"},
    }
    if exported:
        command = f"set -a; . {SECRETS_MOUNT}/secrets.env; set +a; {command}"
        mount = {"bind": f"{SECRETS_MOUNT}/secrets.env", "mode": "ro"}
        volumes[str(_secrets_file(context))] = mount
    options: dict[str, Any] = {
        "image": step.image,
        "command": ["bash", "-c", command],
        "working_dir": step.workdir,
        "environment": environment,
        "volumes": volumes,
        "labels": {LABEL_RUN: str(context.run_id), LABEL_STEP: step.name},
        "name": f"bedrock-run-{context.run_id}-{step.name}-{context.attempt}".replace(".", "-"),
        "detach": True,
        "init": True,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "network": settings.BEDROCK_DOCKER_NETWORK,
        "extra_hosts": {HOST_ALIAS: "host-gateway"},
    }
    if user:
        options["user"] = user
    resources = step.resources
    if resources.millicpu:
        options["nano_cpus"] = resources.millicpu * 1_000_000
    if resources.memory_bytes:
        options["mem_limit"] = resources.memory_bytes
        options["memswap_limit"] = resources.memory_bytes  # no swap: the limit is the limit
    if resources.gpu_count:
        options["device_requests"] = [
            docker.types.DeviceRequest(count=resources.gpu_count, capabilities=[["gpu"]])
        ]
    return options


def _secrets_file(context: StepContext) -> Path:
    return context.step_dir / f"secrets-{context.attempt}" / "secrets.env"


def _write_secrets(context: StepContext, exported: dict[str, str], readable: bool) -> None:
    path = _secrets_file(context)
    # The directory keeps the host's other users out; the file itself is bound into the
    # container, where the image's user (not always root) must read it.
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    path.touch(mode=0o600)
    path.write_text("".join(f"{name}={shlex.quote(value)}\n" for name, value in exported.items()))
    path.chmod(0o444 if readable else 0o400)


def _image_user(image: Image) -> str:
    """The image's ``USER``, or "" when it runs as root."""
    user = (image.attrs.get("Config") or {}).get("User") or ""
    return "" if user.split(":")[0] in ("", "0", "root") else user


def _opened_to_the_container(context: StepContext, user: str, exported: dict[str, str]) -> None:
    """Let the container's user write /app and /artefact and read the secrets file, when it is
    not the server's own: an image's ``USER``, or the image's root (without capabilities, so no
    more than any other uid to files the server owns) when the server itself is not root."""
    stranger = bool(user) or os.getuid() != 0
    if stranger:
        _open_to_the_image_user(context)
    if exported:
        _write_secrets(context, exported, readable=stranger)


def _open_to_the_image_user(context: StepContext) -> None:
    # An image's own user is not the server's: it needs /app and /artefact writable. The run's
    # directory is closed to the host's other users, so the open modes below stay the run's.
    root = context.artefact_dir.parent
    root.chmod(0o700)
    for top in (context.app_dir, context.artefact_dir):
        for path in (top, *top.rglob("*")):
            if not path.is_symlink():
                path.chmod(path.stat().st_mode | (0o777 if path.is_dir() else 0o666))


def _image_problem(step: StepPlan, cause: Exception | str) -> str:
    if isinstance(cause, APIError) and cause.explanation:
        cause = cause.explanation  # the Engine's own words, without the request's URL
    return f"image {step.image} is not on this Docker Engine and could not be pulled: {cause}"


def _start_error(step: StepPlan, exc: DockerException) -> str:
    text = str(exc)
    if "could not select device driver" in text and "gpu" in text:
        return (
            f"no GPU is available on this Docker Engine; step {step.name!r} asks for "
            f"{step.resources.gpu_count}"
        )
    if "network" in text and settings.BEDROCK_DOCKER_NETWORK in text and "not found" in text:
        return (
            f"the Docker network {settings.BEDROCK_DOCKER_NETWORK!r} (BEDROCK_DOCKER_NETWORK) "
            f"does not exist on this Docker Engine"
        )
    return f"Docker could not start step {step.name!r}: {exc}"


class DockerHandle:
    def __init__(
        self, container: Container, context: StepContext, step: StepPlan | None = None
    ) -> None:
        self.container = container
        self.context = context
        self.step = step
        self.failure_reason = ""
        self._exit_code: int | None = None

    def output(self) -> Iterator[bytes]:
        notice = refusal_notice(self.context)
        if notice:
            yield notice
        pending = b""
        with contextlib.suppress(NotFound, APIError):
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
            result = self._result(timeout)
            if result is None:
                return None
            self._ended(int(result.get("StatusCode", -1)))
        except NotFound:
            # Removed behind our back (``docker rm -f``): the attempt is over all the same.
            self._exit_code = -1
            self.failure_reason = "its container was removed while it ran"
        self._finish()
        return self._exit_code

    def _result(self, timeout: float | None) -> WaitContainerResponse | None:
        try:
            return self.container.wait(timeout=timeout)
        except NotFound:
            raise
        except Exception:  # the SDK raises requests' ReadTimeout/ConnectionError on timeout
            self.container.reload()
            if self.container.status in ("running", "created", "restarting"):
                return None
            return self.container.wait(timeout=5)

    def kill(self, grace: float = 0.0) -> str:
        """``docker stop``: SIGTERM, then SIGKILL after ``grace`` seconds (at once when 0)."""
        if self._exit_code is not None:
            return ""
        try:
            self.container.reload()
            if self.container.status not in ("running", "created", "restarting", "paused"):
                self._ended(int(self.container.attrs["State"].get("ExitCode", -1)))
                self._finish()
                return ""
            if grace > 0:
                self.container.stop(timeout=max(1, math.ceil(grace)))
            else:
                self.container.kill()
            result = self.container.wait(timeout=60)
            self._ended(int(result.get("StatusCode", -1)))
        except (NotFound, APIError):
            self._exit_code = -9
        self._finish()
        if grace <= 0:
            return "killed with SIGKILL"
        if self._exit_code == SIGKILL_EXIT:
            return f"killed with SIGKILL after the {grace:g} s grace period"
        return "ended on SIGTERM"

    def _ended(self, exit_code: int) -> None:
        """Record how the container ended, while it still exists to be asked."""
        self._exit_code = exit_code
        with contextlib.suppress(NotFound, APIError):
            self.container.reload()
            if self.container.attrs.get("State", {}).get("OOMKilled"):
                limit = self.step.resources.memory if self.step is not None else None
                self.failure_reason = "killed: out of memory" + (
                    f" (limit {limit})" if limit else ""
                )

    def _finish(self) -> None:
        with contextlib.suppress(NotFound, APIError):
            self.container.remove(force=True)
        _secrets_file(self.context).unlink(missing_ok=True)


class DockerExecutor:
    name = "docker"
    remote = False

    def __init__(self) -> None:
        self.client = client()

    def start(self, step: StepPlan, context: StepContext) -> DockerHandle:
        # Docker would make a missing working directory, empty: the step's files are not there.
        if host_workdir(context.app_dir, step.workdir) is None:
            raise ExecutorError(missing_workdir(step.workdir))
        image = self._image(step)
        user = _image_user(image)
        options = container_options(step, context, user)
        _, exported = _variables(context)
        _opened_to_the_container(context, user, exported)
        try:
            container = self.client.containers.run(**options)
        except DockerException as exc:
            _secrets_file(context).unlink(missing_ok=True)
            self._remove_created(options["name"])
            raise ExecutorError(_start_error(step, exc)) from exc
        return DockerHandle(container, context, step)

    def _image(self, step: StepPlan) -> Image:
        """The step's image, pulled when the Engine lacks it; ExecutorError naming the image
        when it cannot be had, so that the step fails at once and says which image and why."""
        try:
            return self.client.images.get(step.image)
        except ImageNotFound:
            pass
        except (DockerException, RequestException) as exc:
            raise ExecutorError(_image_problem(step, exc)) from exc
        try:
            refused = self._pull(step.image)
            if refused:
                raise ExecutorError(_image_problem(step, refused))
            return self.client.images.get(step.image)
        except (DockerException, RequestException) as exc:
            raise ExecutorError(_image_problem(step, exc)) from exc

    def _pull(self, image: str) -> str:
        """Pull ``image``; the error the Engine reported in the pull's progress, or "".

        The SDK's ``images.pull`` reads past such an error (a registry that refused the pull
        half-way, a rate limit) and then reports only "No such image"."""
        repository, tag = parse_repository_tag(image)
        events = self.client.api.pull(repository, tag=tag or "latest", stream=True, decode=True)
        for event in events:
            if isinstance(event, dict) and event.get("error"):
                detail = event.get("errorDetail") or {}
                return str(detail.get("message") or event["error"])
        return ""

    def _remove_created(self, name: str) -> None:
        # ``run`` creates the container before starting it: a start that failed leaves it behind.
        with contextlib.suppress(NotFound, APIError):
            self.client.containers.get(name).remove(force=True)

    def cleanup_run(self, run_id: int) -> None:
        # A container another cleanup removes while this one lists them is skipped, not an error.
        for container in self.client.containers.list(
            all=True, filters={"label": f"{LABEL_RUN}={run_id}"}, ignore_removed=True
        ):
            with contextlib.suppress(NotFound, APIError):
                container.remove(force=True)
