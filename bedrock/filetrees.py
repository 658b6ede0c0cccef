"""Deleting a directory tree however deep it is.

``shutil.rmtree`` recurses once per level and joins full paths, so a tree a few thousand levels
deep (a step can make one in seconds) defeats it twice over: Python's recursion limit, then
``PATH_MAX``. Holding a descriptor per level instead would run out of descriptors. So
:func:`remove_tree` never goes more than one level below the top: it empties each child of the
top directory, moving that child's own subdirectories up into the top as it goes, until nothing
is left. Two descriptors are open at any time, and every name it passes to the kernel is a single
path component.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def remove_tree(path: str | Path) -> None:
    """Delete the directory ``path`` and all it holds. Links are removed, never followed."""
    path = Path(path)
    top = os.open(path, _DIRECTORY)
    try:
        _empty(top)
    finally:
        os.close(top)
    os.rmdir(path)


def _empty(top: int) -> None:
    spare_names = (f".bedrock-remove-{os.getpid()}-{n}" for n in itertools.count())
    while children := _list(top):
        for name, is_dir in children:
            if not is_dir:
                os.unlink(name, dir_fd=top)
                continue
            child = os.open(name, _DIRECTORY, dir_fd=top)
            try:
                for inner, inner_is_dir in _list(child):
                    if inner_is_dir:
                        _move_up(child, inner, top, spare_names)
                    else:
                        os.unlink(inner, dir_fd=child)
            finally:
                os.close(child)
            os.rmdir(name, dir_fd=top)


def _list(fd: int) -> list[tuple[str, bool]]:
    with os.scandir(fd) as scan:
        return [(entry.name, entry.is_dir(follow_symlinks=False)) for entry in scan]


def _move_up(parent: int, name: str, top: int, spare_names: Iterator[str]) -> None:
    """Rename ``parent/name`` to a free name directly under ``top``."""
    for spare in spare_names:
        if not _taken(top, spare):
            os.rename(name, spare, src_dir_fd=parent, dst_dir_fd=top)
            return


def _taken(top: int, name: str) -> bool:
    try:
        os.stat(name, dir_fd=top, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True
