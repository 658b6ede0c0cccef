"""Benchmark logging metrics from a step: Bedrock's client against MLflow's, on the same machine.

Starts Bedrock's server (``bedrock runserver``, as ``bedrock up`` serves) on a scratch database,
creates runs with their own tokens, and runs a step-like process per case: Python with the
client on its path and the variables a step gets (BEDROCK_API_DOMAIN, BEDROCK_API_TOKEN,
BEDROCK_RUN_STEP_NAME). Each case logs ``--points`` points to one metric:

    loop    bdrk.log_metric(name, value) once per point
    batch   bdrk.log_batch({name: values}) with --batch points per call

Points per second is the points over the process's whole wall time (start to exit, which waits
for the client to send everything), and every point is counted in the database afterwards. The
baseline is MLflow's client (``--mlflow-python``, a Python with mlflow installed) logging to its
own SQLite store in the same run: a ``log_metric`` loop (over ``--mlflow-loop-points``, since it
manages a few hundred a second) and ``log_batch`` in batches of 1,000 (its maximum).

Then the run page over HTTP, signed in: the median of ``--page-requests`` GETs of the run with
the loop's points against a run with none.

    .venv/bin/python bench/tracking.py --mlflow-python /path/to/venv/bin/python
    .venv/bin/python bench/tracking.py --database-url postgres://…   # the same on PostgreSQL

Prints a table, then one line of JSON (prefixed ``JSON ``) for machines.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from pathlib import Path

from devserver import free_port, stop, wait_until_answers

ROOT = Path(__file__).resolve().parents[1]
GOAL = 50_000  # points per second, loop or batch

LOOP = """
import math, time, bdrk
started = time.perf_counter()
for i in range({points}):
    bdrk.log_metric("loss", math.sin(i / 1000))
print("LOOP", time.perf_counter() - started)
"""
BATCH = """
import math, time, bdrk
started = time.perf_counter()
for start in range(0, {points}, {batch}):
    end = min(start + {batch}, {points})
    bdrk.log_batch({{"loss": [math.sin(i / 1000) for i in range(start, end)]}})
print("LOOP", time.perf_counter() - started)
"""
MLFLOW_LOOP = """
import math, time, mlflow
mlflow.set_tracking_uri("sqlite:///{store}")
with mlflow.start_run():
    started = time.perf_counter()
    for i in range({points}):
        mlflow.log_metric("loss", math.sin(i / 1000), step=i)
    print("LOOP", time.perf_counter() - started)
"""
MLFLOW_BATCH = """
import math, time, mlflow
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
mlflow.set_tracking_uri("sqlite:///{store}")
client = MlflowClient()
with mlflow.start_run() as run:
    started = time.perf_counter()
    now = int(time.time() * 1000)
    for start in range(0, {points}, 1000):
        end = min(start + 1000, {points})
        metrics = [Metric("loss", math.sin(i / 1000), now, i) for i in range(start, end)]
        client.log_batch(run.info.run_id, metrics=metrics)
    print("LOOP", time.perf_counter() - started)
"""


def _timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """The process's wall time, and the time its own loop reported."""
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{argv[0]} failed:\n{done.stdout}\n{done.stderr}")
    loops = [line for line in done.stdout.splitlines() if line.startswith("LOOP ")]
    return wall, float(loops[-1].split()[1]) if loops else float("nan")


