"""Which executor runs steps here: ``BEDROCK_EXECUTOR`` names it.

Apart from the package's ``__init__``, because the executors import the package's base: choosing
one there would make every executor import itself through the package.
"""

from __future__ import annotations

from django.conf import settings

from bedrock.runs.executors.base import Executor, ExecutorError


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
