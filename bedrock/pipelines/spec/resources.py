"""Resources and retries: quantities read, converted and held to the limits."""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Any

from bedrock.envconfig import SIZE_UNITS, format_size
from bedrock.pipelines.spec.limits import SpecLimits
from bedrock.pipelines.spec.locate import Locator
from bedrock.pipelines.spec.model import KeyPath, Resources
from bedrock.pipelines.spec.report import Reporter, describe, scalar_text

_CPU = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)(m?)$")
# Kubernetes quantity suffixes, which Bedrock passed through to its pods.
_MEMORY_UNITS = SIZE_UNITS
_MEMORY = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)(k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")

# Longer numbers are refused unread: Python will not convert more than 4300 digits at all.
_MAX_DIGITS = 30
_HUGE = Decimal(10) ** _MAX_DIGITS


def _whole_number(value: Any) -> int | None:
    """An int, or a string of digits, as an int; None for anything else or absurdly long."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*\d+\s*", value):
        digits = value.strip().lstrip("0") or "0"
        return int(digits) if len(digits) <= _MAX_DIGITS else 10**_MAX_DIGITS
    return None


def _decimal(text: str) -> Decimal:
    """A quantity's number; any with more than 30 whole digits is simply "huge"."""
    whole = text.split(".", 1)[0].lstrip("0")
    return Decimal(text) if len(whole) <= _MAX_DIGITS else _HUGE


def _clip(value: Any) -> str:
    """A value as written, for a message: a 5000-digit number is shortened to its ends."""
    text = str(value).strip()
    return text if len(text) <= 40 else f"{text[:20]}…{text[-10:]} ({len(text)} characters)"


class ResourceReader(Reporter):
    """Reads resources and retry blocks against the server's limits."""

    def __init__(self, locator: Locator, limits: SpecLimits | None = None) -> None:
        super().__init__(locator)
        self.limits = limits or SpecLimits()

    def read_resources(self, value: Any, path: KeyPath) -> Resources:
        body = self.block(value, path, 'resources { cpu = "0.5" memory = "1G" }')
        if body is None:
            return Resources()
        for key in body:
            if key not in ("cpu", "memory", "gpu"):
                self.warn(
                    (*path, key),
                    f"unknown key {key!r} in resources is ignored; expected cpu, memory or gpu",
                )
        cpu = memory = gpu = None
        millicpu = memory_bytes = None
        gpu_count = 0
        if "cpu" in body:
            cpu, millicpu = self._cpu(body["cpu"], (*path, "cpu"))
        if "memory" in body:
            memory, memory_bytes = self._memory(body["memory"], (*path, "memory"))
        if "gpu" in body:
            gpu, gpu_count = self._gpu(body["gpu"], (*path, "gpu"))
        return Resources(
            cpu=cpu,
            memory=memory,
            gpu=gpu,
            millicpu=millicpu,
            memory_bytes=memory_bytes,
            gpu_count=gpu_count,
        )

    def _cpu(self, value: Any, path: KeyPath) -> tuple[str | None, int | None]:
        text = None if isinstance(value, bool) else scalar_text(value)
        match = _CPU.match(text.strip()) if text is not None else None
        if match is None:
            self.error(
                path,
                'cpu must be a number of CPUs such as "0.5", "2" or "500m"; found '
                + describe(value),
                value=True,
            )
            return None, None
        amount = _decimal(match.group(1))
        millicpu = math.ceil(amount if match.group(2) else amount * 1000)
        if millicpu <= 0:
            self.error(path, f"cpu must be more than 0; found {text!r}", value=True)
            return None, None
        if millicpu > self.limits.step_cpus * 1000:
            self.error(
                path,
                f"cpu {_clip(text)} is more than the {self.limits.step_cpus} CPUs a step may ask "
                "for (BEDROCK_MAX_STEP_CPUS)",
                value=True,
            )
            return None, None
        return text, millicpu

    def _memory(self, value: Any, path: KeyPath) -> tuple[str | None, int | None]:
        text = None if isinstance(value, bool) else scalar_text(value)
        match = _MEMORY.match(text.strip()) if text is not None else None
        if match is None:
            self.error(
                path,
                'memory must be a quantity such as "512M", "1G" or "1Gi" (units k M G T P E, '
                f"or Ki Mi Gi Ti Pi Ei); found {describe(value)}",
                value=True,
            )
            return None, None
        amount = _decimal(match.group(1))
        unit = match.group(2) or ""
        size = math.ceil(amount * _MEMORY_UNITS[unit])
        if size <= 0:
            self.error(path, f"memory must be more than 0; found {text!r}", value=True)
            return None, None
        if size > self.limits.step_memory:
            self.error(
                path,
                f"memory {_clip(text)} is more than the {format_size(self.limits.step_memory)} "
                "a step may ask for (BEDROCK_MAX_STEP_MEMORY)",
                value=True,
            )
            return None, None
        if not unit:
            self.warn(
                path,
                f"memory {text!r} has no unit, so it means {size} bytes; write e.g. "
                f'"{text}M" for megabytes',
                value=True,
            )
        return text, size

    def _gpu(self, value: Any, path: KeyPath) -> tuple[str | None, int]:
        count = _whole_number(value)
        if count is None or count < 0:
            self.error(
                path,
                f'gpu must be a whole number of GPUs such as "1"; found {describe(value)}',
                value=True,
            )
            return None, 0
        if not self._within(path, value, count, (self.limits.step_gpus, "GPUs", "STEP_GPUS")):
            return None, 0
        return str(value), count

    def read_retry(self, value: Any, path: KeyPath) -> int:
        body = self.block(value, path, "retry { limit = 2 }")
        if body is None:
            return 0
        for key in body:
            if key != "limit":
                self.warn((*path, key), f"unknown key {key!r} in retry is ignored; expected limit")
        if "limit" not in body:
            return 0
        limit = body["limit"]
        count = _whole_number(limit)
        if count is None or count < 0:
            self.error(
                (*path, "limit"),
                "limit must be a whole number of retries (0 or more); found " + describe(limit),
                value=True,
            )
            return 0
        if not self._within(
            (*path, "limit"), limit, count, (self.limits.retries, "retries", "RETRIES")
        ):
            return 0
        return count

    # limits -----------------------------------------------------------------------------
    def _within(self, path: KeyPath, written: Any, count: int, bound: tuple[int, str, str]) -> bool:
        """True if ``count`` is at most the limit; otherwise an error naming its setting.

        ``bound`` is (limit, what it counts, the setting's name after ``BEDROCK_MAX_``).
        """
        limit, noun, setting = bound
        if count <= limit:
            return True
        self.error(
            path,
            f"{_clip(written)} is more than the {limit} {noun} allowed (BEDROCK_MAX_{setting})",
            value=True,
        )
        return False
