"""Run a function in a detached process forked from this one, with Django already loaded.

A supervisor started as ``bedrock execute`` boots Python and Django again (most of a second);
forking the process that starts it costs milliseconds. The child is made what that command
would be: a double fork with ``setsid``, so it has its own session, is reparented away from its
parent and outlives it; stdin from /dev/null, stdout and stderr into its log; signal handlers and
mask as a fresh interpreter has them. Every other inherited descriptor (a listening socket the
parent serves, a worker's pipes, its database sockets) is pointed at /dev/null, so the child
keeps none of them open once the parent is gone. It ends with ``os._exit``: the parent's atexit
handlers and buffers are not the child's to run.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import traceback
from collections.abc import Callable

from django.db import connections


def fork_safe() -> bool:
    """Whether this process may fork a child now: not inside a transaction, whose connection
    closing before the fork would end."""
    return not any(conn.in_atomic_block for conn in connections.all(initialized_only=True))


def detach(target: Callable[[], object], log_fd: int) -> int:
    """Run ``target`` in a detached grandchild writing to ``log_fd``; return its pid.

    The database connections are closed first, so that the child opens its own and never
    talks on the parent's sockets.
    """
    connections.close_all()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the forked child
        os.close(read_end)
        _middle(target, log_fd, write_end)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as said:
        pid = said.read()
    os.waitpid(child, 0)
    if not pid:
        raise OSError("the supervisor's process could not be forked")
    return int(pid)


def _middle(target: Callable[[], object], log_fd: int, report: int) -> None:  # pragma: no cover
    """The first child: a new session, the grandchild, its pid to the parent, and gone."""
    try:
        os.setsid()
        grandchild = os.fork()
        if grandchild == 0:
            os.close(report)
            _grandchild(target, log_fd)
        os.write(report, str(grandchild).encode())
    finally:
        os._exit(0)


def _grandchild(target: Callable[[], object], log_fd: int) -> None:  # pragma: no cover
    code = 1
    try:
        _become_detached(log_fd)
        target()
        code = 0
    except BaseException:
        with contextlib.suppress(Exception):
            traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _become_detached(log_fd: int) -> None:  # pragma: no cover - runs in the forked child
    _reset_signals()
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    # Pointed at /dev/null rather than closed: a Python object the parent left (a socket, a
    # file) may close its descriptor later, and must not close one this process opened since.
    for fd in _open_descriptors():
        if fd > 2 and fd != null:
            os.dup2(null, fd)
    os.close(null)
    _fresh_streams()
    # The parent's connections were closed before the fork; forget them all the same, so that
    # this process opens its own on first use.
    for conn in connections.all(initialized_only=True):
        conn.connection = None


def _open_descriptors() -> list[int]:
    try:
        return [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:  # no /proc: nothing to tell which are open
        return []


def _reset_signals() -> None:  # pragma: no cover - runs in the forked child
    """Handlers and mask as a fresh interpreter has them: a worker's own handlers (a SIGTERM
    that ends the worker, say) are not the supervisor's."""
    for number in signal.valid_signals():
        with contextlib.suppress(OSError, ValueError, RuntimeError):
            signal.signal(number, signal.SIG_DFL)
    with contextlib.suppress(OSError, ValueError):
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def _fresh_streams() -> None:  # pragma: no cover - runs in the forked child
    """New sys.stdout and sys.stderr on the log: the parent's may hold a lock another of its
    threads had taken at the fork, or output the parent will write itself."""
    old = {id(sys.stdout): None, id(sys.stderr): None}
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115 - the process's own
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
    for handler in logging.root.handlers:
        if isinstance(handler, logging.StreamHandler) and id(handler.stream) in old:
            # Not setStream(): it flushes the old stream, whose lock may never be released.
            handler.stream = sys.stderr
