"""Laying one directory tree over another, the later one winning: how stage archives merge.

:func:`bedrock.models.archive.unpack` refuses a destination that is not empty, so each archive is
unpacked into a directory of its own and then moved over the destination with :func:`overlay`.
Standard library only: the artefact hooks use it inside jobs, where Django has no database.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

__all__ = ["make_shared", "overlay"]


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def overlay(source: Path, dest: Path) -> set[str]:
    """Move every file and empty directory of ``source`` into ``dest``; return the files' names.

    A file of ``source`` replaces whatever ``dest`` holds under its name, a directory included, and
    a directory of ``source`` replaces a file of ``dest``. Both trees must be on one filesystem
    (files are renamed, not copied). ``source`` is left empty.
    """
    moved: set[str] = set()
    dest.mkdir(parents=True, exist_ok=True)
    for root, directories, files in os.walk(source):
        relative = Path(root).relative_to(source)
        target_root = dest / relative
        if target_root.is_symlink() or (target_root.exists() and not target_root.is_dir()):
            _remove(target_root)
        target_root.mkdir(exist_ok=True)
        for name in files:
            target = target_root / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            os.replace(Path(root) / name, target)
            moved.add((relative / name).as_posix())
        for name in directories:
            if (Path(root) / name).is_symlink():  # unpack never makes one; never follow one
                raise ValueError(f"{Path(root) / name} is a symbolic link; refusing to follow it")
    return moved


def make_shared(directory: Path) -> None:
    """Let any user write in ``directory``'s tree: the tasks of a job may run as different users."""
    for root, _directories, files in os.walk(directory):
        os.chmod(root, 0o777)  # noqa: S103  (a job's scratch tree, shared between its tasks)
        for name in files:
            path = Path(root) / name
            if not path.is_symlink():
                path.chmod(path.stat().st_mode & 0o777 | 0o666)
