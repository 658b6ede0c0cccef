"""Metrics and parameters a step prints, for people who want no library at all.

A line of the step's output, on its own::

    ::metric accuracy=0.93
    ::metric loss=0.21 x=12
    ::param learning_rate=0.01

is recorded as if the step had logged it through the client (the line stays in the log). A line
that starts so but cannot be read is left alone, and the log says why once the step ends.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field

from bedrock.runs.models import Run
from bedrock.tracking.batch import Batch, BatchError, Series, check_name
from bedrock.tracking.services import tracking_record

_METRIC = re.compile(r"::metric (?P<name>[^=]+)=(?P<value>\S+)(?:\s+x=(?P<x>\S+))?\s*\Z")
_PARAM = re.compile(r"::param (?P<name>[^=]+)=(?P<value>.*?)\s*\Z")
logger = logging.getLogger(__name__)

# No marker is longer; of a longer line only its start is kept until its end arrives.
_LONGEST = 8_192
# Markers held before they are stored: a step printing thousands writes a batch at a time.
FLUSH_EVERY = 5_000
# Problems the log lists; past this it says how many more there were.
LISTED_PROBLEMS = 10


@dataclass
class MarkerReader:
    """Fed the step's (masked) output as it is written; stores what its marker lines say."""

    run_id: int
    step_name: str
    partial: str = ""
    values: dict[str, list[float]] = field(default_factory=dict)
    xs: dict[str, list[float | None]] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    held: int = 0
    problems: list[str] = field(default_factory=list)
    problem_count: int = 0

    def feed(self, text: str) -> None:
        data = self.partial + text
        if "::" not in data:
            self.partial = data.rpartition("\n")[2][:_LONGEST]
            return
        lines = data.split("\n")
        self.partial = lines.pop()[:_LONGEST]  # a line's start is what says it is a marker
        for line in lines:
            if line.startswith(("::metric ", "::param ")):
                self._read(line.rstrip("\r"))
        if self.held >= FLUSH_EVERY:
            self.flush()

    def _read(self, line: str) -> None:
        try:
            if metric := _METRIC.match(line):
                self._hold_metric(metric["name"].strip(), metric["value"], metric["x"])
            elif param := _PARAM.match(line):
                self.params[check_name(param["name"].strip(), "::param")] = param["value"]
                self.held += 1
            else:
                raise BatchError("expected ::metric NAME=VALUE [x=STEP] or ::param NAME=VALUE")
        except BatchError as exc:
            self._problem(f"{line[:80]!r}: {exc}")

    def _hold_metric(self, name: str, value: str, x: str | None) -> None:
        check_name(name, "::metric")
        number = _finite(value, "the value")
        step = None if x is None else _finite(x, "x")
        if self.xs.get(name) and (step is None) != (self.xs[name][-1] is None):
            self.flush()  # a series sent with x and without, in one batch, cannot be columns
        self.values.setdefault(name, []).append(number)
        self.xs.setdefault(name, []).append(step)
        self.held += 1

    def _problem(self, text: str) -> None:
        self.problem_count += 1
        if len(self.problems) < LISTED_PROBLEMS:
            self.problems.append(text)

    def flush(self) -> None:
        if not self.held:
            return
        metrics = {
            name: Series(values, _column(self.xs[name]), None)
            for name, values in self.values.items()
        }
        batch = Batch(step=self.step_name, metrics=metrics, params=dict(self.params))
        self.values, self.xs, self.params, self.held = {}, {}, {}, 0
        try:
            tracking_record(run=Run(pk=self.run_id), batch=batch)
        except BatchError as exc:
            self._problem(f"{batch.points} metric points and {len(batch.params)} params: {exc}")
        except Exception as exc:  # the step's output must keep flowing whatever the database does
            logger.warning("markers of run %s could not be stored", self.run_id, exc_info=True)
            self._problem(f"{batch.points} metric points could not be stored: {exc}")

    def report(self) -> str:
        """Lines for the step's log about markers that were not recorded, or ""."""
        if not self.problem_count:
            return ""
        lines = [f"--- Bedrock: {self.problem_count} marker line(s) not recorded ---"]
        lines += [f"    {problem}" for problem in self.problems]
        if self.problem_count > len(self.problems):
            lines.append(f"    … and {self.problem_count - len(self.problems)} more")
        return "\n".join(lines) + "\n"


def _finite(text: str, what: str) -> float:
    try:
        number = float(text)
    except ValueError:
        raise BatchError(f"{what} {text!r} is not a number") from None
    if not math.isfinite(number):
        raise BatchError(f"{what} {text!r} is not a finite number")
    return number


def _column(xs: list[float | None]) -> list[float] | None:
    if xs[0] is None:
        return None
    return [x for x in xs if x is not None]
