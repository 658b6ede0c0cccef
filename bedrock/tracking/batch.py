"""A batch of what a step logs, checked whole before anything of it is stored.

The wire form (``POST /api/tracking``, see bedrock.tracking.views) is JSON::

    {"step": "train",
     "metrics": {"loss": {"value": [0.5, 0.4], "x": [0, 1],
                          "timestamp": [1764600000.1, 1764600000.2]}},
     "params": {"lr": "0.01"},
     "charts": {"binary_classifier": {"kind": "binary_classifier", "thresholds": [0.0, 0.05],
                "tp": [9, 8], "fp": [5, 3], "tn": [0, 2], "fn": [0, 1]}}}

Every key but one series' ``value`` is optional. A problem is a :class:`BatchError` that names the
field (``metrics.loss.value[3]``), so the step's author can find the call that sent it.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from bedrock.tracking.models import ChartKind

_NUMBER = (int, float)
_CONFUSION = ("tp", "fp", "tn", "fn")
MAX_CHART_THRESHOLDS = 1_000


class BatchError(ValueError):
    """What is wrong with a batch, naming the field; nothing of the batch is stored."""


@dataclass(frozen=True)
class Series:
    value: list[float]
    x: list[float] | None
    timestamp: list[float] | None

    def __len__(self) -> int:
        return len(self.value)


@dataclass(frozen=True)
class Batch:
    step: str = ""
    metrics: dict[str, Series] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    charts: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def points(self) -> int:
        return sum(len(series) for series in self.metrics.values())


def check_name(name: object, where: str) -> str:
    limit = settings.BEDROCK_TRACKING_MAX_NAME
    if not isinstance(name, str) or not name.strip():
        raise BatchError(f"{where}: a name is a non-empty string.")
    if len(name) > limit:
        raise BatchError(f"{where}: the name is {len(name)} characters long; the limit is {limit}.")
    if any(ord(char) < 32 or ord(char) == 127 for char in name):
        raise BatchError(f"{where}: the name holds a control character.")
    return name


def _numbers(values: object, where: str, *, length: int | None = None) -> list[float]:
    if not isinstance(values, list):
        raise BatchError(f"{where}: expected a list of numbers.")
    if length is not None and len(values) != length:
        raise BatchError(f"{where}: {len(values)} entries, but the series has {length} values.")
    # One pass in C for the common case; the slow search only to name the culprit.
    with contextlib.suppress(OverflowError):  # an integer past a float's range
        if {type(value) for value in values} <= {int, float} and all(map(math.isfinite, values)):
            return values
    for index, value in enumerate(values):
        if type(value) not in _NUMBER:
            raise BatchError(f"{where}[{index}]: {value!r} is not a number.")
        try:
            finite = math.isfinite(value)
        except OverflowError:
            finite = False
        if not finite:
            raise BatchError(f"{where}[{index}]: {str(value)[:40]} is not a finite number.")
    raise AssertionError("unreachable: some entry failed the check")  # pragma: no cover


def _series(name: str, raw: object) -> Series:
    where = f"metrics.{name}"
    if not isinstance(raw, dict):
        raise BatchError(f"{where}: expected an object with the list 'value'.")
    unknown = set(raw) - {"value", "x", "timestamp"}
    if unknown:
        raise BatchError(f"{where}: unknown keys {sorted(unknown)}; expected value, x, timestamp.")
    value = _numbers(raw.get("value"), f"{where}.value")
    if not value:
        raise BatchError(f"{where}.value: the list is empty.")
    x = raw.get("x")
    timestamp = raw.get("timestamp")
    return Series(
        value=value,
        x=None if x is None else _numbers(x, f"{where}.x", length=len(value)),
        timestamp=(
            None
            if timestamp is None
            else _numbers(timestamp, f"{where}.timestamp", length=len(value))
        ),
    )


def _param(name: str, value: object) -> str:
    where = f"params.{name}"
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise BatchError(f"{where}: a parameter's value is a string or a number.")
    text = str(value)
    limit = settings.BEDROCK_TRACKING_MAX_PARAM_VALUE
    if len(text) > limit:
        raise BatchError(f"{where}: the value is {len(text)} characters; the limit is {limit}.")
    return text


def _chart(name: str, raw: object) -> dict[str, Any]:
    where = f"charts.{name}"
    if not isinstance(raw, dict):
        raise BatchError(f"{where}: expected an object.")
    kind = raw.get("kind")
    if kind != ChartKind.BINARY_CLASSIFIER:
        raise BatchError(
            f"{where}.kind: {kind!r} is not a chart kind; expected 'binary_classifier'."
        )
    unknown = set(raw) - {"kind", "thresholds", *_CONFUSION}
    if unknown:
        raise BatchError(f"{where}: unknown keys {sorted(unknown)}.")
    thresholds = _numbers(raw.get("thresholds"), f"{where}.thresholds")
    if not 0 < len(thresholds) <= MAX_CHART_THRESHOLDS:
        raise BatchError(f"{where}.thresholds: 1 to {MAX_CHART_THRESHOLDS} thresholds.")
    if any(not 0 <= threshold <= 1 for threshold in thresholds):
        raise BatchError(f"{where}.thresholds: every threshold is between 0 and 1.")
    data: dict[str, Any] = {"thresholds": thresholds}
    for key in _CONFUSION:
        counts = _numbers(raw.get(key), f"{where}.{key}", length=len(thresholds))
        if any(type(count) is not int or count < 0 for count in counts):
            raise BatchError(f"{where}.{key}: counts are whole numbers, 0 or more.")
        data[key] = counts
    return data


def _object(payload: dict[str, Any], key: str) -> dict[str, Any]:
    value = payload.get(key) or {}
    if not isinstance(value, dict):
        raise BatchError(f"{key}: expected an object keyed by name.")
    return value


def parse_batch(payload: object) -> Batch:
    """The batch ``payload`` (decoded JSON) describes, or a BatchError naming what is wrong."""
    if not isinstance(payload, dict):
        raise BatchError("The body is a JSON object with 'metrics', 'params' or 'charts'.")
    unknown = set(payload) - {"step", "metrics", "params", "charts"}
    if unknown:
        raise BatchError(f"Unknown keys {sorted(unknown)}; expected step, metrics, params, charts.")
    step = payload.get("step") or ""
    if not isinstance(step, str):
        raise BatchError("step: the step's name is a string.")
    batch = Batch(
        step=step,
        metrics={
            check_name(name, f"metrics.{name}"): _series(name, raw)
            for name, raw in _object(payload, "metrics").items()
        },
        params={
            check_name(name, f"params.{name}"): _param(name, value)
            for name, value in _object(payload, "params").items()
        },
        charts={
            check_name(name, f"charts.{name}"): _chart(name, raw)
            for name, raw in _object(payload, "charts").items()
        },
    )
    limit = settings.BEDROCK_TRACKING_MAX_POINTS_PER_REQUEST
    if batch.points > limit:
        raise BatchError(f"metrics: {batch.points} points in one batch; the limit is {limit}.")
    return batch
