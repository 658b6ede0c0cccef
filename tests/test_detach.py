"""A supervisor forked from the process that starts it: detached, outliving it, holding none of
its descriptors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from django.db import transaction

from bedrock.runs.detach import fork_safe
from tests.runflow import wait_for

ROOT = Path(__file__).resolve().parents[1]
# The parent serves a listening socket, as `bedrock run --wait` serves the steps' API, forks the
# child and exits; the child waits until the parent is gone, then says what it is and holds.
PARENT = """
import json, os, socket, sys, time
import django

django.setup()
from bedrock.runs.detach import detach

server = socket.create_server(("127.0.0.1", 0))
parent = os.getpid()
report, log = sys.argv[1], sys.argv[2]


def child():
    while os.path.exists(f"/proc/{parent}"):
        time.sleep(0.05)
    fds = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            fds[fd] = os.readlink(f"/proc/self/fd/{fd}")
        except FileNotFoundError:  # the listing's own descriptor, closed since
            pass
    facts = {"ppid": os.getppid(), "sid": os.getsid(0), "pid": os.getpid(), "fds": fds}
    with open(report + ".part", "w") as out:
        json.dump(facts, out)
    os.rename(report + ".part", report)
    print("the child's own line")


with open(log, "wb") as out:
    print(detach(child, out.fileno()))
"""


def test_a_forked_supervisor_outlives_its_parent_in_a_session_of_its_own(tmp_path):
    report, facts = _fork(tmp_path)

    assert facts["pid"] == report["child"]
    # setsid: a session of its own, so what signals the parent's group or terminal misses it
    assert facts["sid"] not in (os.getsid(0), report["parent"])
    assert facts["ppid"] != report["parent"]  # reparented away from the parent
    assert facts["fds"]["0"] == os.devnull
    assert facts["fds"]["1"] == facts["fds"]["2"] == str(tmp_path / "child.log")
    wait_for(lambda: "the child's own line" in (tmp_path / "child.log").read_text(), what="log")


def test_a_forked_supervisor_keeps_none_of_its_parents_sockets(tmp_path):
    _, facts = _fork(tmp_path)

    assert not [target for target in facts["fds"].values() if target.startswith("socket:")]


def test_a_supervisor_is_not_forked_inside_a_transaction(transactional_db):
    assert fork_safe()
    with transaction.atomic():
        assert not fork_safe()


def _fork(tmp_path: Path) -> tuple[dict, dict]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("DJANGO_")}
    env.update(BEDROCK_HOME=str(tmp_path / "home"), DJANGO_SETTINGS_MODULE="bedrock.settings")
    facts_path = tmp_path / "facts.json"
    argv = [sys.executable, "-c", PARENT, str(facts_path), str(tmp_path / "child.log")]
    parent = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    output, _ = parent.communicate(timeout=120)
    assert parent.returncode == 0
    log = tmp_path / "child.log"
    wait_for(lambda: facts_path.exists() or "Traceback" in log.read_text(), timeout=30)
    assert facts_path.exists(), log.read_text()
    facts = json.loads(facts_path.read_text())
    return {"parent": parent.pid, "child": int(output.split()[-1])}, facts
