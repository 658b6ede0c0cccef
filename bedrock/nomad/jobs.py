"""Rendering a run's steps as Nomad batch job bodies (``POST /v1/job/<id>``).

**One job per step attempt**, not one per run. A Nomad task group has no order between its main
tasks (only prestart, main and poststop phases), so a run's dependency graph cannot live inside one
job; and Nomad never re-runs an unchanged, completed batch job when it is registered again, so a
retry needs a new job ID anyway. The supervisor submits a step's job once its dependencies have
succeeded, exactly as it starts a local process or a container.

Each job has one group and three tasks sharing the allocation directory (``/alloc`` in every
container):

- ``fetch`` (prestart, the hook image): ``bedrock hook fetch`` downloads the run's source at its
  commit into ``/alloc/data/app``, and into ``/alloc/data/artefact`` the input model version (batch
  scoring) and what the step's dependencies left in /artefact;
- ``main`` (the step's image): ``bash -c`` over the step's command in its config file's folder
  (``/app`` or below it, :mod:`bedrock.runs.workdir`), wrapped in ``timeout`` at the time the run
  has left, writing its exit code to ``/alloc/data/main.exit``;
- ``upload`` (poststop, the hook image): ``bedrock hook upload`` packs ``/alloc/data/artefact``
  and sends it to Bedrock when ``main`` exited 0.

The hooks authenticate with the run's token; no Git or storage credential enters a job. The token
and the pipeline's secrets are written to a Nomad Variable at ``nomad/jobs/<job id>`` before the
job is registered (the job's workload identity may read exactly that path) and reach the tasks
through templates rendered into their ``secrets/`` directories: never ``Env``, so ``GET
/v1/job/<id>`` shows names only.

Keys are Nomad's Go field names and durations integer nanoseconds; Nomad silently drops any other
key, so the tests walk every body against the API field map.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings

from bedrock.nomad.images import check_step_image
from bedrock.runs.executors.base import OWN_PREFIX, package_index_variables
from bedrock.runs.plan import RunPlan, StepPlan

SECOND = 1_000_000_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE

GROUP = "step"
FETCH_TASK = "fetch"
MAIN_TASK = "main"
UPLOAD_TASK = "upload"
ALLOC_DATA = "/alloc/data"
SECRETS_SUBDIR = "bedrock"  # inside each task's secrets/ directory, mounted at /secrets
TOKEN_NAME = "BEDROCK_API_TOKEN"  # noqa: S105 (a variable name, not a value)

# Defaults for a step whose bedrock.hcl says nothing about resources.
DEFAULT_CPU_MHZ = 1000
DEFAULT_MEMORY_MB = 1024
MHZ_PER_CORE = 1000  # a `cpu = "2"` step asks for 2000 MHz of the node's CPU shares
HOOK_CPU_MHZ = 500
HOOK_MEMORY_MB = 512
# A hung upload must not hold the allocation forever: a job stop does not kill poststop tasks.
HOOK_TIMEOUT = "1h"
# Grace between `timeout`'s TERM and KILL inside the main task, and between the wrapper's limit
# and Nomad's MaxRunDuration (which also counts image pulls and the prestart fetch).
KILL_AFTER_SECONDS = 60
MAX_RUN_DURATION_GRACE = timedelta(minutes=10)
KILL_TIMEOUT = 30 * SECOND  # Nomad caps it at the client's max_kill_timeout (30 s by default)
# Secret files are rendered by the Nomad client as its own user (root) unless a template names a
# numeric uid/gid. The image's USER is only known once the client has pulled the image, so no
# uid can be named here, and 0400 would leave the files unreadable to any image that does not
# run as root. Readable by all, then: the files sit in the task's own secrets/ tmpfs, mounted
# into this task's container alone, where the step is the only reader.
SECRET_FILE_PERMS = "0444"  # noqa: S105 (a file mode, not a value)
SECRET_UNREADABLE_EXIT = 78  # EX_CONFIG: the task was given a secret it cannot read

# Nomad refuses a variable path outside ``^[a-zA-Z0-9-_~/]{1,128}$`` (nomad/structs/variables.go),
# and a job's variable lives at nomad/jobs/<job id>: job IDs keep to these characters.
JOB_ID_SAFE = re.compile(r"^[A-Za-z0-9_-]+$")
_JOB_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
VARIABLE_PATH_MAX = 128
JOB_PREFIX_MAX = 40
STEP_PART_MAX = 40


@dataclass(frozen=True)
class StepJob:
    """One step attempt as Nomad sees it: the job body and the variable its templates read."""

    job_id: str
    variable_path: str
    body: dict  # an api.JobRegisterRequest: {"Job": …, "EnforceIndex": true, …}


def job_prefix(run_id: int) -> str:
    """Every job of a run starts with this; the run's cleanup lists jobs by it."""
    return f"{settings.BEDROCK_NOMAD_JOB_PREFIX}-{run_id}-"


