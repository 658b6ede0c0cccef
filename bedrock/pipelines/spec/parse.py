"""Reading the text: the limits checked first, then python-hcl2 or pyhcl chosen and run, and
their output handed to the normaliser."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hcl  # pyhcl
import hcl2

from bedrock.pipelines.spec import limits as speclimits
from bedrock.pipelines.spec.limits import SpecLimits
from bedrock.pipelines.spec.locate import Locator
from bedrock.pipelines.spec.model import Problem, Spec, SpecError, problem, render
from bedrock.pipelines.spec.normalise import Normaliser
from bedrock.pipelines.spec.syntax import (
    SyntaxFailure,
    choose_failure,
    hcl2_failure,
    pyhcl_failure,
)

_HCL2_OPTIONS = hcl2.SerializationOptions(
    strip_string_quotes=True,
    explicit_blocks=False,
    with_comments=False,
    # pyhcl expands 1e3 to 1000.0; python-hcl2 would otherwise give the string "${1e3}".
    preserve_scientific_notation=False,
)


def load(text: str, *, filename: str = "bedrock.hcl") -> Spec:
    """Read bedrock.hcl text. Raises `SpecError` listing every error (and warning) found."""
    return load_with(text, filename=filename)


def load_file(path: str | Path) -> Spec:
    """`load` on a file. OSError when it cannot be read; SpecError when it is not UTF-8."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        message = f"the file is not UTF-8 text (byte {exc.start}: {exc.reason})"
        raise SpecError([problem("", message)], filename=str(path)) from exc
    return load(text, filename=str(path))


def check(text: str, *, filename: str = "bedrock.hcl") -> list[Problem]:
    """Every error and warning in the text, in file order. Never raises."""
    try:
        return list(load(text, filename=filename).warnings)
    except SpecError as exc:
        return exc.problems


def load_with(text: str, *, filename: str = "bedrock.hcl", parser: str | None = None) -> Spec:
    """`load`, optionally forcing one parser ("hcl2" or "pyhcl"); tests compare the two."""
    if text.startswith("\ufeff"):
        text = text[1:]
    if not text.strip():
        raise SpecError(
            [problem("", "the file is empty: expected a train, batch_score or serve stanza")],
            filename=filename,
        )
    limits = speclimits.current()
    if overrun := _over_limits(text, limits):
        raise SpecError([overrun], filename=filename)
    locator = Locator(text)
    data, used, syntax_error = _parse(text, locator, parser)
    if syntax_error is not None:
        raise SpecError([syntax_error], filename=filename)
    normaliser = Normaliser(locator, limits)
    spec = normaliser.run(data, used)
    problems = normaliser.problems()
    if any(problem.is_error for problem in problems) or spec is None:
        raise SpecError(problems, filename=filename)
    return spec


def _over_limits(text: str, limits: SpecLimits) -> Problem | None:
    """The limit the text exceeds, as a problem at the place it did; checked before parsing."""
    overrun = speclimits.scan(text, limits)
    if overrun is None:
        return None
    if overrun.offset is None:
        return problem("", overrun.message)
    line = text.count("\n", 0, overrun.offset) + 1
    column = overrun.offset - (text.rfind("\n", 0, overrun.offset) + 1) + 1
    return problem("", overrun.message, line, column)


def _parse(text: str, locator: Locator, forced: str | None) -> tuple[Any, str, Problem | None]:
    """(data, parser used, None) or (None, "", the syntax error to report)."""
    if forced is not None:
        attempts = [forced]
    elif locator.pyhcl_semantics_differ:
        # python-hcl2 resolves \n, \t and \u escapes and re-indents heredocs; Bedrock (pyhcl)
        # passed those to bash as written, so pyhcl reads such files.
        attempts = ["pyhcl", "hcl2"]
    else:
        attempts = ["hcl2", "pyhcl"]
    failures: dict[str, SyntaxFailure] = {}
    for name in attempts:
        try:
            if name == "hcl2":
                data = hcl2.loads(text, serialization_options=_HCL2_OPTIONS)
            else:
                data = hcl.loads(text)
        except Exception as exc:
            failures[name] = (
                hcl2_failure(exc, locator) if name == "hcl2" else pyhcl_failure(exc, text, locator)
            )
            continue
        return data, name, None
    chosen = choose_failure(failures)
    if locator.multiline_string is not None:
        # Both parsers read on past a missing quote and stumble somewhere later; the string
        # that runs over a line break is the likelier culprit.
        line, column = locator.position(locator.multiline_string)
        if chosen.line is None or (line, column) <= (chosen.line, chosen.column or 0):
            message = (
                'syntax error: a string runs past the end of its line: is its closing " missing?'
            )
            return None, "", problem("", message, line, column)
    glued = locator.unquoted_quantity
    if glued is not None:
        # `memory = 1G` reads as the number 1 then a block named G, so both parsers complain
        # a line or two later; point at the real mistake.
        path, pos, text_value = glued
        line, column = locator.position(pos)
        if chosen.line is None or (line, column) <= (chosen.line, chosen.column or 0):
            return (
                None,
                "",
                problem(
                    render(path),
                    f'syntax error: {text_value} must be quoted: {path[-1]} = "{text_value}"',
                    line,
                    column,
                ),
            )
    return None, "", problem("", f"syntax error: {chosen.message}", chosen.line, chosen.column)
