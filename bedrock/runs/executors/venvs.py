"""A step's virtual environment on the local executor, made without running ensurepip each time.

``python -m venv`` spends nearly all its time in ensurepip, which installs the same pip into
every environment of an interpreter. So the first environment made from an interpreter is kept
as that interpreter's template (under ``BEDROCK_HOME/cache/venvs``), and every later one is a
copy of it. What a fresh environment holds of its own path (the ``#!`` lines of ``bin/``'s
scripts, the activation scripts, ``pyvenv.cfg``'s command) is rewritten when the copy lives
elsewhere; in the sandbox it is always ``/venv``, so there nothing changes.

Entries are written into a temporary directory and renamed into place, so two supervisors that
make the same template at once never leave half of one: the second rename fails and its copy is
deleted.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import uuid
from pathlib import Path

from django.conf import settings

from bedrock.runs.executors.base import ExecutorError
from bedrock.runs.executors.interpreters import Interpreter
from bedrock.runs.workspace import remove_step_tree

TREE = "venv"  # the environment itself, inside a template or a saved entry
MADE_AT = "made-at"  # the path the environment had when it was made, as its scripts name it
_SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"


def cache_root() -> Path:
    return Path(settings.BEDROCK_HOME) / "cache"


def _template_dir(python: Interpreter) -> Path:
    # A new build of the interpreter at the same path (a pyenv reinstall) gets a new template.
    try:
        info = os.stat(python.executable)
        stamp = [info.st_mtime_ns, info.st_size]
    except OSError:
        stamp = []
    identity = json.dumps([python.executable, python.prefix, python.version, stamp])
    return cache_root() / "venvs" / hashlib.sha256(identity.encode()).hexdigest()[:32]


def copy_tree(source: Path, destination: Path) -> None:
    """Copy what ``source`` holds into the directory ``destination``, links as links.

    ``cp -a`` rather than Python: it copies a tree of ten thousand files in a fraction of the
    time, makes a FIFO a step left behind a FIFO rather than blocking on it, and keeps owners."""
    destination.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["cp", "-a", "--reflink=auto", f"{source}/.", str(destination)],
        capture_output=True,
        text=True,
        env={"PATH": _SYSTEM_PATH, "LANG": "C.UTF-8"},
    )
    if done.returncode != 0:
        raise OSError(f"could not copy {source}: {done.stderr.strip()}")


def empty(directory: Path) -> None:
    """Delete what ``directory`` holds, keeping it (a mount point, owned by the step's uid)."""
    for child in list(directory.iterdir()):
        if child.is_dir() and not child.is_symlink():
            remove_step_tree(child)
        else:
            child.unlink()


def relocate(venv: Path, old: str, new: str) -> None:
    """Make the environment at ``venv``, made at ``old``, name ``new`` as its own path."""
    if old == new:
        return
    pattern = _own_path(old)
    files = [venv / "pyvenv.cfg"]
    bin_dir = venv / "bin"
    # Never through a link: a step may have made its bin/ one to a directory of the host's.
    if bin_dir.is_dir() and not bin_dir.is_symlink():
        files += sorted(bin_dir.iterdir())
    for path in files:
        if path.is_symlink() or not path.is_file():
            continue
        data = path.read_bytes()
        changed = pattern.sub(lambda _: new.encode(), data)
        if changed != data:
            mode = path.stat().st_mode
            path.write_bytes(changed)
            path.chmod(mode)


def _own_path(path: str) -> re.Pattern[bytes]:
    # The whole path only: an interpreter at /opt/venvs/… keeps its name when /venv is rewritten.
    return re.compile(rb"(?<![\w./-])" + re.escape(path.encode()) + rb"(?=[/\"'\s]|$)")


def publish(
    tree: Path, made_at: str, destination: Path, extra: dict[str, str] | None = None
) -> bool:
    """Copy the environment ``tree`` (made at ``made_at``) to ``destination`` whole or not at all.

    False when another process published it first; OSError when the copy failed."""
    staging = destination.parent / f".tmp-{uuid.uuid4().hex}"
    try:
        copy_tree(tree, staging / TREE)
        (staging / MADE_AT).write_text(made_at)
        for name, text in (extra or {}).items():
            (staging / name).write_text(text)
        try:
            staging.rename(destination)
        except OSError:
            if destination.exists():
                return False
            raise
        return True
    finally:
        if staging.exists():
            remove_step_tree(staging)


def restore(entry: Path, venv: Path, inside: str) -> None:
    """Copy the environment kept in ``entry`` into ``venv``, seen by the step as ``inside``."""
    copy_tree(entry / TREE, venv)
    relocate(venv, (entry / MADE_AT).read_text(), inside)


def create(prefix: list[str], python: Interpreter, host_venv: Path, inside: str) -> None:
    """Make the step's environment at ``host_venv`` (``inside`` to the step) from ``python``:
    a copy of the interpreter's template, or ``python -m venv`` once, which becomes it.

    ``prefix`` runs ``python -m venv`` in the step's sandbox, so that its paths are the step's."""
    template = _template_dir(python)
    if (template / TREE / "bin" / "python").exists():
        try:
            restore(template, host_venv, inside)
            return
        except OSError:
            empty(host_venv)  # the copy failed half-way: make the environment anew
    _python_m_venv(prefix, python, inside)
    try:
        template.parent.mkdir(parents=True, exist_ok=True)
        publish(host_venv, inside, template)
    except OSError:
        pass  # the next step tries again; this one has its environment


def _python_m_venv(prefix: list[str], python: Interpreter, venv: str) -> None:
    created = subprocess.run(
        [*prefix, python.executable, "-m", "venv", venv],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": _SYSTEM_PATH, "LANG": "C.UTF-8"},
    )
    if created.returncode != 0:
        raise ExecutorError(
            f"could not create the step's virtual environment with Python {python.version} "
            f"at {python.prefix}: {created.stderr.strip()}"
        )
