"""The typed spec: what a bedrock.hcl file means once read, and the problems found in it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

SUPPORTED_VERSION = "1.0"
# The one other version seen in a real file; it was reverted upstream, so it is read as 1.0.
TOLERATED_VERSIONS = ("1.1",)
PIPELINE_STANZAS = ("train", "batch_score")
STANZAS = (*PIPELINE_STANZAS, "serve")
STEP_NAME_PATTERN = re.compile(r"^[a-z0-9A-Z]([A-Za-z0-9\-\_\.]*[a-z0-9A-Z])?$")
STEP_NAME_MAX_LENGTH = 512
KeyPath = tuple[str | int, ...]


# --------------------------------------------------------------------------------------------
# Public data


@dataclass(frozen=True)
class Problem:
    """One error or warning, with the key path and, where known, the 1-based line and column."""

    path: str
    message: str
    line: int | None
    column: int | None
    severity: str = "error"

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def format(self, filename: str) -> str:
        """`FILE:LINE:COLUMN: key.path: message`, leaving out the parts that are not known."""
        location = filename
        if self.line is not None:
            location += f":{self.line}"
            if self.column is not None:
                location += f":{self.column}"
        parts = [location]
        if self.path:
            parts.append(self.path)
        parts.append(f"warning: {self.message}" if self.severity == "warning" else self.message)
        return ": ".join(parts)


class SpecError(Exception):
    """The file cannot be used. `problems` holds its errors and the warnings found with them."""

    def __init__(self, problems: list[Problem], *, filename: str = "bedrock.hcl") -> None:
        self.problems = list(problems)
        self.filename = filename
        super().__init__("\n".join(problem.format(filename) for problem in self.problems))

    @property
    def errors(self) -> list[Problem]:
        return [problem for problem in self.problems if problem.is_error]


@dataclass(frozen=True)
class Resources:
    cpu: str | None = None
    memory: str | None = None
    gpu: str | None = None
    millicpu: int | None = None
    memory_bytes: int | None = None
    gpu_count: int = 0


@dataclass(frozen=True)
class Step:
    name: str
    image: str
    install: tuple[str, ...]
    script: tuple[str, ...]
    resources: Resources
    depends_on: tuple[str, ...]
    retry_limit: int = 0

    def command(self) -> str:
        """The container command, built as Bedrock built it (`spanlib/utils/command.py`).

        Each entry is wrapped in `{ …; }` so that `a || b` keeps its meaning inside the chain, and
        the chain stops at the first failing entry. install and script share one shell, which is
        why `conda activate` in install works for script.
        """
        parts = []
        for entry in (*self.install, *self.script):
            command = entry.strip()
            if not command:
                continue
            if not command.endswith((";", "&")):
                command += ";"
            parts.append(f"{{ {command} }}")
        return " && ".join(parts)


@dataclass(frozen=True)
class Stanza:
    name: str
    steps: tuple[Step, ...]
    parameters: dict[str, str] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()

    def step(self, name: str) -> Step | None:
        return next((step for step in self.steps if step.name == name), None)


@dataclass(frozen=True)
class Spec:
    version: str | None
    stanzas: dict[str, Stanza]
    warnings: tuple[Problem, ...] = ()
    parser: str = "hcl2"

    def stanza(self, name: str) -> Stanza | None:
        return self.stanzas.get(name)


def problem(path: str, message: str, line: int | None = None, column: int | None = None) -> Problem:
    return Problem(path=path, message=message, line=line, column=column)


def render(path: KeyPath) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text
