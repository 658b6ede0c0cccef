"""Which Python stands in for a step's image on the local executor.

The local executor runs no image, yet the image is where a step's Python came from: requirement
files pin what installed on it (numpy 1.19 on 3.7, catboost 0.26 on 3.9), and those pins do not
install on the server's own Python. So a table (:data:`_IMAGES`) says which Python version each
known image held, and :func:`python_for_image` finds an interpreter of that version on this
machine, looking in this order:

1. the directories of ``BEDROCK_PYTHONS`` (each an installation, a directory of installations or
   a directory of ``pythonX.Y`` programs);
2. pyenv's versions (``$PYENV_ROOT/versions`` or ``~/.pyenv/versions``);
3. uv's managed Pythons (``$UV_PYTHON_INSTALL_DIR``, or ``~/.local/share/uv/python``);
4. ``pythonX.Y`` on the server's ``PATH``.

When the image is unknown, or no interpreter of its version is here, the server's own Python
makes the virtual environment, as before, and the step's log says why. Docker and Nomad run the
image itself: none of this concerns them.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings


@dataclass(frozen=True)
class Interpreter:
    """A Python installation a virtual environment can be made from."""

    version: str  # "3.7.16"
    executable: str
    prefix: str  # its sys.base_prefix, resolved: what the sandbox binds

    @property
    def minor(self) -> str:
        return ".".join(self.version.split(".")[:2])


@dataclass(frozen=True)
class PythonChoice:
    """The interpreter a step's virtual environment is made from, and the log's line on it."""

    interpreter: Interpreter
    notice: str


@dataclass(frozen=True)
class ImagePython:
    """The Python version (``X.Y``) an image held, or None and why it is not known."""

    version: str | None
    why: str = ""


_MINOR = re.compile(r"^(\d+)\.(\d+)(?!\d)")


def _leading_version(tag: str) -> str | None:
    found = _MINOR.match(tag)
    return f"{found[1]}.{found[2]}" if found else None


def _python_tag(tag: str) -> ImagePython:
    # python:3.7, python:3.6-slim, python:3.9-slim-buster, python:3.7.9; python:3, python:slim
    # and latest have followed each new release, so say nothing of a file's year.
    version = _leading_version(tag)
    if version is None:
        return ImagePython(None, f"the tag {tag or 'latest'!r} has named each new Python in turn")
    return ImagePython(version)


def _workload_standard(tag: str) -> ImagePython:
    # Basis AI's own image, Spark and Python; its Dockerfile is not public. basisai/churn_prediction
    # ran on it from v0.1.0 (2019) to v0.3.4 (2022) and declared Python 3.7 throughout (its README
    # badge, its CI's python-version), and its pins (numpy 1.21.0, pandas 1.3.0) need 3.7 or later.
    return ImagePython("3.7")


def _span_pyspark(tag: str) -> ImagePython:
    # Bedrock's 2019 images, private and gone. Not known: churn_prediction used them in the same
    # months as its Python 3.7 badge, so 3.7 is assumed.
    return ImagePython("3.7")


def _python_cuda(tag: str) -> ImagePython:
    # quay.io/basisai/python-cuda:3.9.2-10.1: the Python version, then CUDA's.
    return _python_tag(tag)


def _tensorflow(tag: str) -> ImagePython:
    # Python 3 in TF 1.x images only with -py3 (else 2.7); Ubuntu 16.04's 3.5 before 1.14,
    # Ubuntu 18.04's 3.6 from 1.14 (tensorflow#22292), Ubuntu 20.04's 3.8 for images built after
    # September 2021, 2.7 on (tensorflow#58556), Ubuntu 22.04's 3.11 seen on 2.18
    # (tensorflow#82529) and assumed from 2.14, the first release after 2.13's 20.04 images.
    version = _leading_version(tag)
    if version is None:
        return ImagePython(
            None, f"the tag {tag or 'latest'!r} has followed each TensorFlow release"
        )
    major, minor = (int(part) for part in version.split("."))
    if major == 1:
        if "py3" not in tag:
            return ImagePython("2.7")
        return ImagePython("3.5" if minor < 14 else "3.6")
    if minor <= 6:
        return ImagePython("3.6")
    return ImagePython("3.8" if minor <= 13 else "3.11")


# The Python of the default Miniconda installer of each release the tag names.
_MINICONDA = {"4.9.2": "3.8", "4.10.3": "3.9", "4.12.0": "3.9", "22.11.1": "3.10"}


def _miniconda(tag: str) -> ImagePython:
    version = _MINICONDA.get(tag.split("-")[0])
    if version is None:
        # A conda step's environment file names its own Python; the base's is what runs pip.
        return ImagePython(None, f"the tag {tag or 'latest'!r} held a different Python each year")
    return ImagePython(version)


def _pytorch(tag: str) -> ImagePython:
    # pytorch/pytorch:1.8.0-cuda11.1-cudnn8-devel: conda's Python 3.8. Other releases differ
    # (3.7 again for 1.9) and are not in the files seen.
    if tag.startswith("1.8."):
        return ImagePython("3.8")
    return ImagePython(None, f"Bedrock does not know the Python of pytorch/pytorch:{tag}")


def _no_python(tag: str) -> ImagePython:
    return ImagePython(None, "the image has no Python of its own")


# Repository names without their registry (quay.io/, asia.gcr.io/, an ECR mirror's host).
_IMAGES: dict[str, Callable[[str], ImagePython]] = {
    "python": _python_tag,
    "basisai/workload-standard": _workload_standard,
    "basisai/python-cuda": _python_cuda,
    "span-ai/pyspark": _span_pyspark,
    "span-ai/ds_suite-pyspark": _span_pyspark,
    "tensorflow/tensorflow": _tensorflow,
    "continuumio/miniconda3": _miniconda,
    "pytorch/pytorch": _pytorch,
    "nvidia/cuda": _no_python,
}


def _repository_and_tag(image: str) -> tuple[str, str]:
    parts = image.split("@", 1)[0].split("/")
    # A registry's host has a dot, a port or is localhost; an ECR mirror of quay.io has two.
    while len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        parts = parts[1:]
    if len(parts) > 1 and parts[0] == "library":  # Docker Hub's official images
        parts = parts[1:]
    name, _, tag = parts[-1].partition(":")
    return "/".join([*parts[:-1], name]), tag


def image_python(image: str) -> ImagePython:
    """The Python version the image held, by the table above."""
    repository, tag = _repository_and_tag(image.strip())
    known = _IMAGES.get(repository)
    if known is None:
        return ImagePython(None, "Bedrock does not know which Python this image holds")
    return known(tag)


# --- the interpreters of this machine


def _pyenv_versions() -> Path:
    return Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"


def _uv_pythons() -> Path:
    if os.environ.get("UV_PYTHON_INSTALL_DIR"):
        return Path(os.environ["UV_PYTHON_INSTALL_DIR"])
    data = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data) / "uv" / "python"


def _newest_first(paths: list[Path]) -> list[Path]:
    def key(path: Path) -> tuple[int, ...]:
        found = re.search(r"\d+(?:\.\d+)+", path.name)
        return tuple(int(part) for part in found[0].split(".")) if found else ()

    return sorted(paths, key=key, reverse=True)


def _installations(directory: Path, pattern: str, program: str) -> list[Path]:
    if not directory.is_dir():
        return []
    found = [path / "bin" / program for path in directory.glob(pattern)]
    return _newest_first([path for path in found if path.is_file()])


def _in_directory(directory: Path, program: str) -> list[Path]:
    # An installation, a directory of pythonX.Y programs, or a directory of installations.
    direct = [directory / "bin" / program, directory / program]
    return [path for path in direct if path.is_file()] + _installations(directory, "*", program)


def _on_path(program: str) -> list[Path]:
    found = []
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        # pyenv's shims answer only for the versions pyenv has selected: its versions come first.
        if directory and not directory.rstrip("/").endswith("/shims"):
            path = Path(directory) / program
            if path.is_file() and os.access(path, os.X_OK):
                found.append(path)
    return found


def candidates(minor: str) -> Iterator[Path]:
    """Programs that may be Python ``minor`` ("3.7"), in the order they are tried."""
    program = f"python{minor}"
    for directory in settings.BEDROCK_PYTHONS:
        yield from _in_directory(Path(directory), program)
    yield from _installations(_pyenv_versions(), f"{minor}.*", program)
    yield from _installations(_uv_pythons(), f"cpython-{minor}.*", program)
    yield from _on_path(program)


_PROBE = "import sys; print('%d.%d.%d' % sys.version_info[:3]); print(sys.base_prefix)"


def probe(program: Path) -> Interpreter | None:
    """What ``program`` is, asked of itself; None when it does not run."""
    try:
        stamp = program.stat().st_mtime_ns
    except OSError:
        return None
    return _probe(str(program), stamp)


@functools.lru_cache(maxsize=64)
def _probe(program: str, stamp: int) -> Interpreter | None:
    # Asked, not read from the path: a directory's name may say 3.7 and hold a link to anything.
    try:
        done = subprocess.run(
            [program, "-I", "-c", _PROBE],
            capture_output=True,
            text=True,
            timeout=30,
            env={"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"},
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = done.stdout.split("\n")
    if done.returncode != 0 or len(lines) < 2:
        return None
    executable = os.path.realpath(program)
    return Interpreter(lines[0], executable, os.path.realpath(lines[1]))


def find_python(minor: str) -> Interpreter | None:
    """The first interpreter of version ``minor`` ("3.7") found on this machine."""
    for program in candidates(minor):
        found = probe(program)
        if found is not None and found.minor == minor:
            return found
    return None


def host_interpreter() -> Interpreter:
    """The server's own Python: the base one, not Bedrock's virtual environment."""
    executable = getattr(sys, "_base_executable", None) or sys.executable
    version = ".".join(str(part) for part in sys.version_info[:3])
    return Interpreter(version, executable, os.path.realpath(sys.base_prefix))


_SEARCHED = "BEDROCK_PYTHONS, pyenv's versions, uv's Pythons and the PATH"


def python_for_image(image: str) -> PythonChoice:
    """The interpreter that stands in for ``image``'s Python, and the step log's line saying so."""
    host = host_interpreter()
    fallback = f"using the server's Python {host.version} at {host.prefix}"
    if not image.strip():
        return PythonChoice(host, f"bedrock: the step names no image; {fallback}\n")
    wanted = image_python(image)
    if wanted.version is None:
        return PythonChoice(host, f"bedrock: {image}: {wanted.why}; {fallback}\n")
    if wanted.version == host.minor:
        found: Interpreter | None = host
    elif wanted.version.startswith("2."):
        why = f"Python {wanted.version} cannot make a virtual environment (python -m venv)"
        return PythonChoice(host, f"bedrock: {image}: {why}; {fallback}\n")
    else:
        found = find_python(wanted.version)
    if found is None:
        why = f"no Python {wanted.version} on this machine (looked in {_SEARCHED})"
        hint = f"packages pinned for {wanted.version} may not install"
        return PythonChoice(host, f"bedrock: {image}: {why}; {fallback}: {hint}\n")
    return PythonChoice(
        found, f"bedrock: {image}: using Python {found.version} at {found.prefix}\n"
    )
