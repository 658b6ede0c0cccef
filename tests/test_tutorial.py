"""docs/tutorial.md as a new user follows it: its files written and its commands run in order, in
a scratch directory with a scratch BEDROCK_HOME, then the outcome checked in the API and the UI.

Which fenced blocks of the page are run, by their info string:

- ```` ```sh ````: commands, run in page order in one shell session (the current directory,
  variables, exported or not, and shell functions carry from one block to the next), with ``set
  -euo pipefail``: the first failing command fails the test;
- ```` ```sh background ````: a command that serves until stopped (``bedrock up``), started in
  the background; the next block starts once it answers HTTP;
- ```` ```LANG title="PATH" ````: a file, written to PATH in the session's current directory;
- every other block (```` ```console ````, ```` ```text ```` without a title) is output shown
  to the reader, and is not run.

The one change made to the page's commands is the port: ``bedrock up`` is given a free port
and ``8000`` in a command becomes that port (with ``BEDROCK_API_DOMAIN`` naming it, as the
default names 8000), so that the test never meets another server of this machine. The
environment is a user's: this installation's ``bedrock`` first on PATH, and a Git identity, as
a user's Git configuration would give.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.test_commands import free_port, processes_of, scratch_env

ROOT = Path(__file__).resolve().parents[1]
TUTORIAL = ROOT / "docs" / "tutorial.md"
FENCE = re.compile(r"^```(?P<info>[^\n`]*)\n(?P<body>.*?)^```[ \t]*$", re.M | re.S)
TITLE = re.compile(r'\btitle="(?P<path>[^"]+)"')


@dataclass(frozen=True)
class Block:
    kind: str  # "run", "background" or "file"
    text: str
    path: str = ""


def tutorial_blocks(text: str) -> list[Block]:
    """The page's blocks that the test acts on, in page order (the rule is the module's)."""
    blocks = []
    for match in FENCE.finditer(text):
        info, body = match.group("info").split(), match.group("body")
        title = TITLE.search(match.group("info"))
        if title:
            blocks.append(Block("file", body, title.group("path")))
        elif info[:1] == ["sh"]:
            blocks.append(Block("background" if "background" in info[1:] else "run", body))
    return blocks


# Bash's own variables, which a later process has of its own (or may not set: readonly ones).
_SPECIAL = (
    r"^declare -[a-zA-Z-]*r|^declare -[^ ]* (BASH[A-Z_]*|DIRSTACK|EUID|FUNCNAME|GROUPS|HISTCMD|"
    r"LINENO|OLDPWD|PIPESTATUS|PPID|PWD|RANDOM|SECONDS|SHELLOPTS|SHLVL|SRANDOM|UID|_)(=|$)"
)


class Session:
    """One shell session spread over several bash processes: each block starts where the one
    before left its directory, its variables (exported or not) and its functions."""

    def __init__(self, scratch: Path, env: dict[str, str], port: int) -> None:
        self.env = env
        self.port = port
        self.state = scratch / "session.sh"
        self.cwd = scratch / "cwd"
        self.state.write_text("")
        self.cwd.write_text(str(scratch / "work"))
        (scratch / "work").mkdir()
        self.outputs: list[str] = []

    def directory(self) -> Path:
        return Path(self.cwd.read_text().strip())

    def script(self, commands: str) -> str:
        commands = re.sub(r"\b8000\b", str(self.port), commands)
        return (
            f"set -euo pipefail\nsource {shlex.quote(str(self.state))}\n"
            f'cd "$(cat {shlex.quote(str(self.cwd))})"\n{commands}\n'
            f"pwd > {shlex.quote(str(self.cwd))}\n"
            f"{{ declare -p | grep -Ev {shlex.quote(_SPECIAL)}; declare -f; }}"
            f" > {shlex.quote(str(self.state))}\n"
        )

    def run(self, commands: str) -> str:
        done = subprocess.run(
            ["bash", "-c", self.script(commands)],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        output = done.stdout + done.stderr
        assert done.returncode == 0, f"the tutorial's commands failed:\n{commands}\n{output}"
        self.outputs.append(output)
        return output

    def background(self, commands: str, log: Path) -> subprocess.Popen:
        commands = re.sub(r"\bbedrock up\b(?! \S)", f"bedrock up 127.0.0.1:{self.port}", commands)
        with log.open("w") as out:
            server = subprocess.Popen(
                ["bash", "-c", self.script(commands)],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and server.poll() is None:
            try:
                requests.get(f"http://127.0.0.1:{self.port}/login/", timeout=5)
                return server
            except requests.ConnectionError:
                time.sleep(0.5)
        server.kill()
        pytest.fail(f"the tutorial's server did not start:\n{log.read_text()[-4000:]}")


def stop(server: subprocess.Popen) -> None:
    """Ctrl-C's equivalent for the server the test started: SIGTERM to its process group (the
    shell and ``bedrock up``, which stops its worker), then SIGKILL for whatever lingers."""
    group = server.pid  # started in a session of its own, so it leads its group
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGTERM)
    server.wait()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        time.sleep(0.5)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGKILL)


def user_env(tmp_path: Path, port: int) -> dict[str, str]:
    env = scratch_env(tmp_path)
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '/usr/bin:/bin')}"
    env["BEDROCK_API_DOMAIN"] = f"http://127.0.0.1:{port}"
    # A new user's Git knows who they are; this machine's may not.
    for who in ("AUTHOR", "COMMITTER"):
        env[f"GIT_{who}_NAME"] = "Tutorial Reader"
        env[f"GIT_{who}_EMAIL"] = "reader@example.com"
    return env


def graphql(port: int, token: str, query: str) -> dict:
    answer = requests.post(
        f"http://127.0.0.1:{port}/graphql",
        json={"query": query},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    ).json()
    assert "errors" not in answer, answer
    return answer["data"]


def signed_in(port: int, password: str) -> requests.Session:
    session = requests.Session()
    base = f"http://127.0.0.1:{port}"
    page = session.get(f"{base}/login/", timeout=30)
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    session.post(
        f"{base}/login/",
        data={"username": "admin", "password": password, "csrfmiddlewaretoken": csrf},
        headers={"Referer": f"{base}/login/"},
        timeout=30,
    )
    return session


def test_the_tutorials_blocks_are_found_by_the_rule():
    blocks = tutorial_blocks(TUTORIAL.read_text())
    kinds = [block.kind for block in blocks]

    assert kinds.count("background") == 1
    assert {block.path for block in blocks if block.kind == "file"} == {
        "customers.csv",
        "train.py",
        "score.py",
        "batch.csv",
        "bedrock.hcl",
    }
    assert kinds.index("background") < len(kinds) - 1, "commands follow the server's start"


@pytest.mark.slow
def test_the_tutorial_trains_a_model_and_scores_a_batch_with_it(tmp_path):
    port = free_port()
    session = Session(tmp_path, user_env(tmp_path, port), port)
    servers: list[subprocess.Popen] = []
    try:
        for index, block in enumerate(tutorial_blocks(TUTORIAL.read_text())):
            if block.kind == "file":
                (session.directory() / block.path).write_text(block.text)
            elif block.kind == "background":
                servers.append(session.background(block.text, tmp_path / f"server-{index}.log"))
            else:
                session.run(block.text)
        output = "\n".join(session.outputs)
        assert "bedrock.hcl: OK" in output
        assert "[train] cutoff: 56.0" in output
        assert "[score] at risk: n02, n03" in output
        assert output.count("run 1: Succeeded") == 2, output

        state = (tmp_path / "session.sh").read_text()
        token = re.search(r"BEDROCK_TOKEN=\"?(bdrk_[^\"\s]+)", state).group(1)
        data = graphql(
            port,
            token,
            "{ pipelines { edges { node { name project { name } model { id } runs { edges { "
            "node { id status inputModelVersion { number model { name } } "
            "metrics { name latestValue } } } } } } } }",
        )
        pipelines = {
            edge["node"]["name"]: [run["node"] for run in edge["node"]["runs"]["edges"]]
            for edge in data["pipelines"]["edges"]
            if edge["node"]["project"]["name"] == "tutorial"
        }
        (model_id,) = {
            edge["node"]["model"]["id"]
            for edge in data["pipelines"]["edges"]
            if edge["node"]["project"]["name"] == "tutorial" and edge["node"]["model"]
        }
        (trained,) = pipelines["churn-train"]
        (scored,) = pipelines["churn-score"]
        assert trained["status"] == scored["status"] == "SUCCEEDED"
        assert scored["inputModelVersion"] == {"number": 1, "model": {"name": "churn"}}
        metrics = {metric["name"]: metric["latestValue"] for metric in scored["metrics"]}
        assert metrics == {"scored": 4.0, "at_risk": 2.0}

        # What the page says the reader sees: the scoring run's page, signed in as admin.
        (log,) = tmp_path.glob("server-*.log")
        password = re.search(r"'admin' with password: (\S+)", log.read_text()).group(1)
        browser = signed_in(port, password)
        page = browser.get(f"http://127.0.0.1:{port}/runs/{scored['id']}/", timeout=30)
        assert page.status_code == 200
        assert "Succeeded" in page.text and "churn v1" in page.text
        assert "at_risk" in page.text, "the metrics the scoring logged are on its page"
        log_page = browser.get(
            f"http://127.0.0.1:{port}/runs/{scored['id']}/steps/score/log", timeout=30
        )
        assert "at risk: n02, n03" in log_page.text
        model_page = browser.get(f"http://127.0.0.1:{port}/models/{model_id}/", timeout=30)
        assert "churn-v1.zip" in model_page.text and "accuracy" in model_page.text
        # The names the page's UI steps give are the UI's.
        form = browser.get(f"http://127.0.0.1:{port}/pipelines/new", timeout=30).text
        for label in ("Project", "Name", "Kind", "Repository", "Branch", "Config path", "Model"):
            assert f">{label}</label>" in form, label
        assert "New project" in browser.get(f"http://127.0.0.1:{port}/projects/", timeout=30).text
    finally:
        for server in servers:
            stop(server)
    assert processes_of(session.env["BEDROCK_HOME"], "bedrock") == [], "the server stopped"
