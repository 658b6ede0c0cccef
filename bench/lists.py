"""Benchmark list pages: the same page of runs over a small and a large database.

For each size (``--sizes``, 100 and 100,000 runs by default) a scratch database is built with
``bulk_create``: one project, ``--pipelines`` training pipelines sharing the runs, two steps per
run, a model version for every tenth run, one run in two failed (so that the page filtered by status
is full at 100 runs too, and the ratio compares pages of the same size). Then Bedrock's
server (``bedrock runserver``, as ``bedrock up`` serves) is started on it in a subprocess and each
case is timed over HTTP, the median of ``--requests`` requests after one that warms the server:

    runs        GraphQL runs(first: 50) with pipeline, steps and output version (API token)
    failed      the same filtered by status FAILED
    total       the same with totalCount
    versions    GraphQL model(id) { versions(first: 5) } with each version's run (5, so that
                the 8 versions of 100 runs fill the page too)
    pipeline    the UI page of one pipeline (/pipelines/<id>/), signed in
    run         the UI page of one run (/runs/<id>/), signed in

The baseline is the same case over the smallest size, so the ratio says what the number of runs
costs. The goal: within 1.5x, and under 50 ms for every case at the largest size. On PostgreSQL
the database is vacuumed and analysed once built, as autovacuum would have done.

    .venv/bin/python bench/lists.py                          # SQLite
    .venv/bin/python bench/lists.py --postgres postgres://…  # or DATABASE_URL; it is flushed

Prints a table, then one line of JSON (prefixed ``JSON ``) for machines.
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
import urllib.request
from datetime import timedelta
from pathlib import Path

from devserver import free_port, stop, wait_until_answers

ROOT = Path(__file__).resolve().parents[1]
GOAL_RATIO = 1.5
GOAL_MS = 50.0
BATCH = 5_000

RUNS_QUERY = """
query Runs($status: RunStatus) {
  runs(first: 50, filters: {status: {exact: $status}}) {
    %s
    edges { node {
      id number status createdAt
      pipeline { id name }
      steps { edges { node { id name status } } }
      outputModelVersion { id number }
    } }
  }
}
"""


def fill_project(name: str, runs: int, pipelines: int) -> list:
    """A project ``name`` with its model, ``pipelines`` training pipelines sharing ``runs`` runs
    (two steps each, one in two failed) and a version of the model for every tenth run; returns
    the pipelines."""
    from django.utils import timezone

    from bedrock.models.models import Model, ModelVersion
    from bedrock.pipelines.models import Pipeline, PipelineKind, Project
    from bedrock.runs.models import Run, RunStatus, RunStep

    project = Project.objects.create(name=name)
    model = Model.objects.create(project=project, name=f"{name}-model")
    made = [
        Pipeline.objects.create(
            project=project,
            name=f"bench-{i}",
            git_url="https://git.example.com/b.git",
            kind=PipelineKind.TRAINING,
            model=model,
        )
        for i in range(pipelines)
    ]
    start = timezone.now() - timedelta(seconds=runs)
    versions = 0
    for offset in range(0, runs, BATCH):
        batch = [
            Run(
                pipeline=made[i % pipelines],
                number=i // pipelines + 1,
                ref="main",
                status=RunStatus.FAILED if i % 2 else RunStatus.SUCCEEDED,
                created_at=start + timedelta(seconds=i),
            )
            for i in range(offset, min(offset + BATCH, runs))
        ]
        Run.objects.bulk_create(batch)
        RunStep.objects.bulk_create(
            RunStep(run=run, name=name, position=p, status=run.status)
            for run in batch
            for p, name in enumerate(("prepare", "train"))
        )
        published = [run for run in batch if run.number % 10 == 0]
        ModelVersion.objects.bulk_create(
            ModelVersion(
                model=model,
                number=versions + n + 1,
                run=run,
                storage_key=f"bench/{run.pk}",
                size=1,
                sha256="0" * 64,
                file_count=1,
            )
            for n, run in enumerate(published)
        )
        versions += len(published)
    return made


VERSIONS_QUERY = """
query Versions($model: ID!) {
  model(id: $model) {
    versions(first: 5) { edges { node { id number createdAt run { id number status } } } }
  }
}
"""


def build(runs: int, pipelines: int) -> dict:
    """Fill the (migrated) scratch database; run inside the server's environment."""
    import django

    django.setup()
    from bedrock.accounts.services import api_token_create
    from bedrock.runs.models import Run

    made = fill_project("bench", runs, pipelines)
    user = member("bench", [made[0].project])
    analyse()
    return {
        "token": api_token_create(user=user).plaintext,
        "cookie": session_cookie(user),
        "pipeline": made[0].pk,
        "run": Run.objects.filter(pipeline=made[0]).values_list("pk", flat=True).first(),
        "model": made[0].model_id,
    }


def member(username: str, projects: list):
    """A user who is a member (a viewer) of each of ``projects``."""
    from django.contrib.auth import get_user_model

    from bedrock.pipelines.models import Membership

    user = get_user_model().objects.create(username=username)
    Membership.objects.bulk_create(Membership(project=p, user=user) for p in projects)
    return user


