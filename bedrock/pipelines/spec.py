"""bedrock.hcl: read Bedrock's pipeline file, check it, and turn it into a `Spec`.

The file is HCL 1 as Basis AI's Bedrock wrote it (`research/bedrock.md` §1-§3). It is read with
python-hcl2; files that use HCL 1 forms it rejects (a block inside a list,
`script = [{spark-submit { … }}]`; shell text such as `${PORT:-8080}` in strings) are read with
pyhcl, the parser Bedrock itself used. pyhcl also reads files whose strings hold `\\n`, `\\t` or
`\\u` escapes, or heredocs: python-hcl2 resolves those, while Bedrock passed them to bash as
written. Both parsers' output goes through one normaliser, so a file yields the same `Spec`
whichever parser read it. Strings are never interpolated: `${X}` reaches bash unchanged.

Neither parser reports where a key was written (python-hcl2 8.1's `with_meta` is inert), so a small
tokenizer of our own (`_Locator`) maps every key path to its line and column in the source text.
It works the same for both parsers and never fails: on text it does not understand it simply
knows fewer positions.

Decisions on the legacy forms found in real files (the corpus in `../shared/bedrock-hcl-corpus`):

- No `version`: a warning; the file is read as version "1.0". `Spec.version` is None.
- `version = "1.1"` (one real file, reverted upstream the next day): a warning, read as "1.0".
  Any other version is an error.
- A stanza holding image/install/script directly (2019) is one step named after the stanza.
- `script = ["python3 train.py"]` (2019): a warning; each string runs as a shell command.
- `gpu = 1`, `cpu = 2`, `limit = "1"`, numeric parameters: coerced, no warning.
- `parameters`/`secrets` inside a step: a warning; merged into the stanza's, which every step of
  the stanza sees (a stanza-level value wins over a step-level one).
- `secrets { NAME = "" }`: a warning; the keys are the secret names, the values are ignored.
- `features { }` and `spark { }`: a warning; ignored.
- Unknown keys anywhere: a warning naming the key, never silently dropped.
- A key set twice in one block, or a stanza written twice: an error (the parsers disagree on
  what it means).
"""

from __future__ import annotations

import bisect
import math
import re
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import hcl  # pyhcl
import hcl2

from bedrock.envconfig import SIZE_UNITS, format_size
from bedrock.pipelines import environment, speclimits
from bedrock.pipelines.speclimits import SpecLimits

__all__ = [
    "Problem",
    "Resources",
    "Spec",
    "SpecError",
    "Stanza",
    "Step",
    "check",
    "load",
    "load_file",
]

