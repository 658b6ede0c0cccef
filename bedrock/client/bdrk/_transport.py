"""What a step logs, buffered and sent to ``POST /api/tracking`` from a background thread.

A call only appends to a list under a lock, so that a training loop logging every batch does not
wait on the network; the thread sends the buffer about every second, as soon as it holds a full
request, and when the run's block ends or the interpreter exits.
"""

import json
import os
import threading
import time
from typing import Any, Dict, Iterator, List, Optional, Tuple

from bdrk import _http

# The server takes 100k points a request; smaller requests keep each one quick to store and retry.
MAX_POINTS_PER_REQUEST = 10000
INTERVAL = 1.0
PATH = "/api/tracking"

Point = Tuple[str, float, Optional[float], float]


def requests_for(
    step: str, points: List[Point], params: Dict[str, str], charts: Dict[str, dict]
) -> Iterator[dict]:
    """Request bodies in the contract's columnar form, each under the points cap, order kept.

    A metric's points go out in the order they were logged. Within one request a metric either
    carries x for every point or for none (the server numbers the latter), so a change between
    the two starts a new request.
    """
    body = _body(step)
    if params:
        body["params"] = params
    if charts:
        body["charts"] = charts
    metrics = {}  # type: Dict[str, Dict[str, list]]
    count = 0
    for name, value, x, timestamp in points:
        series = metrics.get(name)
        if count >= MAX_POINTS_PER_REQUEST or (
            series is not None and (x is None) == ("x" in series)
        ):
            body["metrics"] = metrics
            yield body
            body, metrics, series, count = _body(step), {}, None, 0
        if series is None:
            series = metrics[name] = {"value": [], "timestamp": []}
            if x is not None:
                series["x"] = []
        series["value"].append(value)
        series["timestamp"].append(timestamp)
        if x is not None:
            series["x"].append(x)
        count += 1
    if metrics or params or charts:
        body["metrics"] = metrics
        yield body


def _body(step: str) -> Dict[str, Any]:
    return {"step": step} if step else {}


class Transport:
    def __init__(self) -> None:
        self.step = os.environ.get("BEDROCK_RUN_STEP_NAME", "")
        self._lock = threading.Lock()
        self._points = []  # type: List[Point]
        self._params = {}  # type: Dict[str, str]
        self._charts = {}  # type: Dict[str, dict]
        self._wake = threading.Event()
        self._done = threading.Condition()
        self._drains_started = 0
        self._drains_finished = 0
        self._reported = set()  # type: set
        self.sent_points = 0
        thread = threading.Thread(target=self._run, name="bdrk-transport", daemon=True)
        thread.start()

    def metric(self, name: str, value: float, x: Optional[float], timestamp: float) -> None:
        with self._lock:
            self._points.append((name, value, x, timestamp))
            full = len(self._points) >= MAX_POINTS_PER_REQUEST
        if full:
            self._wake.set()

    def metrics(
        self, name: str, values: List[float], xs: List[Optional[float]], timestamp: float
    ) -> None:
        points = [(name, value, x, timestamp) for value, x in zip(values, xs)]
        with self._lock:
            self._points.extend(points)
            full = len(self._points) >= MAX_POINTS_PER_REQUEST
        if full:
            self._wake.set()

    def params(self, params: Dict[str, str]) -> None:
        with self._lock:
            self._params.update(params)

    def chart(self, name: str, data: dict) -> None:
        with self._lock:
            self._charts[name] = data

    def flush(self, timeout: float) -> bool:
        """Wait until everything logged before this call was sent (or given up on)."""
        with self._lock:
            target = self._drains_started + 1
        self._wake.set()
        deadline = time.monotonic() + timeout
        with self._done:
            while self._drains_finished < target:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._done.wait(remaining)
        return True

    def _run(self) -> None:
        while True:
            self._wake.wait(INTERVAL)
            self._wake.clear()
            self._drain()

    def _drain(self) -> None:
        with self._lock:
            points, self._points = self._points, []
            params, self._params = self._params, {}
            charts, self._charts = self._charts, {}
            self._drains_started += 1
            number = self._drains_started
        try:
            for body in requests_for(self.step, points, params, charts):
                if not self._send(body):
                    # The server is down: retrying each remaining request would only hold up the
                    # step's exit. What is logged from now on is tried again at the next drain.
                    break
        finally:
            with self._done:
                self._drains_finished = number
                self._done.notify_all()

    def _send(self, body: dict) -> bool:
        """False when the server could not be reached; a refusal is final and counts as sent."""
        points = sum(len(series["value"]) for series in body.get("metrics", {}).values())
        try:
            _http.call("POST", PATH, json.dumps(body).encode("utf-8"))
        except _http.Refused as error:
            self._report_once(
                f"Bedrock refused what this step logged (HTTP {error.status}): {error.message}"
            )
        except _http.Unreachable as error:
            self._report_once(f"{error}; the points logged so far were not recorded.")
            return False
        except Exception as error:  # the thread must outlive any one request
            self._report_once(f"sending failed: {error!r}")
        else:
            self.sent_points += points
        return True

    def _report_once(self, message: str) -> None:
        # A rejected series is usually rejected again every second: say so once, not each time.
        if message not in self._reported:
            self._reported.add(message)
            _http.console(message)
