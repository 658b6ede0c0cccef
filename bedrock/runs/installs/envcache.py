"""Environments that steps' installs made, kept for the next run with the same installs.

A step that installs something (its ``install`` lines, or pyspark for spark-submit) pays for the
download and the install on every run, though most runs install exactly what the last one did.
After such a step succeeds, its virtual environment is copied into this cache under a key of
everything that decides what the install lines produce: the interpreter, the lines themselves,
the requirement and constraint files they name (their contents, hashed), the run's
dated-installs date, the pyspark requirement, the PIP_*/UV_* variables the step gets, and whether
the step is sandboxed. The next step with the same key starts from a copy of it; its install
lines still run, and find what they install there already. So the step does what it did before,
only faster.

Entries are scoped to a project, as the pip cache is: a step can plant a package only where its
own project's runs find it. The key is a hash, so the variables (an index URL with a token) and
the lines never appear in clear in a path or a file. An entry is written into a temporary
directory and renamed into place; it is evicted by age (``BEDROCK_ENV_CACHE_MAX_AGE``: unpinned
installs then pick up new releases) and by the cache's total size
(``BEDROCK_ENV_CACHE_SIZE``, least recently used first). A reader holds a shared lock on the
entry while it copies, and eviction skips an entry someone holds.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shlex
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from bedrock.runs.executors import venvs
from bedrock.runs.workspace import remove_step_tree

logger = logging.getLogger(__name__)

META = "meta.json"
LOCK = "lock"
# What the step's pip reads from its environment, and uv: both decide what gets installed.
_VARIABLE_PREFIXES = ("PIP_", "UV_")
_REQUIREMENT_OPTIONS = ("-r", "--requirement", "-c", "--constraint")
# Requirement files naming others: how deep and how many are followed before the key gives up
# on them (a cycle, or a hostile checkout).
_MAX_DEPTH = 8
_MAX_FILES = 200


@dataclass(frozen=True)
class Installs:
    """What decides the environment a step's install lines make."""

    interpreter: str  # the executable and its version
    lines: tuple[str, ...]
    workdir: Path  # where the lines run, on this machine
    app_dir: Path  # the step's checkout, on this machine
    date: datetime | None
    pyspark: str
    variables: Mapping[str, str]  # the step's own environment; only PIP_* and UV_* count
    sandboxed: bool
    client: str = ""  # the version of Bedrock's client that Bedrock's package index serves


