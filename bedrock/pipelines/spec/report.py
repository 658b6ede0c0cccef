"""Problems found while normalising one file, placed by the locator, and the checks of a
value's shape (a block, a list of strings, a map) that every part of the normaliser uses."""

from __future__ import annotations

from typing import Any

from bedrock.pipelines.spec.locate import Locator
from bedrock.pipelines.spec.model import KeyPath, Problem, render


def describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a block"
    return type(value).__name__


def scalar_text(value: Any) -> str | None:
    """A parameter-like value as the environment will see it; None for lists, blocks and null."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    return None


class Reporter:
    """Collects errors and warnings, each placed at the line and column of its key path."""

    def __init__(self, locator: Locator) -> None:
        self.loc = locator
        self._problems: list[Problem] = []
        self._duplicates_reported: set[KeyPath] = set()

    # problems ---------------------------------------------------------------------------
    def error(
        self, path: KeyPath, message: str, *, value: bool = False, occurrence: int = 0
    ) -> None:
        self._add(path, message, "error", value, occurrence)

    def warn(
        self, path: KeyPath, message: str, *, value: bool = False, occurrence: int = 0
    ) -> None:
        self._add(path, message, "warning", value, occurrence)

    def _add(
        self, path: KeyPath, message: str, severity: str, value: bool, occurrence: int
    ) -> None:
        line, column = self.loc.find(path, value=value, occurrence=occurrence)
        self._problems.append(Problem(render(path), message, line, column, severity))

    def problems(self) -> list[Problem]:
        unique = list(dict.fromkeys(self._problems))
        return sorted(unique, key=lambda p: (p.line or 0, p.column or 0))

    # shapes -----------------------------------------------------------------------------
    def block(self, value: Any, path: KeyPath, example: str) -> dict | None:
        """A block or map body. python-hcl2 gives a block as a one-item list of dicts."""
        if isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
            if len(value) > 1:
                self.duplicate(path)
            return value[0]
        if isinstance(value, dict):
            return value
        self.error(path, f"expected a block, e.g. {example}; found {describe(value)}", value=True)
        return None

    def duplicate(self, path: KeyPath) -> None:
        if path in self._duplicates_reported:
            return
        self._duplicates_reported.add(path)
        written = self.loc.occurrences(path)
        first = self.loc.position(written[0].pos)[0] if written else None
        where = f" (first at line {first})" if first is not None else ""
        self.error(
            path,
            f"{path[-1]} is declared more than once{where}; write it once",
            occurrence=1,
        )

    def strings(self, value: Any, path: KeyPath, example: str) -> tuple[str, ...] | None:
        if not isinstance(value, list):
            self.error(
                path,
                f"expected a list of strings, e.g. {example}; found {describe(value)}",
                value=True,
            )
            return None
        result = []
        for index, item in enumerate(value):
            if isinstance(item, str):
                result.append(item)
            else:
                self.error(
                    (*path, index),
                    f"expected a string; found {describe(item)}",
                    value=True,
                )
        return tuple(result) if len(result) == len(value) else None

    def string_map(self, value: Any, path: KeyPath, example: str) -> dict[str, str]:
        body = self.block(value, path, example)
        result: dict[str, str] = {}
        for key, item in (body or {}).items():
            text = scalar_text(item)
            if text is None:
                self.error(
                    (*path, key),
                    f"expected a string or number; found {describe(item)}",
                    value=True,
                )
            else:
                result[str(key)] = text
        return result