def session_cookie(user) -> str:
    """The Cookie header of a session signed in as ``user``, as the login form would leave."""
    from django.contrib.sessions.backends.db import SessionStore

    session = SessionStore()
    session["_auth_user_id"] = str(user.pk)
    session["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
    session["_auth_user_hash"] = user.get_session_auth_hash()
    session.create()
    return f"sessionid={session.session_key}"


def analyse() -> None:
    from django.db import connection

    if connection.vendor == "postgresql":
        # What autovacuum does to a table that grew over months; bulk_create leaves no statistics
        # and no visibility map, and the planner would guess the plan of an empty table.
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")


class Server:
    """Bedrock's server on a scratch database holding ``runs`` runs."""

    def __init__(self, home: Path, database_url: str, runs: int, pipelines: int) -> None:
        self.env = {**os.environ, "BEDROCK_HOME": str(home)}
        self.env["DJANGO_SETTINGS_MODULE"] = "bedrock.settings"
        self.env.pop("DATABASE_URL", None)
        if database_url:
            self.env["DATABASE_URL"] = database_url
        bedrock = [sys.executable, "-m", "bedrock.cli"]
        subprocess.run([*bedrock, "migrate", "-v", "0"], env=self.env, check=True)
        if database_url:
            subprocess.run([*bedrock, "flush", "--no-input"], env=self.env, check=True)
        started = time.perf_counter()
        argv = [sys.executable, __file__, "--build", str(runs), "--pipelines", str(pipelines)]
        built = subprocess.run(argv, env=self.env, capture_output=True, text=True, check=False)
        if built.returncode != 0:
            raise SystemExit(f"building {runs} runs failed:\n{built.stderr}")
        self.build_seconds = time.perf_counter() - started
        self.rows = json.loads(built.stdout.splitlines()[-1])
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [*bedrock, "runserver", "--noreload", f"127.0.0.1:{self.port}"],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until_answers(self.url)

    def stop(self) -> None:
        stop(self.process)

    def graphql(self, total: bool, status: str | None) -> urllib.request.Request:
        body = {"query": RUNS_QUERY % ("totalCount" if total else ""), "variables": {}}
        if status:
            body["variables"]["status"] = status
        return self._post(body)

    def versions(self) -> urllib.request.Request:
        return self._post(
            {"query": VERSIONS_QUERY, "variables": {"model": str(self.rows["model"])}}
        )

    def _post(self, body: dict) -> urllib.request.Request:
        return urllib.request.Request(  # noqa: S310
            f"{self.url}/graphql",
            data=json.dumps(body).encode(),
            headers={
                "Authorization": f"Bearer {self.rows['token']}",
                "Content-Type": "application/json",
            },
        )

    def page(self, path: str) -> urllib.request.Request:
        return urllib.request.Request(  # noqa: S310
            f"{self.url}{path}", headers={"Cookie": self.rows["cookie"]}
        )

    def cases(self) -> dict[str, urllib.request.Request]:
        return {
            "runs": self.graphql(total=False, status=None),
            "failed": self.graphql(total=False, status="FAILED"),
            "total": self.graphql(total=True, status=None),
            "versions": self.versions(),
            "pipeline": self.page(f"/pipelines/{self.rows['pipeline']}/"),
            "run": self.page(f"/runs/{self.rows['run']}/"),
        }


def _median(request: urllib.request.Request, requests: int) -> float:
    times = []
    for _ in range(requests + 1):
        started = time.perf_counter()
        with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310
            body = response.read()
        times.append(time.perf_counter() - started)
        if response.status != 200 or b'"errors"' in body:
            raise SystemExit(f"{request.full_url} answered {response.status}: {body[:500]!r}")
    return statistics.median(times[1:])  # the first warms the server's caches


def measure(database_url: str, runs: int, args, scratch: Path) -> dict:
    server = Server(scratch / f"home-{runs}", database_url, runs, args.pipelines)
    try:
        medians = {
            name: _median(request, args.requests) * 1000 for name, request in server.cases().items()
        }
    finally:
        server.stop()
    return {"build_seconds": server.build_seconds, "ms": medians}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100,100000", help="runs per database, smallest first")
    parser.add_argument("--pipelines", type=int, default=4)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--postgres", default=os.environ.get("DATABASE_URL", ""))
    parser.add_argument("--build", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    if args.build is not None:
        print(json.dumps(build(args.build, args.pipelines)))
        return
    sizes = [int(size) for size in args.sizes.split(",")]
    scratch = Path(tempfile.mkdtemp(prefix="bench-lists-"))
    try:
        results = {size: measure(args.postgres, size, args, scratch) for size in sizes}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    database = "PostgreSQL" if args.postgres else "SQLite"
    small, large = sizes[0], sizes[-1]
    print(f"Median ms of {args.requests} requests, Bedrock on {database}\n")
    print(f"{'case':<9} {small:>10,} {large:>10,} {'ratio':>7} {'goal':>7}")
    report: dict = {"database": database, "sizes": sizes, "cases": {}}
    for case in results[small]["ms"]:
        base, big = results[small]["ms"][case], results[large]["ms"][case]
        met = big / base <= GOAL_RATIO and big < GOAL_MS
        print(
            f"{case:<9} {base:>10.1f} {big:>10.1f} {big / base:>6.2f}x "
            f"{'met' if met else 'missed':>7}"
        )
        report["cases"][case] = {
            **{str(size): results[size]["ms"][case] for size in sizes},
            "ratio": big / base,
            "met": met,
        }
    for size in sizes:
        print(f"(built {size:,} runs in {results[size]['build_seconds']:.1f}s)")
    print("JSON " + json.dumps(report))


if __name__ == "__main__":
    main()
