"""The API served for a run's steps by a command that has no server of its own (``bedrock demo``).

Steps reach Bedrock's API for their client (metrics) and for pip (the package index that serves
the client): without a server, a step that installs ``bdrk`` fails.
"""

from __future__ import annotations

import contextlib
import os
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

from django.conf import settings
from django.core.servers.basehttp import (
    ThreadedWSGIServer,
    WSGIRequestHandler,
    get_internal_wsgi_application,
)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class _LoadedOnFirstRequest:
    """Bedrock's WSGI application, loaded when a step first calls: its middleware imports the
    GraphQL machinery (most of a second), which a run whose steps never call would wait for
    before its supervisor starts."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._application: Any = None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        with self._lock:
            if self._application is None:
                self._application = get_internal_wsgi_application()
        return self._application(environ, start_response)


@contextlib.contextmanager
def api_for_steps(
    write: Callable[[str], None], *, bind: str = "127.0.0.1", force: bool = False
) -> Iterator[str]:
    """Serve the API on a free port of ``bind`` while the block runs, and tell steps where it is
    (a loopback address, which the Docker executor rewrites for containers), unless
    BEDROCK_API_DOMAIN names a server already and ``force`` is not given."""
    if os.environ.get("BEDROCK_API_DOMAIN", "").strip() and not force:
        yield settings.BEDROCK_API_DOMAIN
        return
    before = os.environ.get("BEDROCK_API_DOMAIN"), settings.BEDROCK_API_DOMAIN
    server = ThreadedWSGIServer((bind, 0), _QuietHandler)
    server.set_app(_LoadedOnFirstRequest())
    # shutdown() waits for the loop to look at its flag: every 0.5 s by default, which the
    # command following a run would wait after the run ended.
    serve = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    serve.daemon = True
    serve.start()
    address = f"http://127.0.0.1:{server.server_address[1]}"
    os.environ["BEDROCK_API_DOMAIN"] = settings.BEDROCK_API_DOMAIN = address
    write(f"Steps reach the API at {address} while this runs.")
    try:
        yield address
    finally:
        server.shutdown()
        server.server_close()
        settings.BEDROCK_API_DOMAIN = before[1]
        if before[0] is None:
            os.environ.pop("BEDROCK_API_DOMAIN", None)
        else:
            os.environ["BEDROCK_API_DOMAIN"] = before[0]


def api_answers(domain: str, *, timeout: float = 2.0) -> bool:
    """Whether a server answers at ``domain`` (any HTTP status will do)."""
    try:
        with urllib.request.urlopen(f"{domain.rstrip('/')}/pypi/simple/", timeout=timeout):  # noqa: S310 - Bedrock's own setting
            return True
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):
        return False
