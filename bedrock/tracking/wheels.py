"""Wheels of Bedrock's client (``client/``), built at the version numbers real repositories pin.

Repositories written for Basis AI's Bedrock pin its client (``bdrk==0.3.2``,
``bdrk[analyzer]>=0.9.1,<0.10``…) and cannot be edited, and PyPI holds only an empty ``bdrk``.
So the package index (:mod:`bedrock.tracking.indexviews`) offers the same code under each of
those numbers: only ``bdrk/_version.py`` differs. The metadata (extras, dependencies, Python
version) is read from the client's own ``pyproject.toml``, so an ``pip install ./client`` and the
index agree.

A wheel's bytes are deterministic (fixed timestamps and modes, sorted entries), so the hash the
index lists is stable across processes; each is built on first use and kept in memory, being a
few tens of KiB.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import re
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

PROJECT = "bdrk"
PACKAGES = ("bdrk", "bedrock_client")
VERSION_FILE = "bdrk/_version.py"
# The numbers repositories written for Basis AI's Bedrock pin (0.3.2, 0.7.x, 0.9.1, 0.9.x), and
# whatever the client says it is (client_version()), which is the newest: a bare `bdrk` gets it.
PINNED_VERSIONS = (
    "0.3.2",
    *(f"0.7.{patch}" for patch in range(5)),
    *(f"0.9.{patch}" for patch in range(6)),
)
TAG = "py3-none-any"
# Zip cannot store times before 1980; every entry gets this one, so the bytes never change.
_EPOCH = (1980, 1, 1, 0, 0, 0)
_VERSION_LINE = re.compile(r"""^__version__\s*=\s*["']([^"']+)["']""", re.MULTILINE)


class ClientSourceError(ImproperlyConfigured):
    """The client's source directory is missing or incomplete; the message says which."""


@dataclass(frozen=True)
class Wheel:
    version: str
    filename: str
    content: bytes
    sha256: str  # hex, as the index's links carry it
    requires_python: str


def client_source() -> Path:
    """``BEDROCK_CLIENT_SOURCE``: the client's directory, holding pyproject.toml and packages."""
    source = Path(settings.BEDROCK_CLIENT_SOURCE)
    for needed in ("pyproject.toml", VERSION_FILE):
        if not (source / needed).is_file():
            raise ClientSourceError(
                f"BEDROCK_CLIENT_SOURCE={str(source)!r} holds no {needed}: point it at the "
                "client/ directory of Bedrock's repository (steps install bdrk from it)."
            )
    return source


def client_version() -> str:
    """The version the client's own ``bdrk/_version.py`` states."""
    text = (client_source() / VERSION_FILE).read_text()
    match = _VERSION_LINE.search(text)
    if match is None:
        raise ClientSourceError(f'{VERSION_FILE} of the client sets no __version__ = "…".')
    return match.group(1)


def versions() -> tuple[str, ...]:
    """Every version the index offers, oldest first."""
    own = client_version()
    return (*(v for v in PINNED_VERSIONS if v != own), own)


def wheel_filename(version: str) -> str:
    return f"{PROJECT}-{version}-{TAG}.whl"


def wheels() -> list[Wheel]:
    """One wheel per version of :func:`versions`, built from the current source setting."""
    source = client_source()
    return [_built(str(source), version) for version in versions()]


def wheel_named(filename: str) -> Wheel | None:
    """The wheel of that file name, or None when the index offers none by it."""
    return next((wheel for wheel in wheels() if wheel.filename == filename), None)


@functools.cache
def _built(source: str, version: str) -> Wheel:
    # Keyed by the source directory too, so a changed setting (tests) never gets another's bytes.
    content = build_wheel(Path(source), version)
    digest = hashlib.sha256(content).hexdigest()
    python = _requires_python(_project(Path(source)))
    return Wheel(version, wheel_filename(version), content, digest, python)


