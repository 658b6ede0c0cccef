"""A directory packed on a thread of its own into a pipe, read from the other end as it is made.

One stream serves both consumers: a storage backend's upload reads it like a file, a streamed web
response iterates over it. Memory stays one pipe's worth, whatever the archive's size.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from bedrock.models.archive.errors import ArchiveError
from bedrock.models.archive.packing import PackResult, pack

logger = logging.getLogger(__name__)

_CHUNK = 1 << 20
# Linux lets a pipe hold up to /proc/sys/fs/pipe-max-size (1 MiB by default) instead of 64 KiB:
# fewer context switches between the packing thread and the reading one.
_PIPE_SIZE = 1 << 20


class PackedStream:
    """The reading end of the pipe :func:`pack` writes ``directory`` into, started at first read.

    At the end of the stream it waits for the packing thread and raises whatever pack raised: a
    failed pack closes the pipe early, and a reader must never take that for a complete, short
    archive. ``close()`` (on success or failure, read or not) stops the packing, which then meets
    a broken pipe, waits for it and calls ``on_close``. ``result`` is what pack returned, once
    the stream has ended.
    """

    def __init__(
        self,
        directory: Path,
        *,
        workers: int | None = None,
        name: str = "pack",
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self._directory = directory
        self._on_close = on_close
        self._closed = False
        self._workers = workers
        self._name = name
        self._file: BinaryIO | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self.result: PackResult | None = None

    def _start(self) -> None:
        read_fd, write_fd = os.pipe()
        with contextlib.suppress(OSError, AttributeError):
            fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, _PIPE_SIZE)
        self._file = open(read_fd, "rb")  # noqa: SIM115  (closed by close())

        def produce() -> None:
            try:
                with open(write_fd, "wb") as out:
                    self.result = pack(self._directory, out, workers=self._workers)
            except BaseException as exc:  # handed to the reading thread
                self._error = exc

        self._thread = threading.Thread(target=produce, name=self._name, daemon=True)
        try:
            self._thread.start()
        except BaseException:
            os.close(write_fd)
            self._thread = None
            raise

    def read(self, size: int = -1) -> bytes:
        if self._file is None:
            self._start()
        assert self._file is not None
        data = self._file.read(size)
        if not data and size != 0:
            self.raise_failure()
        return data

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.read(_CHUNK):
            yield chunk

    def raise_failure(self) -> None:
        """Wait for the packing thread; raise what pack raised, if it did."""
        if self._thread is not None:
            self._thread.join()
        if self._error is not None:
            # What the user's files break (too deep, a FIFO, a link outside) is theirs to fix and
            # is told to them by the caller; anything else is Bedrock's failure, logged here.
            if not isinstance(self._error, ArchiveError):
                logger.error("packing %s failed: %s", self._directory, self._error)
            raise self._error

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    @property
    def closed(self) -> bool:
        return self._file is not None and self._file.closed

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._file is not None:
            self._file.close()
        if self._thread is not None:
            self._thread.join()
        if self._on_close is not None:
            self._on_close()

    def __enter__(self) -> PackedStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