SUPPORTED_VERSION = "1.0"
# The one other version seen in a real file; it was reverted upstream, so it is read as 1.0.
TOLERATED_VERSIONS = ("1.1",)
PIPELINE_STANZAS = ("train", "batch_score")
STANZAS = (*PIPELINE_STANZAS, "serve")
STEP_NAME_PATTERN = re.compile(r"^[a-z0-9A-Z]([A-Za-z0-9\-\_\.]*[a-z0-9A-Z])?$")
STEP_NAME_MAX_LENGTH = 512
# What install and script may hold together: Linux's 128 KiB for one argument, less room for the
# executors' wrappers around the command.
MAX_COMMAND_BYTES = 120 * 1024
_ENV_NAME = environment.ENVIRONMENT_NAME  # the one rule, beside the names refused
_CPU = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)(m?)$")
# Kubernetes quantity suffixes, which Bedrock passed through to its pods.
_MEMORY_UNITS = SIZE_UNITS
_MEMORY = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)(k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
_HCL2_OPTIONS = hcl2.SerializationOptions(
    strip_string_quotes=True,
    explicit_blocks=False,
    with_comments=False,
    # pyhcl expands 1e3 to 1000.0; python-hcl2 would otherwise give the string "${1e3}".
    preserve_scientific_notation=False,
)

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


def load(text: str, *, filename: str = "bedrock.hcl") -> Spec:
    """Read bedrock.hcl text. Raises `SpecError` listing every error (and warning) found."""
    return _load_with(text, filename=filename)


def load_file(path: str | Path) -> Spec:
    """`load` on a file. OSError when it cannot be read; SpecError when it is not UTF-8."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        message = f"the file is not UTF-8 text (byte {exc.start}: {exc.reason})"
        raise SpecError([_problem("", message)], filename=str(path)) from exc
    return load(text, filename=str(path))


def check(text: str, *, filename: str = "bedrock.hcl") -> list[Problem]:
    """Every error and warning in the text, in file order. Never raises."""
    try:
        return list(load(text, filename=filename).warnings)
    except SpecError as exc:
        return exc.problems


def _load_with(text: str, *, filename: str = "bedrock.hcl", parser: str | None = None) -> Spec:
    """`load`, optionally forcing one parser ("hcl2" or "pyhcl"); tests compare the two."""
    if text.startswith("\ufeff"):
        text = text[1:]
    if not text.strip():
        raise SpecError(
            [_problem("", "the file is empty: expected a train, batch_score or serve stanza")],
            filename=filename,
        )
    limits = speclimits.current()
    if overrun := _over_limits(text, limits):
        raise SpecError([overrun], filename=filename)
    locator = _Locator(text)
    data, used, syntax_error = _parse(text, locator, parser)
    if syntax_error is not None:
        raise SpecError([syntax_error], filename=filename)
    normaliser = _Normaliser(locator, limits)
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
        return _problem("", overrun.message)
    line = text.count("\n", 0, overrun.offset) + 1
    column = overrun.offset - (text.rfind("\n", 0, overrun.offset) + 1) + 1
    return _problem("", overrun.message, line, column)


def _problem(
    path: str, message: str, line: int | None = None, column: int | None = None
) -> Problem:
    return Problem(path=path, message=message, line=line, column=column)


# --------------------------------------------------------------------------------------------
# Parsing


def _parse(text: str, locator: _Locator, forced: str | None) -> tuple[Any, str, Problem | None]:
    """(data, parser used, None) or (None, "", the syntax error to report)."""
    if forced is not None:
        attempts = [forced]
    elif locator.pyhcl_semantics_differ:
        # python-hcl2 resolves \n, \t and \u escapes and re-indents heredocs; Bedrock (pyhcl)
        # passed those to bash as written, so pyhcl reads such files.
        attempts = ["pyhcl", "hcl2"]
    else:
        attempts = ["hcl2", "pyhcl"]
    failures: dict[str, _SyntaxFailure] = {}
    for name in attempts:
        try:
            if name == "hcl2":
                data = hcl2.loads(text, serialization_options=_HCL2_OPTIONS)
            else:
                data = hcl.loads(text)
        except Exception as exc:
            failures[name] = (
                _hcl2_failure(exc, locator)
                if name == "hcl2"
                else _pyhcl_failure(exc, text, locator)
            )
            continue
        return data, name, None
    chosen = _choose_failure(failures)
    if locator.multiline_string is not None:
        # Both parsers read on past a missing quote and stumble somewhere later; the string
        # that runs over a line break is the likelier culprit.
        line, column = locator.position(locator.multiline_string)
        if chosen.line is None or (line, column) <= (chosen.line, chosen.column or 0):
            message = (
                'syntax error: a string runs past the end of its line: is its closing " missing?'
            )
            return None, "", _problem("", message, line, column)
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
                _problem(
                    _render(path),
                    f'syntax error: {text_value} must be quoted: {path[-1]} = "{text_value}"',
                    line,
                    column,
                ),
            )
    return None, "", _problem("", f"syntax error: {chosen.message}", chosen.line, chosen.column)


@dataclass(frozen=True)
class _SyntaxFailure:
    line: int | None
    column: int | None
    message: str
    at_end: bool = False  # the parser only noticed at the end of the file


def _choose_failure(failures: dict[str, _SyntaxFailure]) -> _SyntaxFailure:
    """The more helpful of the two parsers' errors.

    python-hcl2's positions are precise, so it wins unless pyhcl read further: then python-hcl2
    stopped at an HCL 1 form that pyhcl accepts, and pyhcl's error is the real one.
    """
    mine = failures.get("hcl2")
    theirs = failures.get("pyhcl")
    if mine is None or theirs is None:
        return mine or theirs  # type: ignore[return-value]
    if theirs.line is None or theirs.at_end:
        return mine if mine.line is not None else theirs
    if mine.line is None or (theirs.line, theirs.column or 0) > (mine.line, mine.column or 0):
        return theirs
    return mine


# Token names of both grammars, as a user would write them.
_TOKEN_WORDS = {
    "RBRACE": '"}"',
    "LBRACE": '"{"',
    "RSQB": '"]"',
    "LSQB": '"["',
    "EQ": '"="',
    "COLON": '":"',
    "COMMA": '","',
    "DBLQUOTE": "a string",
    "NAME": "a name",
    "RIGHTBRACE": '"}"',
    "LEFTBRACE": '"{"',
    "RIGHTBRACKET": '"]"',
    "LEFTBRACKET": '"["',
    "EQUAL": '"="',
    "IDENTIFIER": "a name",
    "STRING": "a string",
    "$END": "the end of the file",
    "$end": "the end of the file",
}
_VALUE_STARTS = {"DBLQUOTE", "INT_LITERAL", "FLOAT_LITERAL", "LSQB", "LBRACE", "NAME"}


def _expected_words(expected: set[str] | list[str]) -> str:
    names = set(expected)
    wants_value = len(names & _VALUE_STARTS) >= 3 or {"BOOL", "NUMBER", "FLOAT"} <= names
    if wants_value and not names & {"RBRACE", "RSQB", "RIGHTBRACE", "RIGHTBRACKET", "EQ", "EQUAL"}:
        return "a value"
    words = sorted({_TOKEN_WORDS[name] for name in names if name in _TOKEN_WORDS})
    return " or ".join(words) if words else ""


def _hcl2_failure(exc: Exception, locator: _Locator) -> _SyntaxFailure:
    line = getattr(exc, "line", None)
    column = getattr(exc, "column", None)
    if not isinstance(line, int) or line < 1:
        return _SyntaxFailure(None, None, str(exc).splitlines()[0] if str(exc) else repr(exc))
    token = getattr(exc, "token", None)
    expected = getattr(exc, "expected", None) or getattr(exc, "allowed", None) or set()
    if token is not None and token.type == "$END":
        if "DBLQUOTE" in expected and "STRING_CHARS" in expected:
            return _SyntaxFailure(line, column, 'a string is not closed: the " is missing')
        message = "the file ends too early"
        if locator.unclosed_brace is not None:
            brace_line, brace_column = locator.unclosed_brace
            message += f": the {{ at line {brace_line}, column {brace_column} is never closed"
            return _SyntaxFailure(line, column, message)
    elif token is not None:
        shown = str(token.value).strip().split("\n")[0][:30] or str(token.value)[:30]
        message = f"unexpected {shown!r}"
    else:
        char = getattr(exc, "char", "")
        message = f"unexpected {char!r}" if char else "unexpected text"
    wanted = _expected_words(expected)
    if wanted:
        message += f"; expected {wanted}"
    return _SyntaxFailure(line, column, message)


_PYHCL_LEXER_ERROR = re.compile(r"Line (\d+), column (\d+), index (\d+): (.*)", re.S)
_PYHCL_PARSER_ERROR = re.compile(r"Line (\d+), column (\d+): unexpected (\w+)(?:; expected (.*))?")


def _pyhcl_failure(exc: Exception, text: str, locator: _Locator) -> _SyntaxFailure:
    message = str(exc)
    match = _PYHCL_LEXER_ERROR.match(message)
    if match:
        index, detail = int(match.group(3)), match.group(4)
        if detail.startswith("EOF before closing"):
            # The lexer ran to the end of the file looking for the quote; the string opened earlier.
            start = locator.unclosed_string
            if start is not None:
                return _SyntaxFailure(start[0], start[1], "a string is never closed")
            line, column = locator.position(len(text))
            return _SyntaxFailure(line, column, "a string is never closed", at_end=True)
        line, column = locator.position(index)
        return _SyntaxFailure(line, column, detail.replace("Illegal character", "unexpected"))
    match = _PYHCL_PARSER_ERROR.match(message)
    if match:
        # pyhcl reports the token's offset in the file as its "column".
        line, column = locator.position(int(match.group(2)))
        found = text[int(match.group(2)) :].split(None, 1)
        shown = found[0][:30] if found else match.group(3)
        result = f"unexpected {shown!r}"
        wanted = _expected_words([name.strip() for name in (match.group(4) or "").split(",")])
        if wanted:
            result += f"; expected {wanted}"
        return _SyntaxFailure(line, column, result)
    if message.startswith("Unexpected end of file"):
        line, column = locator.position(len(text))
        hint = locator.unclosed_brace
        detail = "the file ends too early"
        if hint is not None:
            detail += f": the {{ at line {hint[0]}, column {hint[1]} is never closed"
        return _SyntaxFailure(line, column, detail, at_end=True)
    return _SyntaxFailure(None, None, message.splitlines()[0] if message else repr(exc))


# --------------------------------------------------------------------------------------------
# Locating keys in the source text


@dataclass(frozen=True)
class _Token:
    kind: str  # "name" | "string" | "number" | "heredoc" | "punct" | "other"
    text: str  # a string's value (pyhcl's reading), else the source text
    pos: int
    end: int


@dataclass(frozen=True)
class _Entry:
    """Where one key (or list item) was written: its own position and its value's."""

    serial: int
    parent: int
    kind: str  # "attr" | "block" | "item"
    pos: int
    value_pos: int


_NAME_START = re.compile(r"[^\W\d]")
_NAME = re.compile(r"[^\W\d][\w.\-]*")
_NUMBER = re.compile(r"-?(?:0[xX][0-9a-fA-F]+|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+)")
_HEREDOC = re.compile(r"<<(-?)([A-Za-z_][\w-]*)\r?\n")
# Deeper nesting than any bedrock.hcl needs is skipped, not recursed into.
_MAX_DEPTH = 50


class _Locator:
    """Key path → positions in the source, from a tolerant tokenizer of HCL 1 and 2."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._line_starts = [0] + [m.end() for m in re.finditer(r"\n", text)]
        self.entries: dict[KeyPath, list[_Entry]] = {}
        self.pyhcl_semantics_differ = False
        self.unclosed_string: tuple[int, int] | None = None
        self.unclosed_brace: tuple[int, int] | None = None
        self.multiline_string: int | None = None  # offset of the first string with a line break
        # (key path, offset, text) of the first value like `1G`: a number glued to a name.
        self.unquoted_quantity: tuple[KeyPath, int, str] | None = None
        self._serial = 0
        self.tokens = self._tokenize(text)
        self._i = 0
        self._depth = 0
        self._open_braces: list[int] = []
        self._body((), None, 0)
        if self._open_braces:
            self.unclosed_brace = self.position(self._open_braces[-1])

    # positions --------------------------------------------------------------------------
    def position(self, pos: int) -> tuple[int, int]:
        line = bisect.bisect_right(self._line_starts, pos)
        return line, pos - self._line_starts[line - 1] + 1

    def occurrences(self, path: KeyPath) -> list[_Entry]:
        return self.entries.get(path, [])

    def find(
        self, path: KeyPath, *, value: bool = False, occurrence: int = 0
    ) -> tuple[int | None, int | None]:
        """Line and column of `path`, or of its nearest written ancestor when it is absent."""
        exact = self.entries.get(path)
        if exact:
            entry = exact[min(occurrence, len(exact) - 1)]
            return self.position(entry.value_pos if value else entry.pos)
        for cut in range(len(path) - 1, 0, -1):
            found = self.entries.get(path[:cut])
            if found:
                return self.position(found[0].pos)
        return None, None

    # tokenizer --------------------------------------------------------------------------
    def _tokenize(self, text: str) -> list[_Token]:
        tokens: list[_Token] = []
        i, n = 0, len(text)
        while i < n:
            char = text[i]
            if char in " \t\r\n\ufeff":
                i += 1
            elif char == "#" or text.startswith("//", i):
                end = text.find("\n", i)
                i = n if end < 0 else end + 1
            elif text.startswith("/*", i):
                end = text.find("*/", i + 2)
                i = n if end < 0 else end + 2
            elif char == '"':
                tokens.append(self._string(text, i))
                i = tokens[-1].end
            elif text.startswith("<<", i) and (match := _HEREDOC.match(text, i)):
                self.pyhcl_semantics_differ = True
                marker, end = match.group(2), match.end()
                closing = re.compile(rf"^[ \t]*{re.escape(marker)}[ \t]*\r?$", re.M)
                found = closing.search(text, end)
                stop = n if found is None else found.end()
                tokens.append(_Token("heredoc", text[end : found.start() if found else n], i, stop))
                i = stop
            elif char in "{}[]()=:,":
                tokens.append(_Token("punct", char, i, i + 1))
                i += 1
            elif (match := _NUMBER.match(text, i)) and not _NAME_START.match(text, i):
                tokens.append(_Token("number", match.group(), i, match.end()))
                i = match.end()
            elif match := _NAME.match(text, i):
                tokens.append(_Token("name", match.group(), i, match.end()))
                i = match.end()
            else:
                tokens.append(_Token("other", char, i, i + 1))
                i += 1
        return tokens

    def _string(self, text: str, start: int) -> _Token:
        """A quoted string read as pyhcl reads it: `\\"` and `\\\\` unescaped, the rest kept."""
        value: list[str] = []
        i, n = start + 1, len(text)
        while i < n:
            char = text[i]
            if char == "\\" and i + 1 < n:
                following = text[i + 1]
                if following in '"\\':
                    value.append(following)
                else:
                    if following in "ntru" or following == "U":
                        self.pyhcl_semantics_differ = True
                    value.append(char + following)
                i += 2
            elif char == "$" and text.startswith("${", i):
                depth, j = 0, i + 1
                while j < n:
                    if text[j] == "{":
                        depth += 1
                    elif text[j] == "}":
                        depth -= 1
                        if depth == 0:
                            break
                    j += 1
                value.append(text[i : j + 1])
                i = j + 1
            elif char == '"':
                if "\n" in text[start:i] and self.multiline_string is None:
                    self.multiline_string = start
                return _Token("string", "".join(value), start, i + 1)
            else:
                value.append(char)
                i += 1
        if self.unclosed_string is None:
            self.unclosed_string = self.position(start)
        if self.multiline_string is None and "\n" in text[start:]:
            self.multiline_string = start
        return _Token("string", "".join(value), start, n)

    # structure --------------------------------------------------------------------------
    def _peek(self) -> _Token | None:
        return self.tokens[self._i] if self._i < len(self.tokens) else None

    def _is(self, token: _Token | None, *chars: str) -> bool:
        return token is not None and token.kind == "punct" and token.text in chars

    def _record(self, path: KeyPath, kind: str, pos: int, value_pos: int, parent: int) -> int:
        self._serial += 1
        entry = _Entry(self._serial, parent, kind, pos, value_pos)
        self.entries.setdefault(path, []).append(entry)
        return self._serial

    def _body(self, path: KeyPath, closing: str | None, parent: int) -> None:
        while (token := self._peek()) is not None:
            if self._is(token, "}", "]"):
                self._i += 1
                if closing is not None and token.text == closing:
                    if self._open_braces:
                        self._open_braces.pop()
                    return
                continue
            if token.kind not in ("name", "string"):
                self._i += 1
                continue
            keys: list[_Token] = []
            while (token := self._peek()) is not None and token.kind in ("name", "string"):
                keys.append(token)
                self._i += 1
            following = self._peek()
            names = tuple(key.text for key in keys)
            if self._is(following, "=", ":"):
                self._i += 1
                value_token = self._peek()
                value_pos = value_token.pos if value_token else keys[-1].end
                serial = self._record(path + names, "attr", keys[0].pos, value_pos, parent)
                self._value(path + names, serial)
            elif self._is(following, "{") and self._depth >= _MAX_DEPTH:
                self._skip_nested()
            elif self._is(following, "{"):
                assert following is not None
                serial = parent
                for depth in range(1, len(names) + 1):
                    serial = self._record(
                        path + names[:depth], "block", keys[depth - 1].pos, following.pos, serial
                    )
                self._i += 1
                self._open_braces.append(following.pos)
                self._depth += 1
                self._body(path + names, "}", serial)
                self._depth -= 1

    def _value(self, path: KeyPath, parent: int) -> None:
        token = self._peek()
        if token is None or self._is(token, "}", "]", ",", ")"):
            return
        if self._is(token, "{", "[") and self._depth >= _MAX_DEPTH:
            self._skip_nested()
            return
        self._depth += 1
        try:
            self._nested_value(token, path, parent)
        finally:
            self._depth -= 1

    def _skip_nested(self) -> None:
        """Step over the bracketed value that starts at the current token."""
        depth = 0
        while (token := self._peek()) is not None:
            self._i += 1
            if self._is(token, "{", "["):
                depth += 1
            elif self._is(token, "}", "]"):
                depth -= 1
                if depth == 0:
                    return

    def _nested_value(self, token: _Token, path: KeyPath, parent: int) -> None:
        if self._is(token, "{"):
            self._i += 1
            self._open_braces.append(token.pos)
            self._body(path, "}", parent)
            return
        if self._is(token, "["):
            self._i += 1
            index = 0
            while (item := self._peek()) is not None:
                if self._is(item, "]"):
                    self._i += 1
                    return
                if self._is(item, "}"):
                    return  # an unclosed list: the enclosing block takes its brace
                if self._is(item, ","):
                    self._i += 1
                    continue
                serial = self._record((*path, index), "item", item.pos, item.pos, parent)
                before = self._i
                self._value((*path, index), serial)
                if self._i == before:
                    self._i += 1
                index += 1
            return
        self._i += 1
        glued = self._peek()
        if (
            token.kind == "number"
            and glued is not None
            and glued.kind == "name"
            and glued.pos == token.end
            and self.unquoted_quantity is None
        ):
            self.unquoted_quantity = (path, token.pos, token.text + glued.text)
        if token.kind == "other" and token.text == "-":
            self._i += 1
        if self._is(self._peek(), "("):
            depth = 0
            while (inner := self._peek()) is not None:
                self._i += 1
                if self._is(inner, "("):
                    depth += 1
                elif self._is(inner, ")"):
                    depth -= 1
                    if depth == 0:
                        break


# --------------------------------------------------------------------------------------------
# Normalising and validating


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


def _render(path: KeyPath) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


def _describe(value: Any) -> str:
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


def _scalar_text(value: Any) -> str | None:
    """A parameter-like value as the environment will see it; None for lists, blocks and null."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    return None


@dataclass
class _StepDraft:
    name: str
    path: KeyPath
    image: str
    install: tuple[str, ...]
    script: tuple[str, ...]
    resources: Resources
    depends_on: list[tuple[str, int]]
    retry_limit: int


_STEP_KEYS = ("image", "install", "script", "resources", "depends_on", "retry")
_STEP_EXTRA_KEYS = ("parameters", "secrets")
_STANZA_KEYS = ("step", "parameters", "secrets")
_LEGACY_STEP_KEYS = ("image", "install", "script", "resources", "retry")
_SERVE_STEP_KEYS = ("image", "install", "script", "resources")
_SERVE_KEYS = (*_SERVE_STEP_KEYS, "parameters", "secrets")


class _Normaliser:
    """Turns either parser's output into a `Spec`, collecting problems on the way."""

    def __init__(self, locator: _Locator, limits: SpecLimits | None = None) -> None:
        self.loc = locator
        self.limits = limits or SpecLimits()
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
        self._problems.append(Problem(_render(path), message, line, column, severity))

    def problems(self) -> list[Problem]:
        unique = list(dict.fromkeys(self._problems))
        return sorted(unique, key=lambda p: (p.line or 0, p.column or 0))

    # shapes -----------------------------------------------------------------------------
    def _block(self, value: Any, path: KeyPath, example: str) -> dict | None:
        """A block or map body. python-hcl2 gives a block as a one-item list of dicts."""
        if isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
            if len(value) > 1:
                self._duplicate(path)
            return value[0]
        if isinstance(value, dict):
            return value
        self.error(path, f"expected a block, e.g. {example}; found {_describe(value)}", value=True)
        return None

    def _duplicate(self, path: KeyPath) -> None:
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

    def _strings(self, value: Any, path: KeyPath, example: str) -> tuple[str, ...] | None:
        if not isinstance(value, list):
            self.error(
                path,
                f"expected a list of strings, e.g. {example}; found {_describe(value)}",
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
                    f"expected a string; found {_describe(item)}",
                    value=True,
                )
        return tuple(result) if len(result) == len(value) else None

    def _string_map(self, value: Any, path: KeyPath, example: str) -> dict[str, str]:
        body = self._block(value, path, example)
        result: dict[str, str] = {}
        for key, item in (body or {}).items():
            text = _scalar_text(item)
            if text is None:
                self.error(
                    (*path, key),
                    f"expected a string or number; found {_describe(item)}",
                    value=True,
                )
            else:
                result[str(key)] = text
        return result

    # top level --------------------------------------------------------------------------
    def run(self, data: Any, parser: str) -> Spec | None:
        if not isinstance(data, dict):
            self.error((), "expected key = value settings and stanzas at the top level")
            return None
        for path, entries in self.loc.entries.items():
            self._check_repeated_attributes(path, entries)
        self._check_nul_byte()
        version = self._version(data)
        stanzas: dict[str, Stanza] = {}
        for key, value in data.items():
            path: KeyPath = (key,)
            if key in STANZAS and len(self.loc.occurrences(path)) > 1:
                # pyhcl merges repeated top-level blocks, python-hcl2 lists them: ask for one.
                self._duplicate(path)
            if key in PIPELINE_STANZAS:
                stanza = self._pipeline_stanza(key, value)
            elif key == "serve":
                stanza = self._serve(value)
            elif key == "features":
                self.warn(path, "the features stanza (2019) is no longer supported; it is ignored")
                continue
            elif key == "version":
                continue
            else:
                self.warn(
                    path,
                    f"unknown key {key!r} is ignored; expected version, train, batch_score "
                    "or serve",
                )
                continue
            if stanza is not None:
                stanzas[key] = stanza
        if not any(key in data for key in STANZAS):
            self.error((), "no train, batch_score or serve stanza: the file defines nothing to run")
        if any(problem.is_error for problem in self._problems):
            return None
        return Spec(
            version=version,
            stanzas=stanzas,
            warnings=tuple(self.problems()),
            parser=parser,
        )

    def _check_repeated_attributes(self, path: KeyPath, entries: list[_Entry]) -> None:
        """A key set twice in one block: python-hcl2 keeps the last, pyhcl makes a list of both."""
        seen: dict[int, _Entry] = {}
        for index, entry in enumerate(entries):
            if entry.kind != "attr":
                continue
            if entry.parent in seen:
                first_line = self.loc.position(seen[entry.parent].pos)[0]
                self.error(
                    path,
                    f"{path[-1]} is set more than once in the same block (also at line "
                    f"{first_line}); keep one",
                    occurrence=index,
                )
            seen[entry.parent] = entry

    def _version(self, data: dict) -> str | None:
        if "version" not in data:
            self.warn(
                ("version",),
                f'no version: read as version "{SUPPORTED_VERSION}"; '
                f'add version = "{SUPPORTED_VERSION}" at the top',
            )
            return None
        value = data["version"]
        if isinstance(value, int | float) and not isinstance(value, bool):
            self.warn(("version",), f'version should be a string: version = "{value}"', value=True)
            value = str(value)
        if not isinstance(value, str):
            self.error(
                ("version",),
                f'version must be the string "{SUPPORTED_VERSION}"; found {_describe(value)}',
                value=True,
            )
            return None
        if value in TOLERATED_VERSIONS:
            self.warn(
                ("version",),
                f'version "{value}" was never a Bedrock file format; read as "{SUPPORTED_VERSION}"',
                value=True,
            )
        elif value != SUPPORTED_VERSION:
            self.error(
                ("version",),
                f'unsupported version "{value}": this Bedrock reads version "{SUPPORTED_VERSION}"',
                value=True,
            )
        return value

    # stanzas ----------------------------------------------------------------------------
    def _pipeline_stanza(self, name: str, value: Any) -> Stanza | None:
        path: KeyPath = (name,)
        body = self._block(value, path, f'{name} {{ step "{name}" {{ … }} }}')
        if body is None:
            return None
        for key in body:
            if key == "spark":
                self.warn(
                    (*path, key),
                    "the spark block (2019) is ignored; put Spark settings in a "
                    "spark-submit script item",
                )
            elif key not in _STANZA_KEYS and key not in _LEGACY_STEP_KEYS:
                self.warn(
                    (*path, key),
                    f"unknown key {key!r} in {name} is ignored; expected step, parameters "
                    "or secrets",
                )
        parameters = self._parameters(body, path)
        secrets = list(self._secrets(body, path))
        legacy = [key for key in _LEGACY_STEP_KEYS if key in body]
        drafts: list[_StepDraft] = []
        if "step" in body:
            for key in legacy:
                self.error(
                    (*path, key),
                    f"{key} belongs inside a step block: {name} has step blocks, so "
                    "stanza-level image/install/script are not used",
                )
            for step_name, step_body in self._step_bodies(body["step"], path):
                step_path = (*path, "step", step_name)
                drafts.append(self._step(step_name, step_body, step_path))
                secrets += self._merge_step_extras(step_body, step_path, path, parameters)
        elif legacy:
            # The 2019 single-step form: the stanza itself is the one step.
            only_step_keys = {key: body[key] for key in _LEGACY_STEP_KEYS if key in body}
            drafts.append(self._step(name, only_step_keys, path, check_keys=False))
        else:
            self.error(
                (*path, "step"),
                f'{name} has no steps: add step "name" {{ image = … script = [{{sh = [...]}}] }}',
            )
        self._check_step_count(name, drafts)
        self._check_command_lengths(drafts)
        # Steps with errors of their own still take part, so dependency errors show too.
        steps = self._order(name, drafts)
        if steps is None:
            return None
        return Stanza(
            name=name,
            steps=steps,
            parameters=parameters,
            secrets=tuple(dict.fromkeys(secrets)),
        )

    def _serve(self, value: Any) -> Stanza | None:
        path: KeyPath = ("serve",)
        body = self._block(value, path, "serve { image = … script = [{sh = [...]}] }")
        if body is None:
            return None
        for key in body:
            if key not in _SERVE_KEYS:
                hint = " (serve takes image/install/script directly)" if key == "step" else ""
                self.warn((*path, key), f"unknown key {key!r} in serve is ignored{hint}")
        parameters = self._parameters(body, path)
        secrets = self._secrets(body, path)
        only_step_keys = {key: body[key] for key in _SERVE_STEP_KEYS if key in body}
        draft = self._step("serve", only_step_keys, path, check_keys=False, serve=True)
        step = Step(
            name="serve",
            image=draft.image,
            install=draft.install,
            script=draft.script,
            resources=draft.resources,
            depends_on=(),
            retry_limit=0,
        )
        return Stanza(name="serve", steps=(step,), parameters=parameters, secrets=secrets)

    def _parameters(self, body: dict, path: KeyPath) -> dict[str, str]:
        if "parameters" not in body:
            return {}
        where = (*path, "parameters")
        result = self._string_map(body["parameters"], where, 'parameters { ALPHA = "0.5" }')
        for key in result:
            if not _ENV_NAME.fullmatch(key):
                # An error, not a warning: Docker and Nomad would pass "PATH=x" = "1" on as
                # PATH=x=1, which sets PATH.
                self.error(
                    (*where, key),
                    f"parameter {key!r} is not a valid environment variable name (letters, "
                    "digits and _, not starting with a digit)",
                )
            self._check_environment((*where, key), key, result[key], "parameter")
        return result

    def _secrets(self, body: dict, path: KeyPath) -> tuple[str, ...]:
        if "secrets" not in body:
            return ()
        where = (*path, "secrets")
        value = body["secrets"]
        names: list[str] = []
        is_list = True
        if isinstance(value, dict) or (
            isinstance(value, list) and value and all(isinstance(v, dict) for v in value)
        ):
            is_list = False
            mapping = self._block(value, where, "") or {}
            self.warn(
                where,
                "secrets as a block is not Bedrock's form: its keys are read as secret names; "
                'write secrets = ["NAME", …]',
            )
            for key, secret in mapping.items():
                if secret not in ("", None):
                    self.warn(
                        (*where, key),
                        "a secret value written in the file is ignored; set the value in "
                        "Bedrock, and remove it from the repository",
                    )
                names.append(str(key))
        else:
            found = self._strings(value, where, 'secrets = ["DB_PASSWORD"]')
            names = list(found or ())
        unique = list(dict.fromkeys(names))
        if len(unique) != len(names):
            self.warn(where, "a secret is listed more than once")
        for name in unique:
            if not _ENV_NAME.fullmatch(name):
                self.error(
                    where,
                    f"secret {name!r} is not a valid environment variable name (letters, "
                    "digits and _, not starting with a digit)",
                )
            # Point at the name itself: the list item, or the block's key.
            key: str | int = names.index(name) if is_list else name
            self._check_environment((*where, key), name, "", "secret")
        return tuple(unique)

    def _check_nul_byte(self) -> None:
        """A NUL byte cannot reach bash (its argv) nor a step's environment: refuse the file
        now rather than fail the step when it starts."""
        offset = self.loc.text.find("\0")
        if offset >= 0:
            line, column = self.loc.position(offset)
            message = "the file holds a NUL byte (\\0), which no command or variable can carry"
            self._problems.append(Problem("", message + "; remove it", line, column, "error"))

    def _check_environment(self, path: KeyPath, name: str, value: str, kind: str) -> None:
        """Names a loader, shell or interpreter acts on, and NUL bytes, never reach a step
        (the one list is `bedrock.pipelines.environment`)."""
        if reason := environment.refused_environment_name(name, kind=kind):
            self.error(path, reason)
        for what, text in (("name", name), ("value", value)):
            if problem := environment.nul_byte_problem(text, f"the {kind}'s {what}"):
                self.error(path, problem, value=what == "value")

    def _merge_step_extras(
        self,
        step_body: dict,
        step_path: KeyPath,
        stanza_path: KeyPath,
        parameters: dict[str, str],
    ) -> tuple[str, ...]:
        """Step-level parameters/secrets (seen once, in 2021): kept, but stanza-wide.

        Adds the step's parameters to `parameters` and returns the step's secret names.
        """
        stanza = _render(stanza_path)
        if "parameters" in step_body:
            self.warn(
                (*step_path, "parameters"),
                f"parameters inside a step are not Bedrock's form; they are merged into "
                f"{stanza}.parameters, which every step of {stanza} sees",
            )
            for key, text in self._parameters(step_body, step_path).items():
                if key in parameters and parameters[key] != text:
                    self.warn(
                        (*step_path, "parameters", key),
                        f"{stanza}.parameters also sets {key}; that value is used",
                    )
                else:
                    parameters.setdefault(key, text)
        if "secrets" not in step_body:
            return ()
        self.warn(
            (*step_path, "secrets"),
            f"secrets inside a step are not Bedrock's form; they are merged into {stanza}.secrets",
        )
        return self._secrets(step_body, step_path)

    # steps ------------------------------------------------------------------------------
    def _step_bodies(self, value: Any, stanza_path: KeyPath) -> list[tuple[str, dict]]:
        """(name, body) for each well-formed step block in file order, whichever parser."""
        pairs: list[tuple[str, Any]] = []
        if isinstance(value, dict):
            pairs = list(value.items())  # pyhcl, one step (or several merged)
        elif isinstance(value, list) and all(isinstance(item, dict) for item in value):
            for item in value:
                pairs.extend(item.items())
        else:
            self.error(
                (*stanza_path, "step"),
                f'expected step blocks, e.g. step "train" {{ … }}; found {_describe(value)}',
                value=True,
            )
            return []
        result = []
        seen: dict[str, int] = {}
        for name, body in pairs:
            path = (*stanza_path, "step", name)
            if not isinstance(body, dict):
                self.error(
                    (*stanza_path, "step"),
                    'a step needs a name: step "name" { image = … script = … }',
                )
                continue
            occurrence = seen.get(name, 0)
            seen[name] = occurrence + 1
            if occurrence:
                first = self.loc.occurrences(path)
                where = f" (first at line {self.loc.position(first[0].pos)[0]})" if first else ""
                self.error(
                    path,
                    f"duplicate step name {name!r}{where}; step names must be unique in "
                    f"{_render(stanza_path)}",
                    occurrence=occurrence,
                )
                continue
            if len(name) > STEP_NAME_MAX_LENGTH:
                self.error(path, f"step name is longer than {STEP_NAME_MAX_LENGTH} characters")
            elif not STEP_NAME_PATTERN.match(name):
                self.error(
                    path,
                    f"bad step name {name!r}: use letters, digits, '-', '_' and '.', "
                    "starting and ending with a letter or digit",
                )
            result.append((name, body))
        return result

    def _step(
        self,
        name: str,
        body: dict,
        path: KeyPath,
        *,
        check_keys: bool = True,
        serve: bool = False,
    ) -> _StepDraft:
        if check_keys:
            for key in body:
                if key not in _STEP_KEYS and key not in _STEP_EXTRA_KEYS:
                    self.warn(
                        (*path, key),
                        f"unknown key {key!r} in step {name!r} is ignored; expected "
                        + ", ".join(_STEP_KEYS),
                    )
        image = body.get("image")
        if "image" not in body:
            self.error(
                (*path, "image"),
                'image is required: the Docker image the step runs in, e.g. image = "python:3.11"',
            )
        elif not isinstance(image, str) or not image.strip():
            self.error(
                (*path, "image"),
                f"image must be a Docker image name; found {_describe(image)}",
                value=True,
            )
        install: tuple[str, ...] = ()
        if "install" in body:
            install = (
                self._strings(
                    body["install"],
                    (*path, "install"),
                    'install = ["pip install -r requirements.txt"]',
                )
                or ()
            )
        script = self._script(body, path, allow_spark=not serve)
        resources = Resources()
        if "resources" in body:
            resources = self._resources(body["resources"], (*path, "resources"))
        depends_on: list[tuple[str, int]] = []
        retry_limit = 0
        if not serve:
            if "depends_on" in body:
                depends_on = self._depends_on(body["depends_on"], (*path, "depends_on"))
            if "retry" in body:
                retry_limit = self._retry(body["retry"], (*path, "retry"))
        return _StepDraft(
            name=name,
            path=path,
            image=str(image),
            install=install,
            script=script,
            resources=resources,
            depends_on=depends_on,
            retry_limit=retry_limit,
        )

    def _script(self, body: dict, path: KeyPath, *, allow_spark: bool) -> tuple[str, ...]:
        where = (*path, "script")
        if "script" not in body:
            self.error(
                where,
                'script is required: the commands to run, e.g. script = [{sh = ["python '
                'train.py"]}]',
            )
            return ()
        value = body["script"]
        if not isinstance(value, list):
            self.error(
                where,
                'script must be a list of commands, e.g. script = [{sh = ["python train.py"]}];'
                f" found {_describe(value)}",
                value=True,
            )
            return ()
        commands: list[str] = []
        plain = False
        for index, item in enumerate(value):
            item_path = (*where, index)
            if isinstance(item, str):
                plain = True
                commands.append(item)
            elif isinstance(item, dict):
                commands.extend(self._script_item(item, item_path, allow_spark=allow_spark))
            else:
                self.error(
                    item_path,
                    "a script item is {sh = [...]}"
                    + (" or {spark-submit { … }}" if allow_spark else "")
                    + f"; found {_describe(item)}",
                    value=True,
                )
        if plain:
            self.warn(
                where,
                "plain strings in script are the 2019 form; they run as shell commands. "
                'Write script = [{sh = ["…"]}]',
            )
        if not value:
            self.error(where, 'script has no commands; add e.g. {sh = ["python train.py"]}')
        return tuple(commands)

    def _script_item(self, item: dict, path: KeyPath, *, allow_spark: bool) -> list[str]:
        kinds = [key for key in item if key in ("sh", "spark-submit")]
        for key in item:
            if key not in ("sh", "spark-submit"):
                self.error(
                    (*path, key),
                    f"unknown script command {key!r}: expected sh"
                    + (" or spark-submit" if allow_spark else ""),
                )
        if not item:
            self.error(path, "an empty script item: expected {sh = [...]}", value=True)
        if len(kinds) > 1:
            self.error(path, "a script item holds one command, sh or spark-submit, not both")
            return []
        commands: list[str] = []
        if "sh" in item:
            found = self._strings(item["sh"], (*path, "sh"), 'sh = ["python train.py"]')
            commands.extend(found or ())
        if "spark-submit" in item:
            if not allow_spark:
                self.error((*path, "spark-submit"), "serve runs sh commands only, not spark-submit")
            else:
                rendered = self._spark_submit(item["spark-submit"], (*path, "spark-submit"))
                if rendered is not None:
                    commands.append(rendered)
        return commands

    def _spark_submit(self, value: Any, path: KeyPath) -> str | None:
        """`spark-submit --conf k=v … --key value script.py`, as Bedrock rendered it."""
        body = self._block(value, path, 'spark-submit { script = "train.py" conf { … } }')
        if body is None:
            return None
        for key in body:
            if key not in ("script", "conf", "settings"):
                self.warn(
                    (*path, key),
                    f"unknown key {key!r} in spark-submit is ignored; expected script, conf "
                    "or settings",
                )
        script = body.get("script")
        if not isinstance(script, str) or not script.strip():
            self.error(
                (*path, "script"),
                'spark-submit needs the Python file to run: script = "train.py"'
                + ("" if "script" not in body else f"; found {_describe(script)}"),
                value="script" in body,
            )
            return None
        conf = self._string_map(body.get("conf", {}), (*path, "conf"), 'conf { "k" = "v" }')
        settings = self._string_map(
            body.get("settings", {}), (*path, "settings"), 'settings { jars = "…" }'
        )
        parts = ["spark-submit"]
        parts += [f"--conf {key}={value}" for key, value in conf.items()]
        parts += [f"--{key} {value}" for key, value in settings.items()]
        parts.append(script)
        return " ".join(parts)

    def _resources(self, value: Any, path: KeyPath) -> Resources:
        body = self._block(value, path, 'resources { cpu = "0.5" memory = "1G" }')
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
        text = None if isinstance(value, bool) else _scalar_text(value)
        match = _CPU.match(text.strip()) if text is not None else None
        if match is None:
            self.error(
                path,
                'cpu must be a number of CPUs such as "0.5", "2" or "500m"; found '
                + _describe(value),
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
        text = None if isinstance(value, bool) else _scalar_text(value)
        match = _MEMORY.match(text.strip()) if text is not None else None
        if match is None:
            self.error(
                path,
                'memory must be a quantity such as "512M", "1G" or "1Gi" (units k M G T P E, '
                f"or Ki Mi Gi Ti Pi Ei); found {_describe(value)}",
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
                f'gpu must be a whole number of GPUs such as "1"; found {_describe(value)}',
                value=True,
            )
            return None, 0
        if not self._within(path, value, count, (self.limits.step_gpus, "GPUs", "STEP_GPUS")):
            return None, 0
        return str(value), count

    def _retry(self, value: Any, path: KeyPath) -> int:
        body = self._block(value, path, "retry { limit = 2 }")
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
                "limit must be a whole number of retries (0 or more); found " + _describe(limit),
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

    def _check_step_count(self, stanza: str, drafts: list[_StepDraft]) -> None:
        limit = self.limits.steps
        if len(drafts) > limit:
            self.error(
                drafts[limit].path,
                f"{stanza} has {len(drafts)} steps; at most {limit} are allowed in a stanza "
                "(BEDROCK_MAX_STEPS)",
            )

    def _check_command_lengths(self, drafts: list[_StepDraft]) -> None:
        # A step's install and script reach bash as one argument, and Linux starts no program
        # with an argument over 128 KiB (MAX_ARG_STRLEN): say so now, not at execution.
        for draft in drafts:
            size = sum(len(entry.encode()) + 8 for entry in (*draft.install, *draft.script))
            if size > MAX_COMMAND_BYTES:
                self.error(
                    (*draft.path, "script"),
                    f"step {draft.name!r} runs {size} bytes of commands; at most "
                    f"{MAX_COMMAND_BYTES} fit in the one argument Linux passes to bash: move "
                    "the long part into a script file in the repository",
                )

    def _depends_on(self, value: Any, path: KeyPath) -> list[tuple[str, int]]:
        names = self._strings(value, path, 'depends_on = ["preprocess"]')
        if names is None:
            return []
        result: list[tuple[str, int]] = []
        for index, name in enumerate(names):
            if any(name == seen for seen, _ in result):
                self.warn((*path, index), f"{name!r} is listed twice", value=True)
                continue
            result.append((name, index))
        return result

    def _order(self, stanza: str, drafts: list[_StepDraft]) -> tuple[Step, ...] | None:
        """The steps in dependency order, earliest in the file first among the ready ones."""
        by_name = {draft.name: draft for draft in drafts}
        ok = True
        for draft in drafts:
            for dependency, index in draft.depends_on:
                where = (*draft.path, "depends_on", index)
                if dependency == draft.name:
                    self.error(where, f"step {draft.name!r} depends on itself", value=True)
                    ok = False
                elif dependency not in by_name:
                    known = ", ".join(by_name) or "none"
                    self.error(
                        where,
                        f"depends on unknown step {dependency!r}; the steps in {stanza} are: "
                        f"{known}",
                        value=True,
                    )
                    ok = False
        if not ok:
            return None
        for cycle, draft, index in self._cycles(drafts, by_name):
            self.error(
                (*draft.path, "depends_on", index),
                "dependency cycle: " + " -> ".join(cycle),
                value=True,
            )
            ok = False
        if not ok:
            return None
        done: set[str] = set()
        ordered: list[_StepDraft] = []
        while len(ordered) < len(drafts):
            ready = next(
                draft
                for draft in drafts
                if draft.name not in done and all(dep in done for dep, _ in draft.depends_on)
            )
            ordered.append(ready)
            done.add(ready.name)
        return tuple(
            Step(
                name=draft.name,
                image=draft.image,
                install=draft.install,
                script=draft.script,
                resources=draft.resources,
                depends_on=tuple(dep for dep, _ in draft.depends_on),
                retry_limit=draft.retry_limit,
            )
            for draft in ordered
        )

    @staticmethod
    def _cycles(
        drafts: list[_StepDraft], by_name: dict[str, _StepDraft]
    ) -> list[tuple[list[str], _StepDraft, int]]:
        """Each cycle once, starting at its step earliest in the file, and where to report it."""
        found: list[tuple[list[str], _StepDraft, int]] = []
        covered: set[frozenset[str]] = set()
        position = {draft.name: index for index, draft in enumerate(drafts)}

        def walk(start: str) -> list[str] | None:
            """A path of dependencies from `start` back to itself, searched depth first."""
            trail = [start]
            pending = [iter(by_name[start].depends_on)]
            seen = {start}
            while pending:
                for dependency, _ in pending[-1]:
                    if dependency == start:
                        return [*trail, start]
                    # Steps before `start` in the file were searched already, from themselves.
                    if dependency in seen or position[dependency] < position[start]:
                        continue
                    seen.add(dependency)
                    trail.append(dependency)
                    pending.append(iter(by_name[dependency].depends_on))
                    break
                else:
                    pending.pop()
                    trail.pop()
            return None

        for draft in drafts:
            cycle = walk(draft.name)
            if cycle is None or frozenset(cycle) in covered:
                continue
            covered.add(frozenset(cycle))
            index = next(i for dep, i in draft.depends_on if dep == cycle[1])
            found.append((cycle, draft, index))
        return found
