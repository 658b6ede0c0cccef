"""A local step's virtual environment: the one an earlier run kept for the same installs, or a
new one (:mod:`bedrock.runs.executors.venvs`); kept in turn once the step has succeeded
(:mod:`bedrock.runs.installs.envcache`)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from datetime import datetime

from bedrock.runs import installs
from bedrock.runs.executors import spark, venvs
from bedrock.runs.executors.base import StepContext
from bedrock.runs.executors.interpreters import Interpreter
from bedrock.runs.installs import envcache
from bedrock.runs.plan import StepPlan
from bedrock.runs.workdir import host_workdir

# In the step's directory, beside its venv: the key of the environment its installs make, and
# when the environment it was given was saved, when it is an earlier run's.
ENVIRONMENT_KEY = "environment-key"
ENVIRONMENT_REUSED = "environment-reused"


def project(context: StepContext) -> str:
    return context.environment.get("BEDROCK_PROJECT_ID", "")


def installs_key(
    step: StepPlan,
    context: StepContext,
    python: Interpreter,
    *,
    sandboxed: bool,
    variables: Mapping[str, str],
) -> str:
    """The key of the environment the step's installs make, or "" when it installs nothing
    (only such steps are worth keeping: the others' environments are a template's copy)."""
    uses_spark = spark.uses_spark_submit(step)
    if not (step.install or uses_spark) or not envcache.enabled():
        return ""
    major, minor = (int(part) for part in python.version.split(".")[:2])
    return envcache.key(
        envcache.Installs(
            interpreter=f"{python.executable} {python.version}",
            lines=step.install,
            workdir=host_workdir(context.app_dir, step.workdir) or context.app_dir,
            app_dir=context.app_dir,
            date=installs.run_date(context.run_id),
            pyspark=spark.pyspark_requirement((major, minor)) if uses_spark else "",
            variables=variables,
            sandboxed=sandboxed,
            client=_client_version(),
        )
    )


def _client_version() -> str:
    from bedrock.tracking.wheels import ClientSourceError, client_version

    try:
        return client_version()
    except (ClientSourceError, OSError):
        return ""  # no client to serve (bedrock.W050): nothing of it can be installed


def make(
    context: StepContext,
    python: Interpreter,
    *,
    name: str,
    inside: str,
    sandbox_prefix: Callable[[], list[str]],
) -> None:
    """Fill the step's (empty) venv: a copy of the environment kept under ``name``, or a new one.
    ``inside`` is the venv's path as the step sees it; ``sandbox_prefix`` the command that runs
    ``python -m venv`` where the step runs."""
    venv = context.step_dir / "venv"
    (context.step_dir / ENVIRONMENT_KEY).write_text(name)
    reused = context.step_dir / ENVIRONMENT_REUSED
    reused.unlink(missing_ok=True)
    saved = envcache.restore(project(context), name, venv, inside) if name else None
    if saved is not None:
        reused.write_text(saved.isoformat())
        return
    venvs.empty(venv)  # what a copy cut short left
    venvs.create(sandbox_prefix(), python, venv, inside)


def keep(context: StepContext, inside: str) -> None:
    """Keep the environment of a step that succeeded, for the next run with the same installs."""
    with contextlib.suppress(FileNotFoundError):
        name = (context.step_dir / ENVIRONMENT_KEY).read_text()
        if name:
            envcache.save(project(context), name, context.step_dir / "venv", inside)


def reuse_notice(context: StepContext) -> bytes:
    """The log's line when the step's environment is an earlier run's, or b""."""
    try:
        saved = datetime.fromisoformat((context.step_dir / ENVIRONMENT_REUSED).read_text())
    except (FileNotFoundError, ValueError):
        return b""
    return envcache.notice(saved)
