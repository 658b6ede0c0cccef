"""Installs resolved as of the run's commit date: the dated pip's arguments, the date a run
records, and the shim as a step runs it."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bedrock.actors import SYSTEM
from bedrock.pipelines.models import DatedInstalls
from bedrock.runs.installs import pipshim
from bedrock.runs.installs.dated import shim_text
from bedrock.runs.models import RunStatus
from bedrock.runs.services import run_create
from tests.repos import GIT_ENV, hcl, step
from tests.runflow import pipeline_for

COMMITTED = datetime(2022, 3, 4, 5, 6, 7, tzinfo=UTC)


def dated_repo(path: Path, files: dict[str, str], *, when: datetime = COMMITTED) -> Path:
    """A repository whose one commit was made at ``when``."""
    path.mkdir(parents=True)
    for name, text in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    stamp = when.isoformat()
    env = GIT_ENV | {"GIT_AUTHOR_DATE": "2001-01-01T00:00:00Z", "GIT_COMMITTER_DATE": stamp}
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "old"]):
        subprocess.run(["git", *args], cwd=path, env=env, check=True, capture_output=True)
    return path


def args(*argv: str, **environ: str) -> list[str] | None:
    return pipshim.uv_arguments(list(argv), environ)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["install", "-r", "requirements.txt"], ["--requirement", "requirements.txt"]),
        (["install", "-rrequirements.txt"], ["--requirement", "requirements.txt"]),
        (
            ["install", "--requirement=req.txt", "-c", "c.txt"],
            ["--requirement", "req.txt", "--constraint", "c.txt"],
        ),
        (
            ["install", "-e", ".", "bdrk[analyzer]>=0.9.1,<0.10"],
            ["--editable", ".", "bdrk[analyzer]>=0.9.1,<0.10"],
        ),
        (["-q", "install", "--upgrade", "pip"], ["--quiet", "--upgrade", "pip"]),
        (
            ["install", "--no-cache-dir", "--pre", "x==1"],
            ["--no-cache", "--prerelease=allow", "x==1"],
        ),
        (
            ["install", "--extra-index-url", "https://a/simple", "x"],
            ["--extra-index-url", "https://a/simple", "x"],
        ),
        (
            ["install", "-i", "https://b/simple", "--trusted-host", "b", "x"],
            ["--index-url", "https://b/simple", "--allow-insecure-host", "b", "x"],
        ),
        (["install", "--progress-bar", "off", "--no-warn-script-location", "x"], ["x"]),
        (["install", "--upgrade-strategy=eager", "-t", "/tmp/t", "x"], ["--target", "/tmp/t", "x"]),
    ],
)
def test_pip_install_arguments_become_uv_pip_install_arguments(argv, expected):
    assert args(*argv) == expected


@pytest.mark.parametrize(
    "argv",
    [
        ["freeze"],
        ["list", "--format=json"],
        ["uninstall", "-y", "x"],
        ["--version"],
        [],
        ["install", "--user", "x"],
        ["install", "--some-new-option", "x"],
        ["install", "-r"],
    ],
)
def test_anything_but_an_install_the_shim_knows_is_left_to_pip(argv):
    assert args(*argv) is None


def test_pip_environment_indexes_are_passed_to_uv_after_the_command_line_ones():
    environ = {
        "PIP_INDEX_URL": "https://mirror/simple",
        "PIP_EXTRA_INDEX_URL": "https://private/simple http://bedrock:8000/pypi/simple/",
        "PIP_TRUSTED_HOST": "bedrock",
        "PIP_NO_CACHE_DIR": "1",
    }

    assert args("install", "--extra-index-url", "https://x/simple", "bdrk", **environ) == [
        *("--extra-index-url", "https://x/simple", "bdrk"),
        *("--index-url", "https://mirror/simple"),
        *("--extra-index-url", "https://private/simple"),
        *("--extra-index-url", "http://bedrock:8000/pypi/simple/"),
        *("--allow-insecure-host", "bedrock", "--no-cache"),
    ]


def test_an_index_url_on_the_command_line_replaces_the_variables():
    environ = {"PIP_INDEX_URL": "https://mirror/simple"}

    assert args("install", "-i", "https://own/simple", "x", **environ) == [
        *("--index-url", "https://own/simple", "x"),
    ]


def test_the_uv_command_bounds_the_date_but_not_for_bedrocks_undated_client(monkeypatch):
    monkeypatch.setattr(pipshim, "DATE", "2022-03-04T05:06:07Z")
    monkeypatch.setattr(pipshim, "UV", "/bedrock/bin/uv")

    command = pipshim.uv_command(["install", "x"], {}, python="/venv/bin/python")

    assert command == [
        *("/bedrock/bin/uv", "pip", "install", "--python", "/venv/bin/python"),
        *("--exclude-newer", "2022-03-04T05:06:07Z", "--exclude-newer-package", "bdrk=false"),
        *("--index-strategy", "unsafe-best-match", "x"),
    ]


def test_before_boxkite_existed_the_clients_monitoring_dependencies_resolve_as_of_its_release(
    monkeypatch,
):
    monkeypatch.setattr(pipshim, "DATE", "2020-09-15T08:28:31Z")

    command = pipshim.uv_command(["install", "x"], {}, python="/venv/bin/python")

    assert command is not None
    later = [command[i + 1] for i, arg in enumerate(command) if arg == "--exclude-newer-package"]
    assert later == [
        "bdrk=false",
        "boxkite=2021-07-07T00:00:00Z",
        "fluent-logger=2021-07-07T00:00:00Z",
        "msgpack=2021-07-07T00:00:00Z",
        "prometheus-client=2021-07-07T00:00:00Z",
    ]
    assert command[command.index("--exclude-newer") + 1] == "2020-09-15T08:28:31Z"


def _fake_venv(tmp_path: Path) -> Path:
    """A bin directory whose python and uv record how they were called."""
    bin_dir = tmp_path / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    for name in ("python", "uv"):
        (bin_dir / name).write_text(
            f'#!/bin/sh\necho "{name} $*" >> {tmp_path}/calls\n'
            + (
                f'echo "UV_SYSTEM_CERTS=$UV_SYSTEM_CERTS" >> {tmp_path}/env\n'
                if name == "uv"
                else ""
            )
            # uv installing pip writes pip's own script over the shim, as pip's wheel does.
            + (
                'case "$*" in *" pip") echo "#!pip" > "$(dirname $0)/pip";; esac\n'
                if name == "uv"
                else ""
            )
        )
        (bin_dir / name).chmod(0o755)
    return bin_dir


def test_the_shim_runs_uv_for_installs_and_pip_for_the_rest_and_survives_a_pip_upgrade(tmp_path):
    bin_dir = _fake_venv(tmp_path)
    shim = bin_dir / "pip"
    shim.write_text(shim_text(date=COMMITTED, uv=str(bin_dir / "uv"), interpreter=sys.executable))
    shim.chmod(0o755)

    env = {"PIP_CACHE_DIR": str(tmp_path)}  # and none of the machine's own PIP_* variables
    run = [str(shim), "install", "-r", "requirements.txt"]
    done = subprocess.run(run, capture_output=True, text=True, env=env)
    upgrade = [str(shim), "install", "--upgrade", "pip"]
    subprocess.run(upgrade, check=True, capture_output=True, env=env)
    subprocess.run([str(shim), "freeze"], check=True, env=env)

    assert done.returncode == 0, done.stderr
    assert "resolved as of 2022-03-04T05:06:07Z" in done.stderr
    calls = (tmp_path / "calls").read_text().splitlines()
    assert calls[0].startswith(
        f"uv pip install --python {bin_dir}/python --exclude-newer 2022-03-04T05:06:07Z"
    )
    assert calls[0].endswith("--requirement requirements.txt")
    assert calls[1].endswith("--upgrade pip")
    assert calls[2] == "python -m pip freeze"
    assert pipshim.MARKER in shim.read_text()  # put back after uv wrote pip's own script


def test_the_shim_has_uv_trust_the_systems_certificates_as_pip_does(tmp_path):
    bin_dir = _fake_venv(tmp_path)
    shim = bin_dir / "pip"
    shim.write_text(shim_text(date=COMMITTED, uv=str(bin_dir / "uv"), interpreter=sys.executable))
    shim.chmod(0o755)

    subprocess.run([str(shim), "install", "x"], check=True, capture_output=True, env={})

    assert (tmp_path / "env").read_text() == "UV_SYSTEM_CERTS=1\n"


def _pipeline(tmp_path: Path, setting: str, *, commands: tuple[str, ...] = ("echo hi",)):
    repo = dated_repo(tmp_path / "repo", {"bedrock.hcl": hcl("train", step("train", *commands))})
    pipeline = pipeline_for(repo)
    pipeline.dated_installs = setting
    pipeline.save()
    return pipeline


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("setting", "server_default", "recorded"),
    [
        (DatedInstalls.ON, False, COMMITTED),
        (DatedInstalls.OFF, True, None),
        (DatedInstalls.DEFAULT, True, COMMITTED),
        (DatedInstalls.DEFAULT, False, None),
    ],
)
def test_a_run_records_its_commits_date_when_its_pipeline_or_the_server_asks(
    tmp_path, settings, setting, server_default, recorded
):
    settings.BEDROCK_DATED_INSTALLS = server_default

    run = run_create(actor=SYSTEM, pipeline=_pipeline(tmp_path, setting))

    assert run.status == RunStatus.ACCEPTED, run.failure_reason
    assert run.installs_as_of == recorded


@pytest.mark.django_db
def test_no_date_is_recorded_on_an_executor_whose_pip_is_the_images(tmp_path, settings):
    settings.BEDROCK_EXECUTOR = "docker"

    run = run_create(actor=SYSTEM, pipeline=_pipeline(tmp_path, DatedInstalls.ON))

    assert run.installs_as_of is None
