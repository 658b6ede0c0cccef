"""Retrying database work that failed for a moment: a SQLite database locked by a writer for
longer than its busy timeout, or a PostgreSQL connection dropped (a server restart, a failover).

Only for work that is safe to repeat: reads, and compare-and-swap writes. Whatever else fails is
raised at once; a transient failure that outlasts the retries is raised too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from django.db import InterfaceError, OperationalError, connection

logger = logging.getLogger(__name__)

T = TypeVar("T")

# sqlite3's words for "another connection holds the lock"; PostgreSQL's for a lost connection.
_TRANSIENT_WORDS = (
    "database is locked",
    "database table is locked",
    "busy",
    "server closed the connection",
    "terminating connection",
    "connection already closed",
    "connection is closed",
    "the connection is lost",
    "could not receive data from server",
    "ssl connection has been closed",
    "connection refused",
)


def is_transient(exc: BaseException) -> bool:
    """True for a database error that retrying on a fresh connection may cure."""
    if isinstance(exc, InterfaceError):
        return True  # the connection is closed or unusable
    if not isinstance(exc, OperationalError):
        return False
    message = str(exc).lower()
    return any(words in message for words in _TRANSIENT_WORDS)


def retry_transient(
    work: Callable[[], T],
    *,
    attempts: int = 8,
    first_delay: float = 0.25,
    max_delay: float = 5.0,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``work()``, retried with a doubling delay while it fails transiently, at most ``attempts``
    times in all (about 20 s of waiting with the defaults, on top of SQLite's own busy timeout)."""
    delay = first_delay
    for attempt in range(1, attempts + 1):
        try:
            return work()
        except (OperationalError, InterfaceError) as exc:
            if attempt == attempts or not is_transient(exc):
                raise
            logger.warning(
                "database unavailable (%s); retrying in %.2g s (attempt %d of %d)",
                exc,
                delay,
                attempt,
                attempts,
            )
            # A dropped connection stays broken until closed; the next query opens a new one.
            connection.close()
            sleep(delay)
            delay = min(delay * 2, max_delay)
    raise AssertionError("unreachable")  # pragma: no cover
