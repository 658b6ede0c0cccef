"""The run plan: what every executor runs, built once from a run and the config stored on it.

A plan holds no secret values, only their names; an executor fetches the values when it starts a
step, so nothing that is queued, logged or serialised carries them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bedrock.runs.models import Run

import hashlib
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings

from bedrock.envconfig import format_duration
from bedrock.pipelines import spec as hcl
from bedrock.pipelines.models import PipelineKind
from bedrock.runs.workdir import APP, step_workdir


@dataclass(frozen=True)
class StepPlan:
    name: str
    image: str
    command: str  # run as `bash -c COMMAND` in ``workdir``
    environment: dict[str, str]  # parameters and BEDROCK_* variables, never secrets
    secret_names: tuple[str, ...]
    resources: hcl.Resources
    depends_on: tuple[str, ...]
    retry_limit: int
    # Where the command starts: the config file's folder in the checkout (bedrock.runs.workdir).
    workdir: str = APP
    # The install lines, which ``command`` begins with: what the local executor's kept
    # environments are keyed by.
    install: tuple[str, ...] = ()

    @property
    def max_attempts(self) -> int:
        return 1 + self.retry_limit


@dataclass(frozen=True)
class RunPlan:
    run_id: int
    stanza: str
    steps: tuple[StepPlan, ...]  # in dependency order
    time_limit: timedelta
    input_model_version_id: int | None = None
    publishes_model: bool = False
    parameters: dict[str, str] = field(default_factory=dict)
    # Tells this run from another with the same id (a database restored or reset): what a
    # remote executor left under the run's id is adopted or cleaned only when the key matches.
    run_key: str = ""

    @property
    def time_limit_text(self) -> str:
        return format_duration(self.time_limit)

    def step(self, name: str) -> StepPlan:
        return next(step for step in self.steps if step.name == name)


def stanza_for(config_text: str, kind: str, *, filename: str) -> hcl.Stanza:
    """The stanza a pipeline of this kind runs; SpecError when the file lacks it or is invalid."""
    spec = hcl.load(config_text, filename=filename)
    name = PipelineKind(kind).stanza
    stanza = spec.stanza(name)
    if stanza is None:
        raise hcl.SpecError(
            [
                hcl.Problem(
                    path=name,
                    message=f"the file has no {name} stanza, which a "
                    f"{PipelineKind(kind).label.lower()} pipeline runs",
                    line=None,
                    column=None,
                )
            ]
        )
    return stanza


def build(run: Run) -> RunPlan:
    """The plan for a run whose config text, commit and parameters are already stored."""
    pipeline = run.pipeline
    stanza = stanza_for(run.config_text, pipeline.kind, filename=pipeline.config_path)
    return build_plan(
        stanza,
        run_id=run.pk,
        run_number=run.number,
        pipeline_id=pipeline.pk,
        project_id=pipeline.project_id,
        parameters=run.parameters,
        input_model_version_id=run.input_model_version_id,
        time_limit=run.max_run_time,
        publishes_model=pipeline.kind == PipelineKind.TRAINING,
        run_key=run_key_for(run),
        config_path=pipeline.config_path,
    )


def run_key_for(run: Run) -> str:
    """A short, stable tag of one run: its id and creation time, hashed (nothing secret)."""
    return hashlib.sha256(f"{run.pk}:{run.created_at.isoformat()}".encode()).hexdigest()[:16]


def build_plan(
    stanza: hcl.Stanza,
    *,
    run_id: int,
    run_number: int,
    pipeline_id: int,
    project_id: int,
    parameters: dict,
    input_model_version_id: int | None,
    time_limit: timedelta,
    publishes_model: bool,
    run_key: str = "",
    config_path: str = "bedrock.hcl",
) -> RunPlan:
    """The plan of one stanza; ``bedrock nomad render`` builds one without a run."""
    base_env = {
        **{name: str(value) for name, value in parameters.items()},
        "BEDROCK_RUN_TRIGGER": "bedrock",
        "BEDROCK_PROJECT_ID": str(project_id),
        "BEDROCK_PIPELINE_ID": str(pipeline_id),
        "BEDROCK_PIPELINE_RUN_ID": str(run_number),
        "BEDROCK_API_DOMAIN": settings.BEDROCK_API_DOMAIN,
    }
    workdir = step_workdir(config_path)
    if input_model_version_id:
        base_env["BEDROCK_MODEL_VERSION_ID"] = str(input_model_version_id)
    steps = tuple(
        StepPlan(
            name=step.name,
            image=step.image,
            command=step.command(),
            environment={**base_env, "BEDROCK_RUN_STEP_NAME": step.name},
            secret_names=tuple(stanza.secrets),
            resources=step.resources,
            depends_on=tuple(step.depends_on),
            retry_limit=step.retry_limit,
            workdir=workdir,
            install=tuple(line.strip() for line in step.install if line.strip()),
        )
        for step in stanza.steps
    )
    return RunPlan(
        run_id=run_id,
        stanza=stanza.name,
        steps=steps,
        time_limit=time_limit,
        input_model_version_id=input_model_version_id,
        publishes_model=publishes_model,
        parameters={name: str(value) for name, value in parameters.items()},
        run_key=run_key,
    )
