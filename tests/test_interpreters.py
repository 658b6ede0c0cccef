"""The Python that stands in for a step's image on the local executor: the table of images, the
search of the machine, the sandbox's binds and whole runs on an older Python."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from bedrock.actors import SYSTEM
from bedrock.runs.executors.interpreters import (
    Interpreter,
    find_python,
    host_interpreter,
    image_python,
    python_for_image,
)
from bedrock.runs.models import RunStatus
from bedrock.runs.services import run_create
from tests.repos import hcl
from tests.runflow import pipeline_for, repo_with, step_log, wait_until_done

# Image references as the real files write them (../shared/bedrock-hcl-corpus*/), and the
# Python each held.
REAL_IMAGES = [
    ("python:3.7", "3.7"),
    ("python:3.7.9", "3.7"),
    ("python:3.8.6", "3.8"),
    ("python:3.9", "3.9"),
    ("python:3.9.2", "3.9"),
    ("python:3.6-slim", "3.6"),
    ("python:3.9-slim-buster", "3.9"),
    ("python:3.10", "3.10"),
    ("docker.io/library/python:3.8", "3.8"),
    ("basisai/workload-standard", "3.7"),
    ("basisai/workload-standard:v0.1.0", "3.7"),
    ("basisai/workload-standard:v0.2.2", "3.7"),
    ("quay.io/basisai/workload-standard:v0.3.4", "3.7"),
    (
        "052567997892.dkr.ecr.ap-southeast-1.amazonaws.com/quay.io/basisai/workload-standard:v0.3.1",
        "3.7",
    ),
    ("asia.gcr.io/span-ai/pyspark:v2.4.0r2", "3.7"),
    ("asia.gcr.io/span-ai/ds_suite-pyspark:v0.13", "3.7"),
    ("quay.io/basisai/python-cuda:3.9.2-10.1", "3.9"),
    ("quay.io/basisai/python-cuda:3.9.6-11.0", "3.9"),
    ("tensorflow/tensorflow:1.14.0-gpu-py3", "3.6"),
    ("tensorflow/tensorflow:1.13.1-py3", "3.5"),
    ("tensorflow/tensorflow:1.13.1", "2.7"),
    ("tensorflow/tensorflow:2.1.0-gpu-py3", "3.6"),
    ("tensorflow/tensorflow:2.5.0-gpu", "3.6"),
    ("tensorflow/tensorflow:2.7.0-gpu", "3.8"),
    ("tensorflow/tensorflow:2.18.0", "3.11"),
    ("pytorch/pytorch:1.8.0-cuda11.1-cudnn8-devel", "3.8"),
    ("continuumio/miniconda3:4.10.3", "3.9"),
]
UNKNOWN_IMAGES = [
    ("python:latest", "the tag 'latest' has named each new Python in turn"),
    ("python:3", "the tag '3' has named each new Python in turn"),
    ("python", "the tag 'latest' has named each new Python in turn"),
    ("tensorflow/tensorflow:latest-gpu", "the tag 'latest-gpu' has followed each TensorFlow"),
    ("continuumio/miniconda3:latest", "the tag 'latest' held a different Python each year"),
    ("nvidia/cuda:10.0-base", "the image has no Python of its own"),
    ("hfchong/darknet:v0.1.0", "Bedrock does not know which Python this image holds"),
]


@pytest.mark.parametrize(("image", "version"), REAL_IMAGES)
def test_an_image_of_the_real_files_maps_to_the_python_it_held(image, version):
    assert image_python(image).version == version


@pytest.mark.parametrize(("image", "why"), UNKNOWN_IMAGES)
def test_an_image_whose_python_is_not_known_says_why(image, why):
    found = image_python(image)

    assert found.version is None
    assert found.why.startswith(why)


def test_all_but_eleven_steps_of_the_real_files_have_their_images_python(shared_dir):
    from bedrock.pipelines import spec

    unknown: list[str] = []
    steps = 0
    for path in sorted(shared_dir.glob("bedrock-hcl-corpus*/*.hcl")):
        try:
            loaded = spec.load_file(path)
        except spec.SpecError:
            continue  # the expected errors of the corpus
        for name, stanza in loaded.stanzas.items():
            for step in stanza.steps if name != "serve" else ():
                steps += 1
                if image_python(step.image).version is None:
                    unknown.append(step.image)

    assert steps == 248
    # Conda's moving tag, CUDA without Python, and two images of people's own.
    assert sorted(set(unknown)) == [
        "bootjp/wrk2",
        "continuumio/miniconda3:latest",
        "hfchong/darknet:v0.1.0",
        "nvidia/cuda:10.0-base",
        "nvidia/cuda:10.1-cudnn8-devel",
    ]
    assert len(unknown) == 11


# --- the search, over a made-up machine: each "interpreter" a script answering the probe


def _fake_python(prefix: Path, version: str, *, name: str | None = None) -> Path:
    """An installation at ``prefix`` whose bin/pythonX.Y says it is ``version``."""
    minor = ".".join(version.split(".")[:2])
    program = prefix / "bin" / (name or f"python{minor}")
    program.parent.mkdir(parents=True, exist_ok=True)
    program.write_text(f"#!/bin/sh\necho {version}\necho {prefix}\n")
    program.chmod(0o755)
    return program


@pytest.fixture
def machine(tmp_path, monkeypatch, settings):
    """No Python anywhere but where a test puts one."""
    root = tmp_path / "machine"
    monkeypatch.setenv("PYENV_ROOT", str(root / "pyenv"))
    monkeypatch.setenv("UV_PYTHON_INSTALL_DIR", str(root / "uv"))
    monkeypatch.setenv("PATH", str(root / "path"))
    settings.BEDROCK_PYTHONS = []
    return root


def test_pyenvs_newest_patch_of_the_version_is_found(machine):
    _fake_python(machine / "pyenv" / "versions" / "3.7.2", "3.7.2")
    _fake_python(machine / "pyenv" / "versions" / "3.7.16", "3.7.16")
    _fake_python(machine / "pyenv" / "versions" / "3.8.1", "3.8.1")

    found = find_python("3.7")

    assert found is not None and found.version == "3.7.16"
    assert found.prefix == str(machine / "pyenv" / "versions" / "3.7.16")


def test_the_search_goes_bedrock_pythons_then_pyenv_then_uv_then_the_path(machine, settings):
    own = machine / "own"
    programs = [
        _fake_python(own / "3.7.1", "3.7.1"),
        _fake_python(machine / "pyenv" / "versions" / "3.7.2", "3.7.2"),
        _fake_python(machine / "uv" / "cpython-3.7.3-linux-x86_64-gnu", "3.7.3"),
        _fake_python(machine / "path-install", "3.7.4"),
    ]
    (machine / "path").mkdir()
    (machine / "path" / "python3.7").symlink_to(programs[-1])
    settings.BEDROCK_PYTHONS = [str(own)]

    seen = []
    for program in programs:  # each source in turn, then gone
        seen.append(find_python("3.7").version)
        program.unlink()

    assert seen == ["3.7.1", "3.7.2", "3.7.3", "3.7.4"]
    assert find_python("3.7") is None


def test_a_bedrock_pythons_entry_may_be_an_installation_or_a_directory_of_programs(
    machine, settings
):
    installation = machine / "opt" / "python-3.9"
    _fake_python(installation, "3.9.20")
    programs = machine / "bin"
    _fake_python(machine / "elsewhere", "3.6.9")
    programs.mkdir()
    (programs / "python3.6").symlink_to(machine / "elsewhere" / "bin" / "python3.6")
    settings.BEDROCK_PYTHONS = [str(installation), str(programs)]

    assert find_python("3.9").version == "3.9.20"
    assert find_python("3.6").prefix == str(machine / "elsewhere")


def test_an_installation_whose_name_lies_about_its_version_is_passed_over(machine):
    _fake_python(machine / "pyenv" / "versions" / "3.7.99", "3.12.1", name="python3.7")
    _fake_python(machine / "uv" / "cpython-3.7.5-linux-x86_64-gnu", "3.7.5")

    assert find_python("3.7").version == "3.7.5"


def test_pyenvs_shims_on_the_path_are_not_asked(machine, monkeypatch):
    shims = machine / "pyenv" / "shims"
    _fake_python(machine / "pyenv", "3.7.8")  # pyenv/bin/python3.7: not a version of pyenv's
    shims.mkdir()
    (shims / "python3.7").symlink_to(machine / "pyenv" / "bin" / "python3.7")
    monkeypatch.setenv("PATH", str(shims))

    assert find_python("3.7") is None


def test_a_program_that_does_not_run_is_no_python(machine):
    program = machine / "pyenv" / "versions" / "3.7.1" / "bin" / "python3.7"
    program.parent.mkdir(parents=True)
    program.write_text("#!/bin/sh\nexit 1\n")
    program.chmod(0o755)

    assert find_python("3.7") is None


def test_the_log_line_names_the_interpreter_that_stands_in_for_the_image(machine):
    _fake_python(machine / "pyenv" / "versions" / "3.7.16", "3.7.16")

    choice = python_for_image("python:3.7")

    assert choice.interpreter.version == "3.7.16"
    prefix = machine / "pyenv" / "versions" / "3.7.16"
    assert choice.notice == f"bedrock: python:3.7: using Python 3.7.16 at {prefix}\n"


def test_without_a_match_the_servers_python_is_used_and_the_log_says_why(machine):
    host = host_interpreter()
    absent = "3.5" if host.minor != "3.5" else "3.4"

    choice = python_for_image(f"python:{absent}")

    assert choice.interpreter == host
    assert choice.notice.startswith(f"bedrock: python:{absent}: no Python {absent} on this ")
    assert f"using the server's Python {host.version} at {host.prefix}" in choice.notice


def test_an_image_of_the_servers_own_version_uses_the_servers_python(machine):
    host = host_interpreter()

    choice = python_for_image(f"python:{host.minor}-slim")

    assert choice.interpreter == host
    assert f"using Python {host.version} at {host.prefix}" in choice.notice


def test_an_unknown_image_keeps_the_servers_python_and_says_why(machine):
    choice = python_for_image("hfchong/darknet:v0.1.0")

    assert choice.interpreter == host_interpreter()
    assert "does not know which Python this image holds; using the server's" in choice.notice


def test_python_2_keeps_the_servers_python_as_it_makes_no_venv(machine):
    _fake_python(machine / "pyenv" / "versions" / "2.7.18", "2.7.18")

    choice = python_for_image("tensorflow/tensorflow:1.13.1")

    assert choice.interpreter == host_interpreter()
    assert "Python 2.7 cannot make a virtual environment" in choice.notice


def test_the_sandbox_binds_the_chosen_interpreters_prefix_beside_the_servers(tmp_path):
    from bedrock.runs.executors.base import StepContext
    from bedrock.runs.executors.local import _sandbox_args

    prefix = tmp_path / "pythons" / "3.7.16"
    chosen = Interpreter("3.7.16", str(_fake_python(prefix, "3.7.16")), str(prefix))
    context = StepContext(1, tmp_path / "a", tmp_path / "b", tmp_path / "c", {}, {}, 1)

    args = _sandbox_args(context, python=chosen)

    binds = [args[i + 1] for i, arg in enumerate(args) if arg == "--ro-bind"]
    assert str(prefix) in binds
    # The server's Python runs the dated pip, whatever the step's Python.
    host = os.path.realpath(sys.base_prefix)
    if not host.startswith(("/usr/", "/bin/", "/lib")):
        assert host in binds


# --- whole runs on the local executor


def _run_one_step(tmp_path, image: str, *commands: str, timeout: float = 300):
    script = ", ".join(f'"{command}"' for command in commands)
    steps = f'step "s" {{\nimage = "{image}"\nscript = [{{sh = [{script}]}}]\n}}'
    pipeline = pipeline_for(repo_with(tmp_path, hcl("train", steps)))
    return wait_until_done(run_create(actor=SYSTEM, pipeline=pipeline), timeout=timeout)


def _installed(minor: str) -> Interpreter:
    found = find_python(minor)
    if found is None:
        pytest.skip(f"no Python {minor} on this machine (pyenv, uv, BEDROCK_PYTHONS or PATH)")
    return found


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_python_3_9_image_step_runs_on_python_3_9(tmp_path):
    wanted = _installed("3.9")
    check = (
        "import sys; assert sys.version_info[:2] == (3, 9), sys.version; print('on', sys.version)"
    )

    run = _run_one_step(
        tmp_path,
        "python:3.9",
        f'python -c \\"{check}\\" > $BEDROCK_ARTEFACT_DIR/version',
        "cat $BEDROCK_ARTEFACT_DIR/version",
    )

    log = step_log(run, "s")
    assert run.status == RunStatus.SUCCEEDED, (run.failure_reason, log)
    assert log.startswith(
        f"bedrock: python:3.9: using Python {wanted.version} at {wanted.prefix}\n"
    )
    assert f"on {wanted.version}" in log


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_python_3_6_image_step_installs_the_pinned_client_from_the_index(tmp_path, step_api):
    wanted = _installed("3.6")

    run = _run_one_step(
        tmp_path,
        "python:3.6-slim",
        "pip install bdrk==0.3.2",
        "python -c 'import sys, bdrk, bedrock_client.bedrock.api; print(sys.version_info[:2])'",
        "echo done > $BEDROCK_ARTEFACT_DIR/done",
    )

    log = step_log(run, "s")
    assert run.status == RunStatus.SUCCEEDED, (run.failure_reason, log)
    assert log.startswith(f"bedrock: python:3.6-slim: using Python {wanted.version} at ")
    assert "Successfully installed bdrk-0.3.2" in log
    assert "(3, 6)" in log
