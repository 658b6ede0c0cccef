"""Syntax errors: each parser's failure turned into a message a user can act on, and the
more helpful of the two chosen."""

from __future__ import annotations

import re
from dataclasses import dataclass

from bedrock.pipelines.spec.locate import Locator


@dataclass(frozen=True)
class SyntaxFailure:
    line: int | None
    column: int | None
    message: str
    at_end: bool = False  # the parser only noticed at the end of the file


def choose_failure(failures: dict[str, SyntaxFailure]) -> SyntaxFailure:
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


def hcl2_failure(exc: Exception, locator: Locator) -> SyntaxFailure:
    line = getattr(exc, "line", None)
    column = getattr(exc, "column", None)
    if not isinstance(line, int) or line < 1:
        return SyntaxFailure(None, None, str(exc).splitlines()[0] if str(exc) else repr(exc))
    token = getattr(exc, "token", None)
    expected = getattr(exc, "expected", None) or getattr(exc, "allowed", None) or set()
    if token is not None and token.type == "$END":
        if "DBLQUOTE" in expected and "STRING_CHARS" in expected:
            return SyntaxFailure(line, column, 'a string is not closed: the " is missing')
        message = "the file ends too early"
        if locator.unclosed_brace is not None:
            brace_line, brace_column = locator.unclosed_brace
            message += f": the {{ at line {brace_line}, column {brace_column} is never closed"
            return SyntaxFailure(line, column, message)
    elif token is not None:
        shown = str(token.value).strip().split("\n")[0][:30] or str(token.value)[:30]
        message = f"unexpected {shown!r}"
    else:
        char = getattr(exc, "char", "")
        message = f"unexpected {char!r}" if char else "unexpected text"
    wanted = _expected_words(expected)
    if wanted:
        message += f"; expected {wanted}"
    return SyntaxFailure(line, column, message)


_PYHCL_LEXER_ERROR = re.compile(r"Line (\d+), column (\d+), index (\d+): (.*)", re.S)
_PYHCL_PARSER_ERROR = re.compile(r"Line (\d+), column (\d+): unexpected (\w+)(?:; expected (.*))?")


def pyhcl_failure(exc: Exception, text: str, locator: Locator) -> SyntaxFailure:
    message = str(exc)
    match = _PYHCL_LEXER_ERROR.match(message)
    if match:
        index, detail = int(match.group(3)), match.group(4)
        if detail.startswith("EOF before closing"):
            # The lexer ran to the end of the file looking for the quote; the string opened earlier.
            start = locator.unclosed_string
            if start is not None:
                return SyntaxFailure(start[0], start[1], "a string is never closed")
            line, column = locator.position(len(text))
            return SyntaxFailure(line, column, "a string is never closed", at_end=True)
        line, column = locator.position(index)
        return SyntaxFailure(line, column, detail.replace("Illegal character", "unexpected"))
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
        return SyntaxFailure(line, column, result)
    if message.startswith("Unexpected end of file"):
        line, column = locator.position(len(text))
        hint = locator.unclosed_brace
        detail = "the file ends too early"
        if hint is not None:
            detail += f": the {{ at line {hint[0]}, column {hint[1]} is never closed"
        return SyntaxFailure(line, column, detail, at_end=True)
    return SyntaxFailure(None, None, message.splitlines()[0] if message else repr(exc))
