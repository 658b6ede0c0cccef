"""gunicorn, the production web server: the only module that imports it."""

from __future__ import annotations

from typing import Any

from gunicorn.app.base import BaseApplication


class _Bedrock(BaseApplication):
    """gunicorn's application for Bedrock's WSGI handler, configured from code, not argv."""

    def __init__(self, options: dict[str, Any]) -> None:
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for name, value in self._options.items():
            self.cfg.set(name, value)

    def load(self) -> Any:
        from django.core.wsgi import get_wsgi_application

        return get_wsgi_application()


def serve(*, bind: str, workers: int, threads: int, timeout: int, access_log_format: str) -> None:
    """Serve until stopped; SIGTERM stops gracefully and returns by SystemExit(0)."""
    _Bedrock(
        {
            "bind": [bind],
            "workers": workers,
            "worker_class": "gthread",
            "threads": threads,
            "timeout": timeout,
            "graceful_timeout": timeout,
            # Behind a proxy, connections are reused between requests.
            "keepalive": 5,
            # Django and the middleware are loaded once, in the master, and shared by the forks.
            "preload_app": True,
            "accesslog": "-",
            "access_log_format": access_log_format,
            "errorlog": "-",
            "proc_name": "bedrock-serve",
            # gunicorn 25's control socket is one path per user ($HOME/.gunicorn): two servers on
            # one machine would fight over it, and nothing here uses it.
            "control_socket_disable": True,
        }
    ).run()