class Server:
    """Bedrock's server on a scratch home, and the Django setup to create rows in its database."""

    def __init__(self, home: Path, database_url: str) -> None:
        self.env = {
            **os.environ,
            "BEDROCK_HOME": str(home),
            "DJANGO_SETTINGS_MODULE": "bedrock.settings",
        }
        self.env.pop("DATABASE_URL", None)
        if database_url:
            self.env["DATABASE_URL"] = database_url
        os.environ.update(self.env)
        if not database_url:
            os.environ.pop("DATABASE_URL", None)
        bedrock = [sys.executable, "-m", "bedrock.cli"]
        subprocess.run([*bedrock, "migrate", "-v", "0"], env=self.env, check=True)
        if database_url:
            subprocess.run([*bedrock, "flush", "--no-input"], env=self.env, check=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [*bedrock, "runserver", "--noreload", f"127.0.0.1:{self.port}"],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until_answers(self.url)
        import django

        django.setup()

    def stop(self) -> None:
        stop(self.process)

    def run(self, number: int):
        from bedrock.accounts.models import hash_token
        from bedrock.models.models import Model
        from bedrock.pipelines.models import Pipeline, Project
        from bedrock.runs.models import Run, RunStatus, RunStep

        project, _ = Project.objects.get_or_create(name="bench")
        model, _ = Model.objects.get_or_create(project=project, name="bench-model")
        pipeline, _ = Pipeline.objects.get_or_create(
            project=project,
            name="bench",
            defaults={"git_url": "https://git.example.com/b.git", "model": model},
        )
        token = "bdrkrun_" + secrets.token_urlsafe(32)
        run = Run.objects.create(
            pipeline=pipeline,
            number=number,
            ref="main",
            status=RunStatus.RUNNING,
            token_hash=hash_token(token),
        )
        RunStep.objects.create(run=run, name="train", position=0)
        return run, token

    def session_cookie(self, run) -> str:
        from django.contrib.auth import get_user_model
        from django.contrib.sessions.backends.db import SessionStore

        from bedrock.pipelines.models import Membership

        user, _ = get_user_model().objects.get_or_create(username="bench")
        Membership.objects.get_or_create(project=run.pipeline.project, user=user)
        session = SessionStore()
        session["_auth_user_id"] = str(user.pk)
        session["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
        session["_auth_user_hash"] = user.get_session_auth_hash()
        session.create()
        return f"sessionid={session.session_key}"


def _page_median(url: str, cookie: str, requests: int) -> float:
    times = []
    for _ in range(requests + 1):
        request = urllib.request.Request(url, headers={"Cookie": cookie})  # noqa: S310
        started = time.perf_counter()
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
            response.read()
            assert response.status == 200
        times.append(time.perf_counter() - started)
    return statistics.median(times[1:])  # the first warms the server's caches


def bedrock_cases(server: Server, args) -> dict:
    from bedrock.tracking.models import Metric

    results = {}
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "bedrock" / "client"),
        "BEDROCK_API_DOMAIN": server.url,
    }
    env["BEDROCK_RUN_STEP_NAME"] = "train"
    for number, (case, script) in enumerate((("loop", LOOP), ("batch", BATCH)), start=1):
        run, token = server.run(number)
        code = textwrap.dedent(script).format(points=args.points, batch=args.batch)
        wall, loop = _timed([sys.executable, "-c", code], {**env, "BEDROCK_API_TOKEN": token})
        stored = Metric.objects.get(run=run, name="loss").count
        if stored != args.points:
            raise SystemExit(f"{case}: {stored} of {args.points} points were stored")
        results[case] = {
            "points": args.points,
            "wall": wall,
            "calls": loop,
            "rate": args.points / wall,
            "run": run,
        }
    return results


def mlflow_cases(python: str, args, scratch: Path) -> dict:
    results = {}
    cases = (("loop", MLFLOW_LOOP, args.mlflow_loop_points), ("batch", MLFLOW_BATCH, args.points))
    for case, script, points in cases:
        store = scratch / f"mlflow-{case}.db"
        code = textwrap.dedent(script).format(points=points, store=store)
        env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{store}"}
        wall, loop = _timed([python, "-c", code], env)
        results[case] = {"points": points, "wall": wall, "calls": loop, "rate": points / wall}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--mlflow-python", default="", help="a Python with mlflow installed")
    parser.add_argument("--mlflow-loop-points", type=int, default=3_000)
    parser.add_argument("--page-requests", type=int, default=20)
    parser.add_argument("--database-url", default="", help="PostgreSQL instead of SQLite")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    scratch = Path(tempfile.mkdtemp(prefix="bench-tracking-"))
    server = Server(scratch / "home", args.database_url)
    try:
        ours = bedrock_cases(server, args)
        empty, _ = server.run(len(ours) + 1)
        cookie = server.session_cookie(empty)
        full = _page_median(
            f"{server.url}/runs/{ours['loop']['run'].pk}/", cookie, args.page_requests
        )
        none = _page_median(f"{server.url}/runs/{empty.pk}/", cookie, args.page_requests)
        theirs = mlflow_cases(args.mlflow_python, args, scratch) if args.mlflow_python else {}
    finally:
        server.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    database = "PostgreSQL" if args.database_url else "SQLite"
    print(f"Logging {args.points:,} points to one metric, Bedrock on {database}\n")
    print(
        f"{'case':<8} {'Bedrock pts/s':>14} {'calls took':>11} {'MLflow pts/s':>13} "
        f"{'ratio':>7} {'goal':>7}"
    )
    report: dict = {"database": database, "points": args.points, "cases": {}}
    for case, row in ours.items():
        other = theirs.get(case)
        ratio = row["rate"] / other["rate"] if other else float("nan")
        ratio_text = f"{ratio:>6.1f}x" if other else f"{'-':>7}"
        mlflow_rate = f"{other['rate']:>13,.0f}" if other else f"{'-':>13}"
        print(
            f"{case:<8} {row['rate']:>14,.0f} {row['calls']:>10.2f}s {mlflow_rate} {ratio_text} "
            f"{'met' if row['rate'] >= GOAL else 'missed':>7}"
        )
        report["cases"][case] = {
            "bedrock_points_per_second": row["rate"],
            "bedrock_wall_seconds": row["wall"],
            "bedrock_calls_seconds": row["calls"],
            "mlflow_points": other["points"] if other else None,
            "mlflow_points_per_second": other["rate"] if other else None,
            "ratio": ratio if other else None,
        }
    if not theirs:
        print("(no MLflow baseline: pass --mlflow-python, a Python with mlflow installed)")
    print(
        f"\nrun page: {full * 1000:.1f} ms with {args.points:,} points, "
        f"{none * 1000:.1f} ms with none ({full / none:.2f}x)"
    )
    report["page_ms_with_points"], report["page_ms_without"] = full * 1000, none * 1000
    report["page_ratio"] = full / none
    print("JSON " + json.dumps(report))


if __name__ == "__main__":
    main()