def job_id_for(run_id: int, step_name: str, attempt: int) -> str:
    """``bedrock-42-train-1``: from the run, so a submission is idempotent, and never reused.

    Step names are Bedrock's (letters, digits, ``-_.``) but a job ID may hold only ``-_`` besides
    letters and digits. A name that had to change (a ``.`` replaced, or cut to 40 characters) is
    suffixed with a hash of the real name, so ``train.v2`` and ``train-v2`` stay two jobs. With a
    prefix of at most 40 characters (bedrock.E026) the variable path stays within Nomad's 128.
    """
    name = _JOB_ID_UNSAFE.sub("-", step_name)
    if name != step_name or len(name) > STEP_PART_MAX:
        name = name[: STEP_PART_MAX - 9] + "-" + hashlib.sha256(step_name.encode()).hexdigest()[:8]
    return f"{job_prefix(run_id)}{name}-{attempt}"


def variable_path_for(job_id: str) -> str:
    return f"nomad/jobs/{job_id}"


def cpu_mhz(step: StepPlan) -> int:
    millicpu = step.resources.millicpu
    if not millicpu:
        return DEFAULT_CPU_MHZ
    return max(1, math.ceil(millicpu * MHZ_PER_CORE / 1000))


def memory_mb(step: StepPlan) -> int:
    """MiB, rounded up: ``500M`` is 477, ``1G`` 954, ``2Gi`` 2048 (Nomad's minimum is 10)."""
    memory = step.resources.memory_bytes
    if not memory:
        return DEFAULT_MEMORY_MB
    return max(10, math.ceil(memory / 2**20))


def main_wrapper(limit_seconds: int, names: Sequence[str] = ()) -> str:
    """The main task's ``bash -c`` program; the step's command arrives as ``$1``.

    It exports each secret in ``names`` (the run token and the pipeline's secrets, identifiers)
    from its file in ``/secrets/bedrock/`` (one file per name so multi-line values survive). A
    file it cannot read fails the step before the command starts, naming the secret and the uid
    that could not read it (exit code 78): exporting an empty value instead would run the step
    without its token or secrets. Then it runs the command under ``timeout`` (exit code 124 once
    the run's time is up, also when the command had to be killed after it) and records the exit
    code for the upload task, which cannot see it otherwise.

    ``bash`` is the container's PID 1, which ignores a SIGTERM it has no handler for; so the
    command runs in the background and a trap passes Nomad's stop signal on to it, giving the
    training its ``KillTimeout`` to save what it can. The trap is set before the command starts,
    and a signal that came before ``$child`` was known is passed on once it is. ``wait`` returns
    early when the trap runs, so it is called until the command has really ended.
    """
    secrets = f"/secrets/{SECRETS_SUBDIR}"
    return (
        """child=; trap 'stop=1; [ -n "$child" ] && kill -TERM "$child" 2>/dev/null' TERM INT; """
        f"for n in {' '.join(names)}; do "
        f'if ! v="$(cat -- "{secrets}/$n")"; then '
        f'echo "bedrock: cannot read the secret $n from {secrets}/$n as uid $EUID;'
        ' the step does not run without it" >&2; '
        f"echo {SECRET_UNREADABLE_EXIT} > {ALLOC_DATA}/main.exit; exit {SECRET_UNREADABLE_EXIT}; "
        'fi; export "$n=$v"; done; '
        f'timeout -s TERM -k {KILL_AFTER_SECONDS} {limit_seconds} bash -c "$1" & child=$!; '
        '[ -n "$stop" ] && kill -TERM "$child" 2>/dev/null; '
        'while kill -0 "$child" 2>/dev/null; do wait "$child"; done; wait "$child"; code=$?; '
        f'if [ "$SECONDS" -ge {limit_seconds} ] && [ "$code" -ne 0 ]; then code=124; fi; '
        f'echo "$code" > {ALLOC_DATA}/main.exit; exit "$code"'
    )


# Methods of consul-template's NomadVarItems: ``.Keys`` would call the method, not read the item.
_ITEMS_METHODS = frozenset({"Keys", "Values", "Tuples", "Metadata", "Parent", "ItemsMap"})


