"""The executor interface: start one attempt of one step, stream its output, wait, kill.

The supervisor (:mod:`bedrock.runs.supervisor`) owns the run: dependency order, retries, logs,
the time limit and stopping. Executors only know how to run a single step somewhere.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from bedrock.runs.plan import RunPlan, StepPlan


@dataclass(frozen=True)
class StepContext:
    """What an attempt needs besides the plan: its directories and the values of its secrets."""

    run_id: int
    app_dir: Path  # the step's checkout, seen by the step at /app
    artefact_dir: Path  # the run's /artefact
    step_dir: Path  # scratch space of the step
    environment: dict[str, str]  # the plan's environment plus per-run values (API token)
    secrets: dict[str, str]
    attempt: int
    plan: RunPlan | None = None
    deadline: datetime | None = None  # when the run's time is up, for executors that enforce it


class StepHandle(Protocol):
    """One running attempt. A handle that knows more than the exit code (out of memory, a lost
    node) may carry a ``failure_reason`` string once it has ended; the supervisor reports it."""

    def output(self) -> Iterator[bytes]:
        """Output lines (stdout and stderr merged) as the step produces them, until it ends."""

    def wait(self, timeout: float | None = None) -> int | None:
        """The exit code, or None if the step is still running after ``timeout`` seconds."""

    def kill(self, grace: float = 0.0) -> str:
        """Stop the step and everything it started: SIGTERM, then SIGKILL once ``grace``
        seconds have passed (at once when 0). Returns how it ended, for the step's log
        ("ended on SIGTERM", "killed with SIGKILL after the 30 s grace period"), or "" when it
        had already ended. Safe to call twice or after it ended."""


class Executor(Protocol):
    name: str
    # True when steps run elsewhere and fetch /app and /artefact themselves (nomad): the
    # supervisor then neither checks out nor fills its workspace, and publishes what the steps
    # uploaded.
    remote: bool

    def start(self, step: StepPlan, context: StepContext) -> StepHandle: ...

    def cleanup_run(self, run_id: int) -> None:
        """Remove anything of the run's that is still around (processes, containers)."""


class ExecutorError(Exception):
    """A step could not be started; the message says why in terms a user can act on."""


# Bedrock's own variables: the plan's, the run token and the executor's paths. Set last, so that no
# parameter or secret of the same name replaces them.
OWN_PREFIX = "BEDROCK_"


def own_variables(context: StepContext) -> dict[str, str]:
    """The BEDROCK_* variables of the attempt's environment. The plan and the supervisor set
    theirs after the parameters, so a parameter of the same name has already lost to them."""
    environment = context.environment
    return {name: value for name, value in environment.items() if name.startswith(OWN_PREFIX)}


def _refusals(context: StepContext) -> list[tuple[str, str, str]]:
    # Checked again as the step starts, not only when the run was accepted: a run queued before
    # a name was refused (LD_PRELOAD) must not carry it into a process started on the host.
    from bedrock.pipelines.environment import refused_environment_name

    found = []
    for kind, names in (("parameter", user_parameters(context)), ("secret", context.secrets)):
        for name in names:
            reason = refused_environment_name(name, kind=kind)
            if reason:
                found.append((kind, name, reason))
    return found


def refused_names(context: StepContext) -> list[str]:
    """The parameters and secrets of the attempt that no step may be given, which it is not."""
    return [name for _, name, _ in _refusals(context)]


def refusal_notice(context: StepContext) -> bytes:
    """A line for the step's log naming what was left out of its environment and why, or b""."""
    found = _refusals(context)
    if not found:
        return b""
    said = "; ".join(f"{kind} {name}: {reason}" for kind, name, reason in found)
    return f"bedrock: left out of the step's environment ({said})\n".encode()


def user_parameters(context: StepContext) -> dict[str, str]:
    """The run's parameters: the attempt's environment but Bedrock's own variables."""
    return {k: v for k, v in context.environment.items() if not k.startswith(OWN_PREFIX)}


def step_variables(context: StepContext) -> tuple[dict[str, str], dict[str, str]]:
    """The parameters and the secrets a step may be given: without the refused names."""
    refused = set(refused_names(context))
    user = {k: v for k, v in user_parameters(context).items() if k not in refused}
    return user, {k: v for k, v in context.secrets.items() if k not in refused}


def layered_environment(
    context: StepContext, *, defaults: dict[str, str], own: dict[str, str]
) -> dict[str, str]:
    """A step's variables, each layer replacing the one before: the executor's ``defaults``, the
    run's parameters, the pipeline's secrets, Bedrock's own variables, the executor's ``own``.
    Refused names (:func:`refused_names`) are left out."""
    user, secrets = step_variables(context)
    return {**defaults, **user, **secrets, **own_variables(context), **own}


# pip's own list of origins it trusts over plain HTTP (pip._internal.index.package_finder's
# SECURE_ORIGINS, less the schemes): any other http:// index is ignored unless its host is trusted.
_PIP_SECURE_NETWORKS = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


def _pip_trusts(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(address in network for network in _PIP_SECURE_NETWORKS)


def package_index_variables(api_domain: str, variables: Mapping[str, str]) -> dict[str, str]:
    """``PIP_EXTRA_INDEX_URL`` (and ``PIP_TRUSTED_HOST`` when pip needs it) for a step whose API
    is at ``api_domain`` as the step reaches it, so that its pip finds Bedrock's client
    (bedrock.tracking.indexviews) as well as PyPI. A value the step has already in ``variables``
    (a parameter or a secret: a private index) is kept, with Bedrock's appended; pip reads both
    as space-separated lists."""
    if not api_domain:
        return {}
    parts = urlsplit(api_domain)
    ours = {"PIP_EXTRA_INDEX_URL": api_domain.rstrip("/") + "/pypi/simple/"}
    host = parts.hostname or ""
    if parts.scheme == "http" and host and not _pip_trusts(host):
        ours["PIP_TRUSTED_HOST"] = f"[{host}]" if ":" in host else host
    return {name: _appended(variables.get(name, ""), value) for name, value in ours.items()}


def _appended(theirs: str, ours: str) -> str:
    return f"{theirs.strip()} {ours}" if theirs.strip() else ours
