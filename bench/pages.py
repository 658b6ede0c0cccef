"""Benchmark the UI's pages under 20 concurrent users on the production setup.

A PostgreSQL server of its own (``initdb`` into a scratch directory under /tmp, as the postgres
user, on port ``--pg-port``, 5498 by default; stopped and removed at the end, failure or not)
holds a realistic database built with ``bench/lists.py``'s builder: a project of ``--runs`` runs
over four training pipelines (two steps each, a model version for every tenth run, with three
metrics each), three more projects of a tenth of that, one the user is not in, a few API tokens
and the pipeline's kept bedrock.hcl. Then three servers on loopback, on the same database:

    serve       ``bedrock serve`` (gunicorn), the production web process
    runserver   ``bedrock runserver``, Django's development server, as ``bedrock up`` serves
    floor       a WSGI application that answers "ok" on gunicorn with serve's workers and
                threads: what the server and the load generator cost with no Django at all

``wrk`` (Debian's ``apt-get install wrk``) loads each page with ``--connections`` connections
(20) for ``--duration`` seconds, signed in by a session cookie, after a short warm-up: the home
page (the pipelines and their last runs), a project, a pipeline, a run, a model and the API
tokens; then a static file on serve, and the floor. The servers take turns page by page, each
first on every other page, so that what else the machine runs weighs on both alike. Reported:
each page's median latency (``wrk --latency``) and requests/s, the errors and non-2xx answers,
and the ratios of runserver to serve and of serve to the floor. The goal is a median under
100 ms for every page on serve.

    .venv/bin/python bench/pages.py
    .venv/bin/python bench/pages.py --runs 1000 --duration 2    # quick

Prints a table, then one line of JSON (prefixed ``JSON ``) for machines. Asserts nothing; exits
non-zero when wrk or PostgreSQL is missing or a page does not answer 200.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from devserver import free_port, wait_until_answers

ROOT = Path(__file__).resolve().parents[1]
GOAL_MS = 100.0
PAGES = ("home", "project", "pipeline", "run", "model", "tokens")
CONFIG = """\
train {
  step "prepare" {
    image = "python:3.11"
    install = ["pip install -r requirements.txt"]
    script = [{sh = ["python prepare.py"]}]
    resources { cpu = "0.5"
      memory = "1G" }
  }
  step "train" {
    image = "python:3.11"
    install = ["pip install -r requirements.txt"]
    script = [{sh = ["python train.py"]}]
    depends_on = ["prepare"]
    resources { cpu = "1"
      memory = "2G" }
  }
  parameters { LEARNING_RATE = "0.1" }
}
"""


# --- the database ------------------------------------------------------------------------------
def build(runs: int) -> dict:
    """Fill the (migrated) scratch database; run inside the servers' environment."""
    import django

    django.setup()
    from django.utils import timezone
    from lists import analyse, fill_project, member, session_cookie

    from bedrock.accounts.services import api_token_create
    from bedrock.pipelines.models import PipelineConfigSnapshot
    from bedrock.runs.models import Run
    from bedrock.tracking.models import Metric

    made = fill_project("bench", runs, 4)
    others = [fill_project(f"team-{i}", max(1, runs // 10), 2) for i in range(4)]
    user = member("bench", [made[0].project] + [pipelines[0].project for pipelines in others[:3]])
    published = Run.objects.filter(
        pipeline__project=made[0].project, output_model_version__isnull=False
    )
    Metric.objects.bulk_create(
        Metric(
            run_id=pk,
            name=name,
            latest_value=0.5,
            latest_x=99,
            min_value=0.1,
            max_value=0.9,
        )
        for pk in published.values_list("pk", flat=True)
        for name in ("accuracy", "auc", "loss")
    )
    PipelineConfigSnapshot.objects.create(
        pipeline=made[0],
        ref=made[0].branch,
        config_path="bedrock.hcl",
        commit_sha="0" * 40,
        text=CONFIG,
        read_at=timezone.now(),
    )
    for n in range(5):
        api_token_create(user=user, name=f"token {n}")
    analyse()
    run = published.filter(pipeline=made[0]).order_by("-created_at").first()
    assert run is not None
    return {
        "cookie": session_cookie(user),
        "paths": {
            "home": "/",
            "project": f"/projects/{made[0].project_id}/",
            "pipeline": f"/pipelines/{made[0].pk}/",
            "run": f"/runs/{run.pk}/",
            "model": f"/models/{made[0].model_id}/",
            "tokens": "/tokens/",
        },
    }


class Postgres:
    """A PostgreSQL server of the benchmark's own, in a scratch directory."""

    def __init__(self, port: int) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version)
        if not found:
            raise SystemExit("PostgreSQL is not installed: apt-get install -y postgresql")
        self.bin = Path(found[-1]).parent
        self.port = port
        self.data = Path(tempfile.mkdtemp(prefix="bench-pages-pg-", dir="/tmp"))
        shutil.chown(self.data, "postgres", "postgres")
        self.url = f"postgres://postgres@127.0.0.1:{port}/bedrock"

    def start(self) -> None:
        self._as_postgres(f"{self.bin}/initdb -D {self.data} -A trust -U postgres")
        options = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1"
        self._as_postgres(
            f"{self.bin}/pg_ctl -D {self.data} -o '{options}' -l {self.data}/log -w start"
        )
        self._as_postgres(f"{self.bin}/createdb -h 127.0.0.1 -p {self.port} bedrock")

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._as_postgres(f"{self.bin}/pg_ctl -D {self.data} -m fast -w stop")
        shutil.rmtree(self.data, ignore_errors=True)

    def _as_postgres(self, command: str) -> None:
        done = subprocess.run(
            ["su", "postgres", "-s", "/bin/sh", "-c", command],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise subprocess.CalledProcessError(done.returncode, command, done.stdout, done.stderr)


def _version(path: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", path))


# --- the servers -------------------------------------------------------------------------------
def floor_app(environ: dict, start_response) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]


def start_servers(env: dict, workers: int, threads: int) -> dict[str, tuple[subprocess.Popen, str]]:
    bedrock = [sys.executable, "-m", "bedrock.cli"]
    ports = {name: free_port() for name in ("serve", "runserver", "floor")}
    argv = {
        "serve": [
            *bedrock,
            "serve",
            f"127.0.0.1:{ports['serve']}",
            f"--workers={workers}",
            f"--threads={threads}",
        ],
        "runserver": [
            *bedrock,
            "runserver",
            "--noreload",
            "--insecure",
            f"127.0.0.1:{ports['runserver']}",
        ],
        "floor": [
            sys.executable,
            "-m",
            "gunicorn",
            f"--bind=127.0.0.1:{ports['floor']}",
            f"--workers={workers}",
            f"--threads={threads}",
            "--worker-class=gthread",
            "--no-control-socket",
            f"--chdir={Path(__file__).parent}",
            "pages:floor_app",
        ],
    }
    servers = {}
    for name, command in argv.items():
        process = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        servers[name] = (process, f"http://127.0.0.1:{ports[name]}")
    for name, (_, url) in servers.items():
        if name != "floor":
            wait_until_answers(url)
    return servers


def check_page(url: str, cookie: str) -> None:
    """Exit unless ``url`` answers 200 to the signed-in user (not a redirect to the login)."""
    request = urllib.request.Request(url, headers={"Cookie": cookie})  # noqa: S310
    for _ in range(50):
        try:
            with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
                if response.status == 200 and response.url == url:
                    return
                raise SystemExit(f"{url} answered {response.status} at {response.url}")
        except urllib.error.HTTPError as exc:
            raise SystemExit(f"{url} answered {exc.code}: {exc.read()[:2000]!r}") from exc
        except (ConnectionError, urllib.error.URLError):  # the floor may still be starting
            time.sleep(0.2)
    raise SystemExit(f"{url} did not answer")


# --- wrk ---------------------------------------------------------------------------------------
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def wrk(url: str, cookie: str, connections: int, seconds: float) -> dict:
    command = [
        "wrk",
        f"--connections={connections}",
        f"--threads={min(connections, 2)}",
        f"--duration={max(1, round(seconds))}s",
        "--timeout=10s",
        "--latency",
        f"--header=Cookie: {cookie}",
        url,
    ]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    median = re.search(r"^\s*50%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.MULTILINE)
    rate = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.MULTILINE)
    if median is None or rate is None:
        raise SystemExit(f"cannot read wrk's report:\n{out}")
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "median_ms": float(median[1]) * _UNITS[median[2]],
        "requests_per_s": float(rate[1]),
        "socket_errors": sum(int(n) for n in errors.groups()) if errors else 0,
        "non_2xx": int(non_2xx[1]) if non_2xx else 0,
    }


def measure(servers: dict, paths: dict[str, str], cookie: str, args) -> dict:
    results: dict[str, dict] = {}
    # Each server goes first on every other page, so that neither always follows the other.
    cases = [
        (page, ("serve", "runserver")[:: 1 if n % 2 == 0 else -1], paths[page])
        for n, page in enumerate(PAGES)
    ]
    cases += [("static", ("serve",), "/static/ui/bedrock.css"), ("floor", ("floor",), "/")]
    for case, names, path in cases:
        results[case] = {}
        for name in names:
            url = servers[name][1] + path
            check_page(url, cookie)
            wrk(url, cookie, args.connections, args.warmup)
            results[case][name] = wrk(url, cookie, args.connections, args.duration)
    return results


# --- the report --------------------------------------------------------------------------------
def report(results: dict, args, workers: int, threads: int) -> None:
    floor = results["floor"]["floor"]["median_ms"]
    print(
        f"{args.connections} connections, {args.duration:g} s per page and server, "
        f"{args.runs:,} runs on PostgreSQL; serve: {workers} workers x {threads} threads\n"
    )
    header = f"{'page':<9} {'serve ms':>9} {'req/s':>7} {'runserver ms':>13} {'req/s':>7}"
    print(f"{header} {'dev/serve':>9} {'serve/floor':>11} {'goal':>6}  errors")
    for case, by_server in results.items():
        serve = by_server.get("serve") or by_server["floor"]
        dev = by_server.get("runserver")
        met = serve["median_ms"] < GOAL_MS
        if case in PAGES:
            by_server["met"] = met
        row = f"{case:<9} {serve['median_ms']:>9.1f} {serve['requests_per_s']:>7.0f} "
        if dev:
            row += f"{dev['median_ms']:>13.1f} {dev['requests_per_s']:>7.0f} "
            row += f"{dev['median_ms'] / serve['median_ms']:>8.2f}x "
        else:
            row += f"{'':>13} {'':>7} {'':>9} "
        row += f"{serve['median_ms'] / floor:>10.1f}x {'met' if met else 'missed':>6}  "
        row += ", ".join(
            f"{name}: {r['socket_errors']} socket, {r['non_2xx']} non-2xx"
            for name, r in by_server.items()
            if isinstance(r, dict) and (r["socket_errors"] or r["non_2xx"])
        )
        print(row.rstrip())
    summary = {
        "database": "PostgreSQL",
        "runs": args.runs,
        "connections": args.connections,
        "duration_s": args.duration,
        "workers": workers,
        "threads": threads,
        "goal_ms": GOAL_MS,
        "met": all(results[page]["met"] for page in PAGES),
        "cases": results,
    }
    print("JSON " + json.dumps(summary))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20_000, help="runs of the main project")
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--duration", type=float, default=10, help="seconds per page and server")
    parser.add_argument("--warmup", type=float, default=2)
    parser.add_argument("--pg-port", type=int, default=5498)
    parser.add_argument("--workers", type=int, help="bedrock serve's, by default its own")
    parser.add_argument("--threads", type=int, help="bedrock serve's, by default its own")
    parser.add_argument("--build", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    if args.build is not None:
        print(json.dumps(build(args.build)))
        return
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    # A SIGTERM (a CI timeout) unwinds like an error, so the servers and PostgreSQL still stop.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    workers, threads = _serve_defaults(args)
    postgres = Postgres(args.pg_port)
    home = Path(tempfile.mkdtemp(prefix="bench-pages-home-"))
    servers: dict = {}
    try:
        postgres.start()
        env = _environment(home, postgres.url)
        bedrock = [sys.executable, "-m", "bedrock.cli"]
        subprocess.run([*bedrock, "migrate", "-v", "0"], env=env, check=True)
        started = time.perf_counter()
        argv = [sys.executable, __file__, "--build", str(args.runs)]
        built = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        if built.returncode != 0:
            raise SystemExit(f"building the database failed:\n{built.stderr}")
        print(f"(built {args.runs:,} runs in {time.perf_counter() - started:.0f} s)")
        rows = json.loads(built.stdout.splitlines()[-1])
        servers = start_servers(env, workers, threads)
        results = measure(servers, rows["paths"], rows["cookie"], args)
    finally:
        for process, _ in servers.values():
            process.terminate()
        for process, _ in servers.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=40)
        postgres.stop()
        shutil.rmtree(home, ignore_errors=True)
    report(results, args, workers, threads)


def _serve_defaults(args) -> tuple[int, int]:
    """bedrock serve's workers and threads as its settings would choose them (the floor needs
    the same numbers, and the servers' environment leaves out BEDROCK_*)."""
    workers = int(os.environ.get("BEDROCK_SERVE_WORKERS") or os.cpu_count() or 1)
    threads = int(os.environ.get("BEDROCK_SERVE_THREADS") or 10)
    return args.workers or workers, args.threads or threads


def _environment(home: Path, database_url: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("BEDROCK_", "DATABASE_", "DJANGO_"))
    }
    return {
        **env,
        "BEDROCK_HOME": str(home),
        "DATABASE_URL": database_url,
        "DJANGO_SETTINGS_MODULE": "bedrock.settings",
        "PYTHONPATH": str(ROOT),
    }


if __name__ == "__main__":
    main()