def item_reference(name: str) -> str:
    """How a template reads the item ``name`` of the variable ``with nomadVar`` opened.

    Field access, since secret names are identifiers: a missing item then fails the task
    (``ErrMissingKey``), where ``index`` would render an empty string and the step would run
    without it. Only a name that is a method of the items needs ``index``.
    """
    if name in _ITEMS_METHODS:
        return f'index . "{name}"'
    return f".{name}"


def _secret_template(job_id: str, name: str, appended: str = "") -> dict:
    # ``appended`` follows the secret's value: Bedrock's package index after a secret naming the
    # step's own (PIP_EXTRA_INDEX_URL), which would otherwise replace the one in Env.
    after = f" {appended}" if appended else ""
    return {
        "EmbeddedTmpl": f'{{{{ with nomadVar "{variable_path_for(job_id)}" }}}}'
        f"{{{{ {item_reference(name)} }}}}{after}{{{{ end }}}}",
        "DestPath": f"secrets/{SECRETS_SUBDIR}/{name}",
        "Perms": SECRET_FILE_PERMS,
        "ChangeMode": "noop",
        "ErrMissingKey": True,
    }


def _token_env_template(job_id: str) -> dict:
    # The hooks read the token from their environment; a token is URL-safe text, so an env file
    # carries it as is.
    return {
        "EmbeddedTmpl": f'{{{{ with nomadVar "{variable_path_for(job_id)}" }}}}'
        f"{TOKEN_NAME}={{{{ {item_reference(TOKEN_NAME)} }}}}\n{{{{ end }}}}",
        "DestPath": f"secrets/{SECRETS_SUBDIR}.env",
        "Envvars": True,
        "ChangeMode": "noop",
        "ErrMissingKey": True,
    }


def _exported_names(step: StepPlan) -> list[str]:
    """The names the main task exports from its secret files: the token and the secrets, less
    any secret named as one of Bedrock's own variables (its file would replace them)."""
    ours = {TOKEN_NAME, *(name for name in step.environment if name.startswith(OWN_PREFIX))}
    return [TOKEN_NAME, *(name for name in step.secret_names if name not in ours)]


def _hook_task(name: str, hook: str, job_id: str, environment: dict[str, str]) -> dict:
    command = ["timeout", "-s", "TERM", "-k", "30", HOOK_TIMEOUT, "bedrock", "hook", name]
    return {
        "Name": name,
        "Driver": "docker",
        "Lifecycle": {"Hook": hook, "Sidecar": False},
        "Config": {
            "image": settings.BEDROCK_NOMAD_HOOK_IMAGE,
            "entrypoint": [command[0]],
            "args": command[1:],
        },
        "Env": environment,
        "Templates": [_token_env_template(job_id)],
        "Resources": {"CPU": HOOK_CPU_MHZ, "MemoryMB": HOOK_MEMORY_MB},
        "KillTimeout": 10 * SECOND,
        "LogConfig": {"MaxFiles": 2, "MaxFileSizeMB": 10},
    }


def render_step(
    plan: RunPlan,
    step: StepPlan,
    *,
    attempt: int,
    time_left: timedelta,
    meta: dict[str, str] | None = None,
) -> StepJob:
    """The register body of one attempt of ``step``, with ``time_left`` until the run's deadline.

    Raises :class:`~bedrock.nomad.images.UnsuitableImage` for an image known to lack what the
    main task runs under (bash, GNU timeout).
    """
    check_step_image(step.name, step.image)
    job_id = job_id_for(plan.run_id, step.name, attempt)
    limit_seconds = max(1, math.ceil(time_left.total_seconds()))
    job_meta = {**_job_meta(plan, step, attempt), **(meta or {})}
    job = {
        "ID": job_id,
        "Name": job_id,
        "Type": "batch",
        "Namespace": settings.NOMAD_NAMESPACE,
        "Datacenters": list(settings.NOMAD_DATACENTERS),
        "Priority": 50,
        "Meta": job_meta,
        "TaskGroups": [_task_group(plan, step, job_id, attempt, limit_seconds, job_meta)],
    }
    if settings.NOMAD_REGION:
        job["Region"] = settings.NOMAD_REGION
    body = {"Job": job, "EnforceIndex": True, "JobModifyIndex": 0}
    return StepJob(job_id=job_id, variable_path=variable_path_for(job_id), body=body)


def _job_meta(plan: RunPlan, step: StepPlan, attempt: int) -> dict[str, str]:
    return {
        "bedrock_run_id": str(plan.run_id),
        "bedrock_step": step.name,
        "bedrock_attempt": str(attempt),
        "bedrock_stanza": plan.stanza,
        "bedrock_pipeline_id": step.environment.get("BEDROCK_PIPELINE_ID", ""),
        "bedrock_run_number": step.environment.get("BEDROCK_PIPELINE_RUN_ID", ""),
        "bedrock_run_key": plan.run_key,
    }


