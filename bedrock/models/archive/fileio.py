"""Positional reads and writes on file descriptors, shared by packing and unpacking.

Workers share one descriptor: ``pread``/``pwrite`` keep no file position, so they need no lock.
"""

from __future__ import annotations

import os
import threading

from bedrock.models.archive.errors import ArchiveError

READ_SIZE = 1 << 20
# zlib is fed and drained in pieces this big, so no single output object grows large.
FEED = 64 << 10


def default_workers(workers: int | None) -> int:
    if workers is not None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        return workers
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def read_into(fd: int, buffer: bytearray, length: int, offset: int) -> memoryview:
    """Up to ``length`` bytes at ``offset`` into ``buffer``; shorter only at end of file.

    Reading into buffers that are reused, rather than into fresh multi-megabyte ``bytes``, spares a
    page fault per 4 KiB: each fresh allocation that size is a new mmap the kernel must zero.
    """
    view = memoryview(buffer)[:length]
    got = 0
    while got < length:
        n = os.preadv(fd, [view[got:]], offset + got)
        if n == 0:
            break
        got += n
    return view[:got]


def pread_exact(fd: int, length: int, offset: int, what: str) -> bytes:
    data = os.pread(fd, length, offset)
    if len(data) != length:
        raise ArchiveError(f"{what}: the archive ends early; it is truncated or corrupt")
    return data


class Buffers(threading.local):
    """One read buffer per worker thread, grown on demand and kept."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def get(self, size: int) -> bytearray:
        if len(self.buffer) < size:
            self.buffer = bytearray(size)
        return self.buffer


def pwrite_all(fd: int, data: bytes | memoryview, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written
