"""Bedrock's client, in the API of Basis AI's ``bdrk``.

On Bedrock (``BEDROCK_API_DOMAIN`` and ``BEDROCK_API_TOKEN`` set) what a step logs is sent to the
run it belongs to; anywhere else each call prints what it would have sent and the script goes on.
"""

import atexit
import threading
import time
from typing import Any, Mapping, Optional

import bdrk.utils.vars  # noqa: F401 - notebooks read bdrk.utils.vars.Constants after import bdrk
from bdrk import _artefacts, _charts, _http, _values
from bdrk._transport import Transport
from bdrk._version import __version__

__all__ = [
    "__version__",
    "download_model",
    "flush",
    "init",
    "log_batch",
    "log_binary_classifier_metrics",
    "log_metric",
    "log_metrics",
    "log_model",
    "log_param",
    "log_params",
    "start_run",
]

# How long the end of a run's block, and the interpreter's exit, wait for the last requests.
FLUSH_WAIT = 60.0

_active = None  # type: Optional[Transport]
_offline = False
_setup = threading.Lock()


def _sender() -> Optional[Transport]:
    """The transport on Bedrock, None elsewhere; decided at the first call."""
    global _active, _offline
    if _active is not None or _offline:
        return _active
    with _setup:
        if _active is None and not _offline:
            if _http.on_bedrock():
                _active = Transport()
            else:
                _offline = True
                _http.console(
                    "not on Bedrock (BEDROCK_API_DOMAIN and BEDROCK_API_TOKEN unset): "
                    "what this script logs is printed here, not sent."
                )
    return _active


def flush(timeout: float = FLUSH_WAIT) -> bool:
    """Send everything logged so far; False when the wait ran out first."""
    transport = _sender()
    return transport.flush(timeout) if transport is not None else True


@atexit.register
def _flush_at_exit() -> None:
    if _active is not None and not _active.flush(FLUSH_WAIT):
        _http.console("gave up waiting for Bedrock; the last metrics may be missing.")


def init(*args: Any, **kwargs: Any) -> None:
    """Accepted for compatibility: on Bedrock the run comes from the environment.

    Basis AI's client took ``project_id`` and credentials here for runs started from a laptop;
    this client has no such runs, so the arguments are ignored.
    """
    _sender()


class RunContext:
    """What ``start_run`` returns: a block whose end waits for what it logged to be sent."""

    def __init__(self, **kwargs: Any) -> None:
        self.arguments = kwargs

    def __enter__(self) -> "RunContext":
        return self

    def __exit__(self, *exc_info: Any) -> bool:
        flush()
        return False  # an exception in the block still fails the step


def start_run(*args: Any, **kwargs: Any) -> RunContext:
    """The run Bedrock started; ``pipeline_id``, ``environment_id``, ``model_id`` are ignored."""
    _sender()
    return RunContext(**kwargs)


def log_metric(key: str, value: Any, x: Any = None) -> None:
    """One point of the series ``key``; without x, Bedrock numbers points in order."""
    name = _values.check_name("log_metric", key)
    number = _values.check_number("log_metric", name, value)
    position = _values.check_x("log_metric", name, x)
    _point(name, number, position, time.time())


def log_metrics(metrics: Mapping[str, Any], x: Any = None) -> None:
    """One point in each of several series, all at the same x and time."""
    timestamp = time.time()
    checked = []
    for key, value in dict(metrics).items():
        name = _values.check_name("log_metrics", key)
        checked.append((name, _values.check_number("log_metrics", name, value)))
    position = _values.check_x("log_metrics", "metrics", x)
    for name, number in checked:
        _point(name, number, position, timestamp)


def log_batch(metrics: Mapping[str, Any], x: Any = None) -> None:
    """Many points per series in one call: ``{name: [value, ...]}``, one timestamp for all.

    Not in Basis AI's client; for a step that has its series at hand. ``x``, when given, is a
    list as long as every series.
    """
    timestamp = time.time()
    positions = None  # type: Optional[list]
    if x is not None:
        positions = [
            _values.check_x("log_batch", "x", item) for item in _values.as_list("log_batch", "x", x)
        ]
    checked = []
    for key, values in dict(metrics).items():
        name = _values.check_name("log_batch", key)
        numbers = [
            _values.check_number("log_batch", name, value)
            for value in _values.as_list("log_batch", name, values)
        ]
        if positions is not None and len(positions) != len(numbers):
            raise ValueError(
                f"log_batch: {name!r} has {len(numbers)} values but x has {len(positions)}."
            )
        checked.append((name, numbers))
    transport = _sender()
    for name, numbers in checked:
        xs = positions if positions is not None else [None] * len(numbers)
        if transport is not None:
            transport.metrics(name, numbers, xs, timestamp)
        else:
            _http.console(f"metric {name}: {len(numbers)} values, the last {numbers[-1:]}")


def _point(name: str, value: float, x: Optional[float], timestamp: float) -> None:
    transport = _active if _active is not None else _sender()
    if transport is not None:
        transport.metric(name, value, x, timestamp)
    elif x is None:
        _http.console(f"metric {name} = {value!r}")
    else:
        _http.console(f"metric {name} = {value!r} at x={x!r}")


def log_params(params: Mapping[str, Any]) -> None:
    """Parameters of this step, kept as strings; a name logged again takes the new value."""
    checked = {}
    for key, value in dict(params).items():
        name = _values.check_name("log_params", key)
        checked[name] = _values.check_param("log_params", name, value)
    transport = _sender()
    if transport is not None:
        transport.params(checked)
    else:
        for name, value in checked.items():
            _http.console(f"param {name} = {value}")


def log_param(key: str, value: Any) -> None:
    name = _values.check_name("log_param", key)
    _values.check_param("log_param", name, value)
    log_params({name: value})


def log_classifier_chart(call: str, actual: Any, probability: Any) -> None:
    """The binary classifier chart, for each generation's name of the call."""
    chart = _charts.binary_classifier(call, actual, probability)
    if chart is None:
        return
    name = _charts.NAME
    transport = _sender()
    if transport is not None:
        transport.chart(name, chart)
    else:
        _http.console(
            "chart {}: thresholds {}..{}, tp {}, fp {}, tn {}, fn {}".format(
                name,
                chart["thresholds"][0],
                chart["thresholds"][-1],
                chart["tp"],
                chart["fp"],
                chart["tn"],
                chart["fn"],
            )
        )


def log_binary_classifier_metrics(actual: Any, probability: Any) -> None:
    """Confusion matrices at thresholds 0, 0.05, ..., 0.95, as the chart "binary_classifier".

    ``actual`` holds 0 or 1 per example, ``probability`` the predicted probability of 1.
    """
    log_classifier_chart("log_binary_classifier_metrics", actual, probability)


def log_model(path: str) -> str:
    """Copy a model file or directory into the step's artefact directory, which Bedrock keeps."""
    return _artefacts.log_model(path)


def download_model(
    model_id: Any = None,
    version: Any = None,
    path: str = "",
    log_dependency: bool = True,
    model: Any = None,
) -> str:
    """Unpack a model version's files into path (by default the working directory).

    ``model`` is the first client generation's name for ``model_id``; ``log_dependency`` is
    accepted and ignored.
    """
    chosen = model_id if model_id is not None else model
    if chosen is None or version is None:
        raise ValueError("download_model: give the model and the version to download.")
    return _artefacts.download_model(chosen, version, path)
