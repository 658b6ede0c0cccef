"""A step's model files: into the artefact directory Bedrock packs, and back out of a version."""

import os
import shutil
import tempfile
import urllib.parse
import zipfile
from typing import Any

from bdrk import _http

DEFAULT_ARTEFACT_DIR = "/artefact"


def artefact_dir() -> str:
    return os.environ.get("BEDROCK_ARTEFACT_DIR", "").strip() or DEFAULT_ARTEFACT_DIR


def log_model(path: str) -> str:
    """Copy a file or a directory into the artefact directory; returns where it went.

    Bedrock packs the whole artefact directory when the step ends, so there is nothing to upload.
    """
    source = os.path.realpath(str(path))
    if not os.path.exists(source):
        raise ValueError(f"log_model: {path} does not exist.")
    target_dir = os.path.realpath(artefact_dir())
    if source == target_dir or source.startswith(target_dir + os.sep):
        _http.console(f"log_model: {path} is already in {target_dir}.")
        return source
    target = os.path.join(target_dir, os.path.basename(source))
    try:
        os.makedirs(target_dir, exist_ok=True)
        if os.path.isdir(source):
            _copy_tree(source, target)
        else:
            shutil.copy2(source, target)
    except OSError as error:
        if _http.on_bedrock():
            raise
        # On a laptop /artefact is usually missing or not writable; the script goes on.
        _http.console(
            f"log_model: could not copy {path} into {target_dir} ({error}); "
            "set BEDROCK_ARTEFACT_DIR."
        )
        return source
    _http.console(f"log_model: copied {path} to {target}.")
    return target


def _copy_tree(source: str, target: str) -> None:
    # shutil.copytree(dirs_exist_ok=True) is Python 3.8+; a second log_model merges the same way.
    for directory, _, files in os.walk(source):
        destination = os.path.join(target, os.path.relpath(directory, source))
        os.makedirs(destination, exist_ok=True)
        for name in files:
            shutil.copy2(os.path.join(directory, name), os.path.join(destination, name))


def download_model(model: Any, version: Any, path: str = "") -> str:
    """Unpack a model version's archive into path (the working directory by default)."""
    destination = os.path.realpath(path or os.getcwd())
    if not _http.on_bedrock():
        _http.console(
            "download_model: not on Bedrock (BEDROCK_API_DOMAIN and BEDROCK_API_TOKEN unset); "
            f"would unpack {model} version {version} into {destination}."
        )
        return destination
    url = "/api/models/{}/versions/{}/archive".format(
        urllib.parse.quote(str(model), safe=""), urllib.parse.quote(str(version), safe="")
    )
    with tempfile.TemporaryFile() as spool:
        try:
            _http.call("GET", url, timeout=300, into=spool)
        except _http.Refused as error:
            raise RuntimeError(
                f"download_model: Bedrock refused {model} version {version} "
                f"(HTTP {error.status}): {error.message}"
            ) from None
        spool.seek(0)
        _unpack(spool, destination)
    _http.console(f"download_model: {model} version {version} unpacked into {path}.")
    return destination


def _unpack(spool: Any, destination: str) -> None:
    with zipfile.ZipFile(spool) as archive:
        members = archive.infolist()
        # Every entry is checked before any is written, so a hostile archive writes nothing.
        for member in members:
            target = os.path.realpath(os.path.join(destination, member.filename))
            if target != destination and not target.startswith(destination + os.sep):
                raise ValueError(
                    f"download_model: the archive's entry {member.filename!r} would be written "
                    f"outside {destination}; nothing was unpacked."
                )
        os.makedirs(destination, exist_ok=True)
        archive.extractall(destination, members)