def _task_group(
    plan: RunPlan,
    step: StepPlan,
    job_id: str,
    attempt: int,
    limit_seconds: int,
    job_meta: dict[str, str],
) -> dict:
    hook_env = _hook_environment(plan, step, attempt)
    group = {
        "Name": GROUP,
        "Count": 1,
        # Retries belong to Bedrock (retry { limit }), each a new job: Nomad never silently runs
        # a training twice. A lost node's allocation is not replaced either.
        "RestartPolicy": {
            "Attempts": 0,
            "Interval": 24 * HOUR,
            "Delay": 15 * SECOND,
            "Mode": "fail",
        },
        "ReschedulePolicy": {
            "Attempts": 0,
            "Interval": 24 * HOUR,
            "Delay": 5 * SECOND,
            "DelayFunction": "constant",
            "MaxDelay": 0,
            "Unlimited": False,
        },
        "Disconnect": {"Replace": False},
        "EphemeralDisk": {
            "SizeMB": settings.BEDROCK_NOMAD_DISK_MB,
            "Sticky": False,
            "Migrate": False,
        },
        "Meta": dict(job_meta),
        "Tasks": [
            _hook_task(FETCH_TASK, "prestart", job_id, hook_env),
            _main_task(step, job_id, limit_seconds),
            _hook_task(UPLOAD_TASK, "poststop", job_id, hook_env),
        ],
    }
    if settings.BEDROCK_NOMAD_MAX_RUN_DURATION:
        group["MaxRunDuration"] = (
            int((timedelta(seconds=limit_seconds) + MAX_RUN_DURATION_GRACE).total_seconds())
            * SECOND
        )
    return group


def _hook_environment(plan: RunPlan, step: StepPlan, attempt: int) -> dict[str, str]:
    hook_env = {
        "BEDROCK_API_DOMAIN": step.environment["BEDROCK_API_DOMAIN"],
        "BEDROCK_RUN_ID": str(plan.run_id),
        "BEDROCK_RUN_STEP_NAME": step.name,
        "BEDROCK_RUN_STEP_ATTEMPT": str(attempt),
        "BEDROCK_HOOK_DIR": ALLOC_DATA,
        "BEDROCK_HOOK_DEPENDENCIES": ",".join(step.depends_on),
    }
    if plan.input_model_version_id and not step.depends_on:
        # Steps after the first see the version through their dependencies' /artefact.
        hook_env["BEDROCK_MODEL_VERSION_ID"] = str(plan.input_model_version_id)
    return hook_env


def _main_task(step: StepPlan, job_id: str, limit_seconds: int) -> dict:
    resources: dict = {"CPU": cpu_mhz(step), "MemoryMB": memory_mb(step)}
    if step.resources.gpu_count:
        resources["Devices"] = [{"Name": "nvidia/gpu", "Count": step.resources.gpu_count}]
    domain = step.environment.get("BEDROCK_API_DOMAIN", "")
    index = package_index_variables(domain, {})  # Bedrock's alone, for the secrets' templates
    return {
        "Name": MAIN_TASK,
        "Driver": "docker",
        "Config": {
            "image": step.image,
            # entrypoint, not command: an image's ENTRYPOINT would otherwise swallow bash -c.
            "entrypoint": ["bash"],
            "args": [
                "-c",
                main_wrapper(limit_seconds, _exported_names(step)),
                "bedrock-step",
                step.command,
            ],
            "work_dir": step.workdir,
            # Relative sources stay inside the allocation directory, which Nomad allows without
            # enabling host volumes on the client.
            "volumes": [f"../{ALLOC_DATA[1:]}/app:/app", f"../{ALLOC_DATA[1:]}/artefact:/artefact"],
        },
        "Env": {**step.environment, **package_index_variables(domain, step.environment)}
        | {"PYTHONUNBUFFERED": "1"},
        "Templates": [
            _secret_template(job_id, name, appended=index.get(name, ""))
            for name in _exported_names(step)
        ],
        "Resources": resources,
        "KillTimeout": KILL_TIMEOUT,
        "KillSignal": "SIGTERM",
        "LogConfig": {"MaxFiles": 10, "MaxFileSizeMB": 20},
        "Meta": {"bedrock_role": "main"},
    }


def render_plan(plan: RunPlan) -> list[StepJob]:
    """Every step's first attempt, as a run with its whole time limit ahead would submit them."""
    return [render_step(plan, step, attempt=1, time_left=plan.time_limit) for step in plan.steps]
