"""Executors run one step attempt somewhere: ``local`` processes, ``docker`` containers or
``nomad`` batch jobs."""

from __future__ import annotations

from django.conf import settings

from bedrock.runs.executors.base import Executor, ExecutorError, StepContext, StepHandle

__all__ = ["Executor", "ExecutorError", "StepContext", "StepHandle", "get_executor"]


def get_executor(name: str | None = None) -> Executor:
    name = name or settings.BEDROCK_EXECUTOR
    if name == "local":
        from bedrock.runs.executors.local import LocalExecutor

        return LocalExecutor()
    if name == "docker":
        from bedrock.runs.executors.docker import DockerExecutor

        return DockerExecutor()
    if name == "nomad":
        from bedrock.nomad.executor import NomadExecutor

        return NomadExecutor()
    raise ExecutorError(f"the executor {name!r} cannot run steps on this machine")
