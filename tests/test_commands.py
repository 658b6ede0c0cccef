"""`bedrock up`, `bedrock demo` and `bedrock run` as a user runs them: separate processes, a
scratch BEDROCK_HOME with its own SQLite database, the real worker and supervisors."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[1]
BEDROCK = [sys.executable, "-m", "bedrock.cli"]


def scratch_env(tmp_path) -> dict[str, str]:
    """This environment without Bedrock's settings, and a BEDROCK_HOME of its own."""
    clean = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("BEDROCK_", "DATABASE_", "DJANGO_"))
    }
    return {**clean, "BEDROCK_HOME": str(tmp_path / "home")}


@pytest.fixture
def env(tmp_path):
    return scratch_env(tmp_path)


def bedrock(env, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*BEDROCK, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def processes_of(home: str, fragment: str, *, parent: int | None = None) -> list[int]:
    """Pids whose command line has ``fragment`` and whose environment names ``home`` (children
    of ``parent`` only, when given), zombies left out."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            environ = (entry / "environ").read_bytes().decode(errors="replace")
            state, ppid = (entry / "stat").read_text().rpartition(")")[2].split()[:2]
        except (OSError, ValueError):
            continue
        if parent is not None and int(ppid) != parent:
            continue
        if fragment in cmdline and f"BEDROCK_HOME={home}" in environ and state != "Z":
            found.append(int(entry.name))
    return found


def up_serving(
    env: dict[str, str], port: int, *, prefix: tuple[str, ...] = ()
) -> tuple[subprocess.Popen, list[str]]:
    """`bedrock up` on ``port``, once it says it serves; its output goes on into the list."""
    up = subprocess.Popen(
        [*prefix, *BEDROCK, "up", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = up.stdout.readline()
        lines.append(line)
        if "Serving Bedrock" in line or not line:
            break
    # Keep reading: the server and its worker log to this pipe, and one that fills up would
    # block them on a write, shutdown included.
    threading.Thread(target=lambda: lines.extend(up.stdout), daemon=True).start()
    return up, lines


@pytest.mark.parametrize(
    "stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["Ctrl-C", "a service manager's TERM"]
)
@pytest.mark.slow
def test_bedrock_up_serves_the_ui_with_the_example_and_stops_its_worker_when_told(env, stop_signal):
    port = free_port()
    # Started as a shell without job control starts a background command: with SIGINT ignored,
    # an ignore the command inherits. `bedrock up` must stop on Ctrl-C all the same.
    up, lines = up_serving(env, port, prefix=("sh", "-c", 'trap "" INT; exec "$@"', "sh"))
    try:
        output = "".join(lines)
        password = re.search(r"'admin' with password: (\S+)", output).group(1)
        assert "Loaded the example project 'example'" in output

        session = requests.Session()
        for _ in range(100):
            try:
                login = session.get(f"http://127.0.0.1:{port}/admin/login/", timeout=5)
                break
            except requests.ConnectionError:
                time.sleep(0.2)
        assert login.status_code == 200
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login.text).group(1)
        admin = session.post(
            f"http://127.0.0.1:{port}/admin/login/?next=/admin/pipelines/pipeline/",
            data={"username": "admin", "password": password, "csrfmiddlewaretoken": token},
            headers={"Referer": f"http://127.0.0.1:{port}/admin/login/"},
            timeout=10,
        )
        assert admin.status_code == 200
        assert "churn-train" in admin.text and "churn-score" in admin.text
        assert processes_of(env["BEDROCK_HOME"], "qcluster"), "the worker runs beside the server"
    finally:
        up.send_signal(stop_signal)
        try:
            up.wait(timeout=60)
        except subprocess.TimeoutExpired:
            up.kill()
            pytest.fail(
                f"bedrock up did not stop on {stop_signal.name}; it said:\n"
                + "".join(lines)[-4000:]
            )
    deadline = time.monotonic() + 20
    while processes_of(env["BEDROCK_HOME"], "qcluster") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert processes_of(env["BEDROCK_HOME"], "qcluster") == []


@pytest.mark.slow
def test_bedrock_up_prints_the_password_only_the_first_time(env):
    # The first steps of `up`, twice, without starting a server.
    script = (
        "from django.core.management import call_command\n"
        "from bedrock.runs.management.commands.up import Command\n"
        "call_command('migrate', verbosity=0)\n"
        "Command()._ensure_administrator()\n"
        "Command()._ensure_administrator()\n"
    )
    result = bedrock(env, "shell", "-c", script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("with password:") == 1
    assert "An administrator exists already" in result.stdout


@pytest.mark.slow
def test_bedrock_demo_trains_publishes_and_scores(env):
    result = bedrock(env, "demo", "--quiet")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "model version: churn-model v1" in result.stdout
    assert re.search(r"scoring result: scored 200 customers: \d+ at risk", result.stdout)
    archive = Path(re.search(r"archive: (\S+)", result.stdout).group(1))
    with zipfile.ZipFile(archive) as opened:
        assert {"model.json", "metrics.json", "scaling.json"} <= set(opened.namelist())


@pytest.mark.slow
def test_bedrock_run_wait_follows_the_logs_and_exits_with_the_outcome(env):
    setup = bedrock(
        env,
        "shell",
        "-c",
        "from django.core.management import call_command; call_command('migrate', verbosity=0)\n"
        "from bedrock.runs.examples import example_load; example_load()",
    )
    assert setup.returncode == 0, setup.stderr

    trained = bedrock(env, "run", "example/churn-train", "--param", "EPOCHS=100", "--wait")

    assert trained.returncode == 0, trained.stdout + trained.stderr
    assert "[train] validation accuracy" in trained.stdout
    assert "step train: Succeeded" in trained.stdout
    assert "run 1: Succeeded" in trained.stdout

    rejected = bedrock(env, "run", "example/churn-score", "--wait")
    assert rejected.returncode == 1
    assert "rejected: a batch scoring run needs a model version" in rejected.stderr

    failing = bedrock(env, "run", "example/churn-train", "--param", "EPOCHS=oops", "--wait")
    assert failing.returncode == 1
    assert "failed" in failing.stderr and "exit code" in failing.stderr

    unknown = bedrock(env, "run", "nope", "--wait")
    assert unknown.returncode != 0
    assert "No active pipeline 'nope'" in unknown.stderr