def key(installs: Installs) -> str:
    """The hash that names the cache entry of ``installs``."""
    variables = {
        name: value
        for name, value in installs.variables.items()
        if name.startswith(_VARIABLE_PREFIXES)
    }
    payload = {
        "interpreter": installs.interpreter,
        "lines": list(installs.lines),
        "files": requirement_hashes(installs.lines, installs.workdir, installs.app_dir),
        "date": installs.date.astimezone(UTC).isoformat() if installs.date else None,
        "pyspark": installs.pyspark,
        "variables": sorted(variables.items()),
        "sandboxed": installs.sandboxed,
        "client": installs.client,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def named_files(words: Sequence[str]) -> list[str]:
    """The files ``-r``/``-c`` name among a command's (or a requirement file's) words."""
    found = []
    for index, word in enumerate(words):
        name, equals, value = word.partition("=")
        if name in _REQUIREMENT_OPTIONS[1::2] and equals:
            found.append(value)
        elif word in _REQUIREMENT_OPTIONS:
            if index + 1 < len(words):
                found.append(words[index + 1])
        elif word[:2] in ("-r", "-c") and len(word) > 2 and not word.startswith("--"):
            found.append(word[2:])
    return found


def _words(text: str) -> list[str]:
    try:
        return shlex.split(text, comments=True)
    except ValueError:
        return text.split()


def requirement_hashes(lines: Sequence[str], workdir: Path, app_dir: Path) -> dict[str, str]:
    """Each requirement or constraint file the lines name, at any depth, and its SHA-256 (or
    "missing", or "outside" for a path that leaves the checkout, which is never read)."""
    hashes: dict[str, str] = {}
    pending = [(workdir, name, 0) for line in lines for name in named_files(_words(line))]
    while pending and len(hashes) < _MAX_FILES:
        base, name, depth = pending.pop(0)
        path = _host_path(base, name, app_dir)
        # Named by its place in the checkout, which is the same in every run; not by its path.
        shown = str(path.relative_to(os.path.realpath(app_dir))) if path is not None else name
        if shown in hashes:
            continue
        hashes[shown] = _digest(path)
        if path is None or depth >= _MAX_DEPTH or hashes[shown] in ("missing", "outside"):
            continue
        text = path.read_text(errors="replace")
        for line in text.splitlines():
            pending += [(path.parent, named, depth + 1) for named in named_files(_words(line))]
    return hashes


def _host_path(base: Path, name: str, app_dir: Path) -> Path | None:
    """``name`` as the step's pip would open it, on this machine; None outside the checkout."""
    from bedrock.runs.workdir import APP

    if name.startswith(f"{APP}/"):
        name = str(app_dir / name[len(APP) + 1 :])
    path = Path(os.path.realpath(base / name))
    top = os.path.realpath(app_dir)
    return path if str(path) == top or str(path).startswith(top + "/") else None


def _digest(path: Path | None) -> str:
    if path is None:
        return "outside"
    try:
        with path.open("rb") as file:
            return hashlib.file_digest(file, "sha256").hexdigest()
    except OSError:
        return "missing"


def _root() -> Path:
    return venvs.cache_root() / "envs"


def _entry(project: str, name: str) -> Path:
    return _root() / f"project-{project}" / name


def enabled() -> bool:
    return settings.BEDROCK_ENV_CACHE_SIZE > 0


@contextlib.contextmanager
def _held(entry: Path, shared: bool) -> Iterator[bool]:
    """A lock on ``entry``: shared to copy it, exclusive (never waited for) to evict it.
    Yields False when the entry is gone, or in use and ``shared`` is False."""
    try:
        fd = os.open(entry / LOCK, os.O_RDONLY)
    except OSError:
        yield False
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        # Renamed away to be deleted between the open and the lock: no longer the entry.
        try:
            same = os.stat(entry / LOCK).st_ino == os.fstat(fd).st_ino
        except OSError:
            same = False
        yield same
    finally:
        os.close(fd)


def _created(entry: Path) -> datetime | None:
    try:
        return datetime.fromisoformat(json.loads((entry / META).read_text())["created"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _fresh(created: datetime | None) -> bool:
    return created is not None and timezone.now() - created < settings.BEDROCK_ENV_CACHE_MAX_AGE


def restore(project: str, name: str, venv: Path, inside: str) -> datetime | None:
    """Copy the entry ``name`` of ``project`` into ``venv``; when it was saved, or None when
    there is no such entry, or it is too old, or it could not be copied whole."""
    if not enabled() or not project.isdigit():
        return None
    entry = _entry(project, name)
    created = _created(entry)
    if not _fresh(created):
        return None
    with _held(entry, shared=True) as held:
        if not held:
            return None
        try:
            venvs.restore(entry, venv, inside)
        except OSError as exc:
            logger.warning("could not reuse the environment %s: %s", entry, exc)
            return None
    with contextlib.suppress(OSError):
        os.utime(entry)  # its last use, which eviction by size goes by
    return created


def save(project: str, name: str, venv: Path, inside: str) -> None:
    """Keep the environment of a step that succeeded, then evict what is over the limits.
    A failure is logged, never raised: the step has succeeded, whatever happens to its copy."""
    if not enabled() or not project.isdigit():
        return
    entry = _entry(project, name)
    if entry.exists():
        return
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        size = _size(venv)
        if size > settings.BEDROCK_ENV_CACHE_SIZE:
            return  # it would evict everything, itself included
        meta = {"created": timezone.now().isoformat(), "size": size}
        extra = {META: json.dumps(meta), LOCK: ""}
        venvs.publish(venv, inside, entry, extra)
    except OSError as exc:
        logger.warning("could not keep the step's environment in %s: %s", entry, exc)
        return
    evict()


def _size(tree: Path) -> int:
    total = 0
    for top, directories, files in os.walk(tree):
        for name in (*directories, *files):
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(top, name)).st_blocks * 512
    return total


@dataclass(frozen=True)
class _Kept:
    path: Path
    used: float
    size: int
    created: datetime | None


def _entries() -> list[_Kept]:
    kept = []
    for entry in _root().glob("project-*/*"):
        if entry.name.startswith("."):
            continue
        try:
            meta = json.loads((entry / META).read_text())
            used = entry.stat().st_mtime
        except (OSError, ValueError):
            continue
        kept.append(_Kept(entry, used, int(meta.get("size", 0)), _created(entry)))
    return kept


def evict() -> list[Path]:
    """Delete entries past their age, then the least recently used while the cache is over its
    size, and what crashed saves left behind; the paths deleted."""
    gone = []
    total = 0
    for kept in sorted(_entries(), key=lambda kept: kept.used, reverse=True):
        within = total + kept.size <= settings.BEDROCK_ENV_CACHE_SIZE
        if within and _fresh(kept.created):
            total += kept.size
        elif _remove(kept.path):
            gone.append(kept.path)
        else:
            total += kept.size  # in use: it stays for now
    _remove_stale_staging()
    return gone


def _remove(entry: Path) -> bool:
    with _held(entry, shared=False) as held:
        if not held:
            return False
        trash = entry.with_name(f".trash-{entry.name}-{os.getpid()}")
        try:
            entry.rename(trash)
        except OSError:
            return False
    remove_step_tree(trash)
    return True


def _remove_stale_staging() -> None:
    # A save or an eviction cut short by a crash leaves its temporary directory: after a day no
    # process is still writing it.
    limit = timezone.now().timestamp() - 86400
    for path in _root().glob("project-*/.*"):
        with contextlib.suppress(OSError):
            if path.stat().st_mtime < limit:
                remove_step_tree(path)


def notice(saved: datetime) -> bytes:
    """The step log's line saying that its environment is a copy of an earlier run's."""
    when = saved.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    return (
        f"bedrock: reusing the environment an earlier run of this project made with the same "
        f"installs (saved {when}); the install lines run again and find what they install "
        "there\n"
    ).encode()
