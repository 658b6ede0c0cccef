"""Runs of a step that installs a package from PyPI: the first, and the next with the same lines.

A scratch home and a Git repository with two training pipelines: one whose step's install lines
``pip install`` a package (``--package``, scikit-learn by default) and one that installs nothing.
Each run is a whole ``bedrock run PIPELINE --wait`` process, timed from its start to the script's
first line (the step's install and script lines print the time they start). Three runs of the
installing step, in this order:

1. first: empty caches (no pip cache, no venv template, no kept environment);
2. pip cache only: the second run as before kept environments, ``BEDROCK_ENV_CACHE_SIZE=0``;
3. reused: the second run with the environment that run 1 kept.

The goal: run 3 starts its script within 2 s of run 1's time less the install time it saved.
Then the step's venv for a step that installs nothing, the old way (``python -m venv`` with
ensurepip, in the step's sandbox, a whole process) against the new (a copy of the interpreter's
template), the median of ``--repeat`` each, in this same run; and the no-install pipeline's time
to its script. Prints a table, the ratios, then one line starting with ``JSON ``::

    .venv/bin/python bench/installs.py
    .venv/bin/python bench/installs.py --package numpy --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.devserver import free_port, stop, wait_until_answers  # noqa: E402

MARK_INSTALL = "BENCH-INSTALL"
MARK_SCRIPT = "BENCH-SCRIPT"
GOAL_SECONDS = 2.0

HCL = """version = "1.0"
train {{
  step "{name}" {{
    image = "python:{python}-slim"
    install = [{install}]
    script = [{{sh = ["echo {script} $(date +%s.%N)", "echo 1 > $BEDROCK_ARTEFACT_DIR/model"]}}]
  }}
}}
"""


def _hcl(name: str, install: list[str]) -> str:
    python = f"{sys.version_info[0]}.{sys.version_info[1]}"
    lines = ", ".join(json.dumps(line) for line in install)
    return HCL.format(name=name, python=python, install=lines, script=MARK_SCRIPT)


def _repository(path: Path, package: str) -> None:
    install = [f"echo {MARK_INSTALL} $(date +%s.%N)", f"pip install --progress-bar off {package}"]
    (path / "installs").mkdir(parents=True)
    (path / "noinstall").mkdir()
    (path / "installs" / "bedrock.hcl").write_text(_hcl("installs", install))
    (path / "noinstall" / "bedrock.hcl").write_text(_hcl("noinstall", []))
    git = ["git", "-C", str(path), "-c", "user.name=bench", "-c", "user.email=bench@localhost"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "bench"], check=True)


def _pipelines(repo: Path) -> None:
    import django

    django.setup()
    from bedrock.models.models import Model
    from bedrock.pipelines.models import Pipeline, PipelineKind, Project

    project = Project.objects.create(name="bench")
    for name in ("installs", "noinstall"):
        Pipeline.objects.create(
            project=project,
            name=name,
            git_url=str(repo),
            config_path=f"{name}/bedrock.hcl",
            kind=PipelineKind.TRAINING,
            model=Model.objects.create(project=project, name=name),
        )


def _run(pipeline: str, env: dict[str, str]) -> dict[str, float]:
    """One ``bedrock run --wait``: seconds from its start to the install and script lines."""
    started = time.time()
    done = subprocess.run(
        [sys.executable, "-m", "bedrock.cli", "run", f"bench/{pipeline}", "--wait"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.time() - started
    if done.returncode != 0:
        raise SystemExit(f"the run of {pipeline} failed:\n{done.stdout}\n{done.stderr}")
    marks = {}
    for line in done.stdout.splitlines():
        for mark in (MARK_INSTALL, MARK_SCRIPT):
            if f"] {mark} " in line:
                marks[mark] = float(line.rsplit(" ", 1)[1]) - started
    to_script = marks[MARK_SCRIPT]
    install = to_script - marks[MARK_INSTALL] if MARK_INSTALL in marks else 0.0
    reused = "bedrock: reusing the environment" in done.stdout
    return {"to_script": to_script, "install": install, "wall": wall, "reused": reused}


def _venv_creation(home: Path, repeat: int) -> dict[str, float]:
    """The old way (python -m venv, ensurepip) and the new (the template's copy), in a sandbox."""
    from bedrock.runs.executors import local, venvs
    from bedrock.runs.executors.base import StepContext
    from bedrock.runs.executors.interpreters import host_interpreter

    python = host_interpreter()
    sandbox = local.bubblewrap() is not None
    old, new = [], []
    for attempt in range(repeat):
        for way, times in (("old", old), ("new", new)):
            step = home / "bench-venvs" / f"{way}-{attempt}"
            for name in ("app", "artefact", "tmp", "home", "venv", "pip-cache", "uv-cache"):
                (step / name).mkdir(parents=True)
            context = StepContext(0, step / "app", step / "artefact", step, {}, {}, 1)
            if sandbox and local._as_root():
                local._hand_over(context)
            prefix = local._sandbox_args(context, python=python) if sandbox else []
            inside = local.VENV if sandbox else str(step / "venv")
            started = time.perf_counter()
            if way == "old":
                command = [*prefix, python.executable, "-m", "venv", inside]
                subprocess.run(command, check=True, capture_output=True)
            else:
                venvs.create(prefix, python, step / "venv", inside)
            times.append(time.perf_counter() - started)
    return {"old": statistics.median(old), "new": statistics.median(new), "sandboxed": sandbox}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--package", default="scikit-learn", help="what the step installs")
    parser.add_argument("--repeat", type=int, default=5, help="venvs made each way")
    parser.add_argument("--keep", action="store_true", help="leave the scratch directory")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench-installs-"))
    env = {**os.environ, "BEDROCK_HOME": str(scratch / "home")}
    env["DJANGO_SETTINGS_MODULE"] = "bedrock.settings"
    env.pop("DATABASE_URL", None)
    # One server for every run, as `bedrock up` is: the steps' PIP_EXTRA_INDEX_URL (its package
    # index) is then the same in each, as it is in production.
    port = free_port()
    env["BEDROCK_API_DOMAIN"] = f"http://127.0.0.1:{port}"
    os.environ.update(env)
    os.environ.pop("DATABASE_URL", None)
    bedrock = [sys.executable, "-m", "bedrock.cli"]
    server = None
    try:
        _repository(scratch / "repo", args.package)
        subprocess.run([*bedrock, "migrate", "-v", "0"], env=env, check=True)
        _pipelines(scratch / "repo")
        server = subprocess.Popen(
            [*bedrock, "runserver", "--noreload", f"127.0.0.1:{port}"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until_answers(env["BEDROCK_API_DOMAIN"])
        first = _run("installs", env)
        pip_cache_only = _run("installs", {**env, "BEDROCK_ENV_CACHE_SIZE": "0"})
        reused = _run("installs", env)
        noinstall = _run("noinstall", env)
        venv = _venv_creation(scratch / "home", args.repeat)
    finally:
        if server is not None:
            stop(server)
        if args.keep:
            print(f"scratch directory: {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    _report(args.package, first, pip_cache_only, reused, noinstall, venv)


def _report(package, first, pip_cache_only, reused, noinstall, venv) -> None:
    saved = first["install"] - reused["install"]
    margin = reused["to_script"] - (first["to_script"] - saved)
    # Run 1 also made the interpreter's venv template: against run 2, only the install differs.
    saved_2 = pip_cache_only["install"] - reused["install"]
    margin_2 = reused["to_script"] - (pip_cache_only["to_script"] - saved_2)
    print(f"A step that runs `pip install {package}`, from the run's start to its script\n")
    print(f"{'run':<34} {'to script':>10} {'install':>9} {'whole run':>10}")
    rows = (
        ("1 first (empty caches)", first),
        ("2 pip cache only (old second run)", pip_cache_only),
        ("3 environment reused", reused),
        ("a step that installs nothing", noinstall),
    )
    for label, row in rows:
        print(f"{label:<34} {row['to_script']:>9.2f}s {row['install']:>8.2f}s {row['wall']:>9.2f}s")
    print(
        f"\ninstall time saved: {saved:.2f} s; run 3 starts its script {margin:+.2f} s after run "
        f"1's time less that (goal: within {GOAL_SECONDS:.0f} s: "
        f"{'met' if margin <= GOAL_SECONDS else 'missed'})"
    )
    print(
        f"against run 2: {saved_2:.2f} s of install saved; run 3 starts its script "
        f"{margin_2:+.2f} s after run 2's time less that"
    )
    print(
        f"to script, first / reused: {first['to_script'] / reused['to_script']:.1f}x; "
        f"pip cache only / reused: {pip_cache_only['to_script'] / reused['to_script']:.1f}x"
    )
    where = "in the sandbox" if venv["sandboxed"] else "without a sandbox"
    print(
        f"venv of a step, {where}: python -m venv {venv['old']:.2f} s, template copy "
        f"{venv['new']:.2f} s ({venv['old'] / venv['new']:.1f}x)"
    )
    if not reused["reused"]:
        print("(run 3 did not say it reused an environment)")
    report = {
        "package": package,
        "first": first,
        "pip_cache_only": pip_cache_only,
        "reused": reused,
        "noinstall": noinstall,
        "install_seconds_saved": saved,
        "reused_margin_seconds": margin,
        "goal_met": margin <= GOAL_SECONDS,
        "install_seconds_saved_against_pip_cache": saved_2,
        "reused_margin_against_pip_cache_seconds": margin_2,
        "to_script_ratio_first_over_reused": first["to_script"] / reused["to_script"],
        "to_script_ratio_pip_cache_over_reused": pip_cache_only["to_script"] / reused["to_script"],
        "venv_seconds_old": venv["old"],
        "venv_seconds_new": venv["new"],
        "venv_ratio": venv["old"] / venv["new"],
        "sandboxed": venv["sandboxed"],
    }
    print("JSON " + json.dumps(report))


if __name__ == "__main__":
    main()
