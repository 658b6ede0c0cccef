"""Places for steps running at once on this machine, shared by every supervisor on it.

Each place is a file under ``BEDROCK_HOME/slots`` held with ``flock``: the kernel releases the
lock when its holder closes the file or dies, so a killed supervisor never keeps a place.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from django.conf import settings


def slots_dir() -> Path:
    path = Path(settings.BEDROCK_HOME) / "slots"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _try_take(directory: Path, count: int) -> int | None:
    for index in range(count):
        # Opened without inheritance (Python's default), so a step never holds its own place.
        fd = os.open(directory / f"slot-{index}", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return fd
    return None


@contextlib.contextmanager
def machine_slot(*, give_up: Callable[[], bool]) -> Iterator[bool]:
    """Hold one of ``BEDROCK_MACHINE_MAX_STEPS`` places while the block runs.

    Yields True once a place is held, or False without one as soon as ``give_up()`` says the
    step should not start any more (its run is stopping).
    """
    directory = slots_dir()
    while (fd := _try_take(directory, settings.BEDROCK_MACHINE_MAX_STEPS)) is None:
        if give_up():
            yield False
            return
        time.sleep(settings.BEDROCK_SLOT_POLL_SECONDS)
    try:
        yield True
    finally:
        os.close(fd)
