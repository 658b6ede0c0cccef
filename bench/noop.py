"""Benchmark a no-op run: ``bedrock run noop/noop --wait`` of a one-step training pipeline.

The pipeline's one step prints a line, then writes one small file into /artefact, so a run that
succeeds publishes a model version. Everything lives in a scratch BEDROCK_HOME (SQLite, local
storage, the local executor, with bubblewrap when the machine has it): a Git repository holding
the bedrock.hcl, the project, model and pipeline created through Bedrock's services. Each
repeat is the whole command as a fresh process, timed from outside:

    wall         from starting the command to its exit (the run has Succeeded by then)
    first line   from starting the command to the step's first line on its stdout

and, read from the run's and its step's timestamps after, the phases inside Bedrock, each from
the run's creation: the supervisor started, the run started (claimed), the step started and
finished, the model version published, the run finished.

The baseline, in the same run, is Metaflow's local run of a flow of one step (``start`` prints
the line, ``end`` is the end every flow must have), with the same repeats, timed the same way:

    python3 -m venv /tmp/metaflow && /tmp/metaflow/bin/pip install metaflow
    .venv/bin/python bench/noop.py --metaflow-python /tmp/metaflow/bin/python
    .venv/bin/python bench/noop.py --repeat 1        # the test's run; no baseline

Prints a table of medians, the ratio Bedrock / Metaflow, then one line of JSON (prefixed
``JSON ``) for machines.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINE = "hello from the no-op step"
SPEC = f"""version = "1.0"

train {{
  step "noop" {{
    image  = "python:3.11-slim"
    script = [{{ sh = ["echo '{LINE}'", "echo hello > /artefact/model.txt"] }}]
  }}
}}
"""
FLOW = f"""from metaflow import FlowSpec, step


class NoopFlow(FlowSpec):
    @step
    def start(self):
        print({LINE!r})
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    NoopFlow()
"""
PHASES = ("supervisor started", "run started", "step started", "step finished", "published")


def setup(repository: Path) -> None:
    """Create the repository, project, model and pipeline; run inside the scratch home."""
    import django

    django.setup()
    from bedrock.actors import SYSTEM
    from bedrock.models.services import model_create
    from bedrock.pipelines import git
    from bedrock.pipelines.models import PipelineKind
    from bedrock.pipelines.services import pipeline_create, project_create

    source = repository.with_name("source")
    source.mkdir()
    (source / "bedrock.hcl").write_text(SPEC)
    git.init_repository(source, repository, message="A no-op pipeline")
    project = project_create(actor=SYSTEM, name="noop", description="")
    model = model_create(actor=SYSTEM, project=project, name="noop", description="")
    pipeline_create(
        actor=SYSTEM,
        project=project,
        name="noop",
        git_url=str(repository),
        kind=PipelineKind.TRAINING,
        model=model,
    )


def phases() -> None:
    """Print each run's phases, in seconds from its creation, as JSON; run inside the home."""
    import django

    django.setup()
    from bedrock.models.models import ModelVersion
    from bedrock.runs.models import Run

    found = []
    for run in Run.objects.order_by("pk").prefetch_related("steps"):
        step = run.steps.all()[0]
        version = ModelVersion.objects.filter(run=run).first()
        moments = [
            run.supervisor_started_at,
            run.started_at,
            step.started_at,
            step.finished_at,
            version.created_at if version else None,
        ]
        seconds = {
            name: (moment - run.created_at).total_seconds() if moment else None
            for name, moment in zip(PHASES, moments, strict=True)
        }
        seconds["finished"] = (run.finished_at - run.created_at).total_seconds()
        epochs = {
            "created_epoch": run.created_at.timestamp(),
            "finished_epoch": run.finished_at.timestamp(),
        }
        found.append({"status": run.status, **seconds, **epochs})
    print(json.dumps(found))


