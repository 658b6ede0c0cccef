"""`bedrock serve`, the production web process, and the static files the app serves itself."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests
from django.core.management.base import CommandError

from bedrock.ui.management.commands.serve import gunicorn_bind
from tests.test_commands import BEDROCK, ROOT, bedrock, free_port, scratch_env

STATIC = ROOT / "bedrock" / "ui" / "static" / "ui"


@pytest.fixture
def env(tmp_path):
    return scratch_env(tmp_path)


def children_of(pid: int) -> list[int]:
    """Live processes whose parent is ``pid``: gunicorn's workers under its master."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            state, ppid = (entry / "stat").read_text().rpartition(")")[2].split()[:2]
        except (OSError, ValueError):
            continue
        if int(ppid) == pid and state != "Z":
            found.append(int(entry.name))
    return found


def test_the_app_serves_its_static_files_itself(client):
    response = client.get("/static/ui/bedrock.css")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == (STATIC / "bedrock.css").read_bytes()


def test_a_static_file_that_does_not_exist_is_a_404(client):
    assert client.get("/static/ui/nothing-here.css").status_code == 404


@pytest.mark.parametrize(
    ("addrport", "bind"),
    [("8000", "127.0.0.1:8000"), ("0.0.0.0:80", "0.0.0.0:80"), ("[::1]:8080", "[::1]:8080")],
)
def test_serve_binds_where_runserver_would(addrport, bind):
    assert gunicorn_bind(addrport) == bind


def test_serve_refuses_an_address_without_a_port():
    with pytest.raises(CommandError, match="ADDR:PORT"):
        gunicorn_bind("localhost")


def test_serve_refuses_to_start_while_migrations_are_pending(env):
    done = bedrock(env, "serve", f"127.0.0.1:{free_port()}", timeout=120)
    assert done.returncode == 1
    assert "migration" in done.stderr and "bedrock migrate" in done.stderr
    assert "Listening at" not in done.stderr + done.stdout


@pytest.mark.slow
def test_serve_serves_a_page_and_a_static_file_and_stops_gracefully_on_sigterm(env):
    assert bedrock(env, "migrate", "-v", "0").returncode == 0
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [*BEDROCK, "serve", f"127.0.0.1:{port}", "--workers", "2", "--threads", "2"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    logs: dict[str, str] = {}
    # Read both pipes all along: a server blocked on a full pipe would never stop.
    readers = [
        threading.Thread(target=lambda n=n, p=p: logs.__setitem__(n, p.read()), daemon=True)
        for n, p in (("stdout", server.stdout), ("stderr", server.stderr))
    ]
    for reader in readers:
        reader.start()
    try:
        for _ in range(300):
            try:
                page = requests.get(f"{url}/login/", timeout=5)
                break
            except requests.ConnectionError:
                assert server.poll() is None, "bedrock serve exited"
                time.sleep(0.2)
        assert page.status_code == 200 and "<form" in page.text
        assert page.headers["Server"].startswith("gunicorn")
        static = requests.get(f"{url}/static/ui/bedrock.css", timeout=5)
        assert static.status_code == 200
        assert static.content == (STATIC / "bedrock.css").read_bytes()
        workers = children_of(server.pid)
        assert len(workers) == 2
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            returncode = server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            pytest.fail("bedrock serve did not stop on SIGTERM")
    for reader in readers:
        reader.join(timeout=10)
    assert returncode == 0
    assert [pid for pid in workers if Path(f"/proc/{pid}").exists()] == []
    # The access log is on stdout, one line a request; gunicorn's own log on stderr.
    assert '"GET /login/ HTTP/1.1" 200' in logs["stdout"]
    assert '"GET /static/ui/bedrock.css HTTP/1.1" 200' in logs["stdout"]
    assert "Handling signal: term" in logs["stderr"]
