"""``bedrock serve``: the production web process.

gunicorn runs Bedrock's WSGI application in ``--workers`` processes of ``--threads`` threads each
(gthread workers), forked from a master that has loaded Django once. The master restarts a worker
that dies or falls silent for ``--timeout``; SIGTERM stops it gracefully: it stops accepting,
lets the requests in flight finish (for as long as the timeout), then exits 0. The access log goes
to stdout, gunicorn's own and Django's logs to stderr.

It serves; it sets nothing up. Migrations and the first administrator are ``bedrock up``'s (or
``bedrock migrate``'s), and the work queue is a process of its own, ``bedrock qcluster``.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.db.migrations.executor import MigrationExecutor

# The default access log format, and how long each request took.
ACCESS_LOG_FORMAT = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(M)sms'


class Command(BaseCommand):
    help = (
        "Serve the UI and API with gunicorn (the production web process). Run `bedrock migrate` "
        "first, and the worker, `bedrock qcluster`, beside it."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "addrport", nargs="?", default="127.0.0.1:8000", help="PORT, ADDR:PORT or [IPv6]:PORT"
        )
        parser.add_argument(
            "--workers",
            type=int,
            default=settings.BEDROCK_SERVE_WORKERS,
            help="worker processes (BEDROCK_SERVE_WORKERS: one per core by default)",
        )
        parser.add_argument(
            "--threads",
            type=int,
            default=settings.BEDROCK_SERVE_THREADS,
            help="threads per worker (BEDROCK_SERVE_THREADS)",
        )
        parser.add_argument(
            "--timeout",
            type=int,
            default=int(settings.BEDROCK_SERVE_TIMEOUT.total_seconds()),
            help="seconds before a silent worker is restarted, and the longest a graceful stop "
            "waits (BEDROCK_SERVE_TIMEOUT)",
        )

    def handle(
        self, *args: Any, addrport: str, workers: int, threads: int, timeout: int, **options: Any
    ) -> None:
        if min(workers, threads, timeout) < 1:
            raise CommandError("--workers, --threads and --timeout must each be at least 1.")
        refuse_pending_migrations()
        # The check's connection would be shared by every forked worker.
        connections.close_all()
        # Imported here: gunicorn is of no use to any other command.
        from bedrock.ui.webserver import serve

        serve(
            bind=gunicorn_bind(addrport),
            workers=workers,
            threads=threads,
            timeout=timeout,
            access_log_format=ACCESS_LOG_FORMAT,
        )


def refuse_pending_migrations() -> None:
    """Raise CommandError if the database lacks migrations this code needs, or cannot be read."""
    connection = connections[DEFAULT_DB_ALIAS]
    try:
        executor = MigrationExecutor(connection)
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except DatabaseError as exc:
        raise CommandError(f"Cannot read the database's migrations: {exc}") from exc
    if plan:
        names = ", ".join(f"{m.app_label}.{m.name}" for m, _ in plan[:5])
        more = f" and {len(plan) - 5} more" if len(plan) > 5 else ""
        raise CommandError(
            f"The database lacks {len(plan)} migration(s) this version needs ({names}{more}). "
            "Run `bedrock migrate` (or `bedrock up`, which also migrates), then start "
            "`bedrock serve` again."
        )


def gunicorn_bind(addrport: str) -> str:
    """gunicorn's ``bind`` for runserver's ``PORT``, ``ADDR:PORT`` or ``[IPv6]:PORT``."""
    if addrport.isdigit():
        return f"127.0.0.1:{addrport}"
    _host, sep, port = addrport.rpartition(":")
    if not sep or not port.isdigit():
        raise CommandError(f"{addrport!r} is not PORT, ADDR:PORT or [IPv6]:PORT.")
    return addrport