def timed(command: list[str], env: dict[str, str], cwd: Path) -> dict[str, float]:
    """One fresh process: seconds to its exit and to LINE on its stdout."""
    epoch = time.time()
    started = time.perf_counter()
    child = subprocess.Popen(
        command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert child.stdout is not None and child.stderr is not None
    first = None
    output = []
    for line in child.stdout:
        output.append(line)
        if first is None and LINE in line:
            first = time.perf_counter() - started
    errors = child.stderr.read()
    child.wait()
    wall = time.perf_counter() - started
    if child.returncode != 0 or first is None:
        raise SystemExit(
            f"{' '.join(command)} failed ({child.returncode}):\n{''.join(output)}\n{errors}"
        )
    return {"wall": wall, "first line": first, "started_epoch": epoch, "ended_epoch": epoch + wall}


def medians(samples: list[dict[str, float | None]]) -> dict[str, float | None]:
    keys = samples[0].keys()
    found = {}
    for key in keys:
        values = [sample[key] for sample in samples if sample[key] is not None]
        found[key] = statistics.median(values) if values else None
    return found


def bedrock(scratch: Path, repeat: int) -> tuple[dict, dict]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("DJANGO_")}
    env.pop("DATABASE_URL", None)
    env.update(
        {"BEDROCK_HOME": str(scratch / "home"), "DJANGO_SETTINGS_MODULE": "bedrock.settings"}
    )
    python = [sys.executable, "-m", "bedrock.cli"]
    script = Path(sys.executable).with_name("bedrock")
    command = [str(script)] if script.exists() else python
    subprocess.run([*python, "migrate", "-v", "0"], env=env, check=True, cwd=scratch)
    own = [sys.executable, __file__]
    subprocess.run([*own, "--setup", str(scratch / "repository")], env=env, check=True, cwd=scratch)
    runs = [timed([*command, "run", "noop/noop", "--wait"], env, scratch) for _ in range(repeat)]
    found = subprocess.run(
        [*own, "--phases"], env=env, check=True, cwd=scratch, text=True, capture_output=True
    )
    inside = json.loads(found.stdout.splitlines()[-1])
    if any(run["status"] != "Succeeded" for run in inside):
        raise SystemExit(f"a run did not succeed: {inside}")
    # The command's own parts, on the same clock: before the run exists, and after it ended.
    for run, phase in zip(runs, inside, strict=True):
        phase["command to created"] = phase.pop("created_epoch") - run.pop("started_epoch")
        phase["finished to exit"] = run.pop("ended_epoch") - phase.pop("finished_epoch")
        del phase["status"]
    return medians(runs), medians(inside)


def metaflow(scratch: Path, python: str, repeat: int) -> dict:
    work = scratch / "metaflow"
    work.mkdir()
    (work / "noop_flow.py").write_text(FLOW)
    env = {**os.environ, "METAFLOW_HOME": str(work), "USERNAME": "bench"}
    env["METAFLOW_DATASTORE_SYSROOT_LOCAL"] = str(work)
    command = [python, "noop_flow.py", "run"]
    runs = [timed(command, env, work) for _ in range(repeat)]
    for run in runs:
        del run["started_epoch"], run["ended_epoch"]
    return medians(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--metaflow-python", help="a Python with metaflow installed")
    parser.add_argument("--setup", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--phases", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.setup:
        return setup(args.setup)
    if args.phases:
        return phases()
    sys.path.insert(0, str(ROOT))
    with tempfile.TemporaryDirectory(prefix="bench-noop-") as scratch:
        ours, inside = bedrock(Path(scratch), args.repeat)
        theirs = (
            metaflow(Path(scratch), args.metaflow_python, args.repeat)
            if args.metaflow_python
            else None
        )
    print(f"median of {args.repeat}        wall s   first line s")
    print(f"bedrock run --wait   {ours['wall']:7.2f}   {ours['first line']:7.2f}")
    if theirs:
        print(f"metaflow run         {theirs['wall']:7.2f}   {theirs['first line']:7.2f}")
        ratio = ours["wall"] / theirs["wall"]
        print(f"ratio bedrock / metaflow (wall): {ratio:.2f}")
    else:
        ratio = None
        print("metaflow baseline skipped (no --metaflow-python)")
    print("inside Bedrock, seconds from the run's creation (median), and the command's own parts:")
    for name, seconds in inside.items():
        print(f"  {name:20} {'-' if seconds is None else f'{seconds:6.2f}'}")
    report = {
        "repeat": args.repeat,
        "bedrock": ours,
        "metaflow": theirs,
        "ratio": ratio,
        "inside": inside,
    }
    print("JSON " + json.dumps(report))


if __name__ == "__main__":
    main()
