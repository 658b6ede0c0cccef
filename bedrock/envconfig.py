"""Typed readers for settings taken from environment variables.

Settings must import even when the environment is wrong, so that ``bedrock check`` can say what is
wrong. Readers therefore never raise: a value that cannot be read is recorded in ``PROBLEMS`` (the
system checks in :mod:`bedrock.checks` report them with stable ids) and the default is used.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class ConfigProblem:
    check_id: str
    variable: str
    message: str
    hint: str = ""


PROBLEMS: list[ConfigProblem] = []

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    PROBLEMS.append(
        ConfigProblem(
            "bedrock.E010",
            name,
            f"{name}={raw!r} is not a boolean.",
            "Use one of 1/0, true/false, yes/no, on/off.",
        )
    )
    return default


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        return int(raw)
    except ValueError:
        PROBLEMS.append(ConfigProblem("bedrock.E011", name, f"{name}={raw!r} is not an integer."))
        return default


def env_list(name: str, default: list[str] | None = None) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return list(default or [])
    return [item.strip() for item in raw.split(",") if item.strip()]


_DURATION = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "": "hours"}


def parse_duration(text: str) -> timedelta:
    """Parse ``90s``, ``30m``, ``72h``, ``7d``; a bare number counts hours."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration such as 90s, 30m, 72h or 7d")
    amount, unit = match.groups()
    return timedelta(**{_UNITS[unit]: int(amount)})


def format_duration(value: timedelta) -> str:
    """The inverse of :func:`parse_duration`, choosing the largest whole unit."""
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def env_duration(name: str, default: str) -> timedelta:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return parse_duration(default)
    try:
        return parse_duration(raw)
    except ValueError as exc:
        PROBLEMS.append(ConfigProblem("bedrock.E012", name, f"{name}: {exc}."))
        return parse_duration(default)
