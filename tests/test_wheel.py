"""Bedrock as a wheel, not the checkout: built by `pip wheel .`, installed into a fresh virtual
environment, and run from a directory that has nothing of Bedrock in it.

The wheel must carry everything the server needs (templates, static files, the example, the
migrations, the client's source for the package index) and write nothing into the installed
package. The client builds as a wheel of its own, which installs and imports on its own.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import requests

from tests.test_commands import free_port, scratch_env

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _run(*args: str | Path, **kwargs) -> subprocess.CompletedProcess:
    # Never from the checkout: `python -m` puts the working directory first on the path, where
    # pip would take the checkout's bedrock.egg-info for an installed Bedrock.
    kwargs.setdefault("cwd", "/")
    result = subprocess.run(
        [str(arg) for arg in args], capture_output=True, text=True, timeout=900, **kwargs
    )
    assert result.returncode == 0, f"{args}:\n{result.stdout}\n{result.stderr}"
    return result


def _build(source: Path, out: Path) -> Path:
    _run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", out, source)
    return out


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheels")
    _build(ROOT, out)
    # From a copy: building in place would leave build/ and egg-info in the checkout.
    client = tmp_path_factory.mktemp("client-source") / "client"
    shutil.copytree(
        ROOT / "bedrock" / "client",
        client,
        ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"),
    )
    _build(client, out)
    return out


def _wheel(wheels: Path, name: str) -> Path:
    [found] = wheels.glob(f"{name}-*.whl")
    return found


def test_the_wheel_holds_what_the_server_needs(wheels):
    names = zipfile.ZipFile(_wheel(wheels, "bedrock")).namelist()

    for needed in (
        "bedrock/templates/base.html",
        "bedrock/templates/ui/run_detail.html",
        "bedrock/ui/static/ui/favicon.svg",
        "bedrock/ui/templates/graphql/graphiql.html",
        "bedrock/ui/static/ui/vendor/graphiql/graphiql.min.js",
        "bedrock/ui/static/ui/bedrock.css",
        "bedrock/examples/churn/bedrock.hcl",
        "bedrock/examples/churn/train.py",
        "bedrock/client/pyproject.toml",
        "bedrock/client/bdrk/__init__.py",
        "bedrock/runs/migrations/0001_initial.py",
    ):
        assert needed in names, needed
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]
    # Nothing of the checkout's own top level (tests, CI, benchmarks) is in it.
    assert {name.split("/")[0] for name in names} <= {"bedrock", *_dist_info(names)}


def _dist_info(names: list[str]) -> set[str]:
    return {name.split("/")[0] for name in names if ".dist-info/" in name}


def test_the_installed_wheel_serves_the_ui_and_runs_the_demo_from_anywhere(wheels, tmp_path):
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", venv)
    python = venv / "bin" / "python"
    _run(python, "-m", "pip", "install", "-q", _wheel(wheels, "bedrock"))
    package = Path(
        _run(
            python, "-c", "import bedrock, os; print(os.path.dirname(bedrock.__file__))"
        ).stdout.strip()
    )
    assert package.is_relative_to(venv), package
    before = _files(package)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**scratch_env(tmp_path), "PATH": f"{venv / 'bin'}:{os.environ['PATH']}"}
    env.pop("BEDROCK_HOME")
    env["HOME"] = str(tmp_path / "user")  # the default BEDROCK_HOME is the user's
    bedrock = venv / "bin" / "bedrock"

    demo = _run(bedrock, "demo", "--quiet", cwd=elsewhere, env=env)
    assert "model version: churn-model v1" in demo.stdout
    assert re.search(r"scoring result: scored 200 customers", demo.stdout)
    home = tmp_path / "user" / ".local" / "share" / "bedrock"
    assert (home / "bedrock.sqlite3").is_file()

    port = free_port()
    server = subprocess.Popen(
        [bedrock, "runserver", "--noreload", "--insecure", f"127.0.0.1:{port}"],
        cwd=elsewhere,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        login = _get(f"http://127.0.0.1:{port}/login/")
        assert "Log in to Bedrock" in login.text
        css = _get(f"http://127.0.0.1:{port}/static/ui/bedrock.css")
        assert css.status_code == 200 and css.text.strip()
        chart = _get(f"http://127.0.0.1:{port}/static/ui/vendor/uplot/uPlot.iife.min.js")
        assert chart.status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=30)

    assert _files(package) == before, "the installed package was written to"
    assert not list(elsewhere.iterdir()), "the working directory was written to"


def _get(url: str) -> requests.Response:
    deadline = time.monotonic() + 60
    while True:
        try:
            return requests.get(url, timeout=10)
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _files(package: Path) -> set[str]:
    return {
        str(path.relative_to(package))
        for path in package.rglob("*")
        if "__pycache__" not in path.parts
    }


def test_the_client_wheel_installs_and_imports_on_its_own(wheels, tmp_path):
    venv = tmp_path / "client-venv"
    _run(sys.executable, "-m", "venv", venv)
    python = venv / "bin" / "python"
    _run(python, "-m", "pip", "install", "-q", "--no-index", _wheel(wheels, "bdrk"))

    shown = _run(python, "-c", "import bdrk, bedrock_client; print(bdrk.__version__)")

    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", shown.stdout.strip())
    # The client is standard library only: nothing of the server came with it.
    alone = _run(python, "-c", "import importlib.util as u; print(u.find_spec('django'))")
    assert alone.stdout.strip() == "None"
