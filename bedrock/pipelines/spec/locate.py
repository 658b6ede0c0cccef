"""Where each key was written: a tolerant tokenizer of HCL 1 and 2 that maps key paths to
positions in the source text, for error messages.

Neither parser reports where a key was written (python-hcl2 8.1's `with_meta` is inert), so this
tokenizer works the same for both parsers and never fails: on text it does not understand it
simply knows fewer positions.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

from bedrock.pipelines.spec.model import KeyPath


@dataclass(frozen=True)
class _Token:
    kind: str  # "name" | "string" | "number" | "heredoc" | "punct" | "other"
    text: str  # a string's value (pyhcl's reading), else the source text
    pos: int
    end: int


@dataclass(frozen=True)
class Entry:
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


class Locator:
    """Key path → positions in the source, from a tolerant tokenizer of HCL 1 and 2."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._line_starts = [0] + [m.end() for m in re.finditer(r"\n", text)]
        self.entries: dict[KeyPath, list[Entry]] = {}
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

    def occurrences(self, path: KeyPath) -> list[Entry]:
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
        entry = Entry(self._serial, parent, kind, pos, value_pos)
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
