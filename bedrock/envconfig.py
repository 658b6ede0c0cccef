"""Typed readers for settings taken from environment variables.

Settings must import even when the environment is wrong, so that ``bedrock check`` can say what is
wrong. Readers therefore never raise: a value that cannot be read is recorded in ``PROBLEMS`` (the
system checks in :mod:`bedrock.checks` report them with stable ids) and the default is used.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

T = TypeVar("T")


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


def env_secret(name: str, default: str = "") -> str:
    """A secret from ``NAME``, or from the file ``NAME_FILE`` names: one file per secret, as a
    Nomad template, a Docker or a Kubernetes secret mounts it.

    The file's content is the value as it is, less the line ending it may end with, so ``#``,
    quotes, ``=`` and spaces are part of the value (an env-file parser would read a ``#`` as a
    comment or refuse a stray quote). A file that cannot be read, or ``NAME`` set beside it, is a
    problem (bedrock.E014); the value then comes from ``NAME``, else the default.
    """
    path = os.environ.get(f"{name}_FILE", "").strip()
    if not path:
        return env_str(name, default)
    if os.environ.get(name, "").strip():
        PROBLEMS.append(
            ConfigProblem(
                "bedrock.E014",
                f"{name}_FILE",
                f"{name} and {name}_FILE are both set; which one is meant is unclear.",
                f"Unset one of them: {name}_FILE names a file holding the value.",
            )
        )
        return env_str(name, default)
    try:
        with open(path, encoding="utf-8") as handle:
            value = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        PROBLEMS.append(
            ConfigProblem(
                "bedrock.E014",
                f"{name}_FILE",
                f"{name}_FILE={path!r} cannot be read: {reason}.",
                "Name a file this process may read, holding the value alone.",
            )
        )
        return default
    return value.removesuffix("\n").removesuffix("\r")


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


def _env_parsed(name: str, default: str, parse: Callable[[str], T], check_id: str) -> T:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return parse(default)
    try:
        return parse(raw)
    except ValueError as exc:
        PROBLEMS.append(ConfigProblem(check_id, name, f"{name}: {exc}."))
        return parse(default)


def env_duration(name: str, default: str) -> timedelta:
    return _env_parsed(name, default, parse_duration, "bedrock.E012")


# Kubernetes quantity suffixes; bedrock.hcl's memory takes the same.
SIZE_UNITS = {
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}
_SIZE = re.compile(r"^\s*(\d+)\s*(k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?\s*$")


def parse_size(text: str) -> int:
    """Parse a byte count: ``1048576``, ``256Ki``, ``50Gi``, ``2G`` (Kubernetes' suffixes)."""
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a size such as 256Ki, 512Mi or 50Gi")
    amount, unit = match.groups()
    return int(amount) * SIZE_UNITS[unit or ""]


def format_size(value: int) -> str:
    """The inverse of :func:`parse_size`, choosing the largest binary unit that divides."""
    for unit in ("Ti", "Gi", "Mi", "Ki"):
        if value and value % SIZE_UNITS[unit] == 0:
            return f"{value // SIZE_UNITS[unit]}{unit}"
    return str(value)


def from_settings(cls: type[T], names: dict[str, str]) -> T:
    """The dataclass ``cls`` with each field in ``names`` read from the Django setting named
    there; the field's default where a setting is absent or Django is not configured (in a job's
    hook, say)."""
    from django.conf import settings

    if not settings.configured:
        return cls()
    return cls(
        **{f: getattr(settings, name) for f, name in names.items() if hasattr(settings, name)}
    )


def describe_size(count: int) -> str:
    """``256Ki (262144 bytes)``, or ``1000 bytes`` when no unit divides the count."""
    short = format_size(count)
    return f"{count} bytes" if short == str(count) else f"{short} ({count} bytes)"


def env_size(name: str, default: str) -> int:
    return _env_parsed(name, default, parse_size, "bedrock.E013")