def _project(source: Path) -> dict:
    """The ``[project]`` table of the client's pyproject.toml."""
    try:
        return tomllib.loads((source / "pyproject.toml").read_text())["project"]
    except (tomllib.TOMLDecodeError, KeyError) as exc:
        raise ClientSourceError(
            f"{source / 'pyproject.toml'} has no readable [project] table: {exc}"
        ) from exc


def _requires_python(project: dict) -> str:
    return project.get("requires-python", ">=3.6")


def build_wheel(source: Path, version: str) -> bytes:
    """The wheel of the client in ``source`` at ``version``: its modules, metadata and RECORD."""
    files = dict(_module_files(source))
    files[VERSION_FILE] = _version_module(version)
    dist_info = f"{PROJECT}-{version}.dist-info"
    project = _project(source)
    metadata = {
        "METADATA": _metadata(project, version, source),
        "WHEEL": _wheel_file(),
        "top_level.txt": "".join(f"{name}\n" for name in PACKAGES).encode(),
    }
    if scripts := project.get("scripts"):
        lines = [f"{name} = {target}" for name, target in sorted(scripts.items())]
        metadata["entry_points.txt"] = ("[console_scripts]\n" + "\n".join(lines) + "\n").encode()
    entries = sorted(files.items()) + [(f"{dist_info}/{n}", d) for n, d in sorted(metadata.items())]
    record = f"{dist_info}/RECORD"
    lines = [f"{name},sha256={_record_hash(data)},{len(data)}" for name, data in entries]
    entries.append((record, ("\n".join([*lines, f"{record},,"]) + "\n").encode()))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.external_attr = 0o100644 << 16  # a regular file, rw-r--r--
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return buffer.getvalue()


def _module_files(source: Path) -> list[tuple[str, bytes]]:
    """Every ``.py`` of the client's packages, by its path in the wheel."""
    found = []
    for package in PACKAGES:
        for path in sorted((source / package).rglob("*.py")):
            if "__pycache__" not in path.parts:
                found.append((path.relative_to(source).as_posix(), path.read_bytes()))
    return found


def _version_module(version: str) -> bytes:
    return (
        "# Written by Bedrock's package index, which serves this code at the version numbers\n"
        "# that repositories written for Basis AI's Bedrock pin.\n"
        f'__version__ = "{version}"\n'
    ).encode()


def _metadata(project: dict, version: str, source: Path) -> bytes:
    """Core metadata 2.1 (PEP 566): what pip reads to resolve versions, extras and Python."""
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {PROJECT}",
        f"Version: {version}",
        f"Summary: {project.get('description', '')}",
    ]
    if licence := project.get("license", {}).get("text"):
        lines.append(f"License: {licence}")
    lines.append(f"Requires-Python: {_requires_python(project)}")
    lines += [f"Requires-Dist: {requirement}" for requirement in project.get("dependencies", [])]
    for extra, requirements in project.get("optional-dependencies", {}).items():
        lines.append(f"Provides-Extra: {extra}")
        lines += [f"Requires-Dist: {_for_extra(r, extra)}" for r in requirements]
    readme = source / "README.md"
    if readme.is_file():
        lines.append("Description-Content-Type: text/markdown")
        return ("\n".join(lines) + "\n\n" + readme.read_text()).encode()
    return ("\n".join(lines) + "\n").encode()


def _for_extra(requirement: str, extra: str) -> str:
    """``boxkite>=0.0.5; extra == "model-monitoring"``, keeping a marker the requirement had."""
    spec, _, marker = requirement.partition(";")
    condition = f'extra == "{extra}"'
    if marker.strip():
        condition = f"({marker.strip()}) and {condition}"
    return f"{spec.strip()}; {condition}"


def _wheel_file() -> bytes:
    return (f"Wheel-Version: 1.0\nGenerator: bedrock\nRoot-Is-Purelib: true\nTag: {TAG}\n").encode()


def _record_hash(data: bytes) -> str:
    """RECORD's form of a hash (PEP 376 as wheels use it): urlsafe base64, no padding."""
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
