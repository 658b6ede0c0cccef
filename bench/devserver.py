"""What the benchmarks that time Bedrock's server over HTTP share: a free port, waiting until the
server answers, and stopping it."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_answers(url: str, timeout: float = 60) -> None:
    """Return once ``url``/login/ answers; exit the benchmark if it never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/login/", timeout=2).read()  # noqa: S310
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("the server did not start")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    process.wait(timeout=30)
