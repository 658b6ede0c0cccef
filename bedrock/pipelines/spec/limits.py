"""How much work one bedrock.hcl may ask of the server, and the cheap scan that enforces it.

Both parsers cost far more than the text's length suggests on hostile input (a 200 KB document
of nested lists or of 100,000 list items took seconds of CPU, python-hcl2's then pyhcl's), and
`validateConfig` is open to any signed-in user. So before either parser runs, one linear pass
over the text measures its size, its bracket depth and its token count; text over a limit is
refused with the limit named. After parsing, the normaliser holds the spec itself to the step,
retry and resource limits.

The limits are settings (``BEDROCK_MAX_CONFIG_*``, ``BEDROCK_MAX_STEPS``, ...) with defaults far
above what the 139 real files of the corpus need: the largest is 9 KB, the deepest nests 6
levels and the longest counts 840 tokens. Within the defaults, the worst inputs measured take
about 0.3 s of parser CPU.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bedrock.envconfig import describe_size, from_settings


@dataclass(frozen=True)
class SpecLimits:
    """The bounds :func:`scan` and the normaliser enforce; the defaults match settings.py's."""

    config_bytes: int = 256 << 10
    config_depth: int = 32
    config_tokens: int = 10_000
    steps: int = 100
    retries: int = 10
    step_cpus: int = 1024
    step_memory: int = 16 << 40
    step_gpus: int = 64


_SETTINGS = {
    "config_bytes": "BEDROCK_MAX_CONFIG_BYTES",
    "config_depth": "BEDROCK_MAX_CONFIG_DEPTH",
    "config_tokens": "BEDROCK_MAX_CONFIG_TOKENS",
    "steps": "BEDROCK_MAX_STEPS",
    "retries": "BEDROCK_MAX_RETRIES",
    "step_cpus": "BEDROCK_MAX_STEP_CPUS",
    "step_memory": "BEDROCK_MAX_STEP_MEMORY",
    "step_gpus": "BEDROCK_MAX_STEP_GPUS",
}


def current() -> SpecLimits:
    """The limits from Django's settings, or the defaults where Django is not configured."""
    return from_settings(SpecLimits, _SETTINGS)


@dataclass(frozen=True)
class Overrun:
    """Which limit the text exceeds, and the offset where it did (None: the whole text)."""

    message: str
    offset: int | None = None


# One lexeme per match: comments and whitespace are skipped, a string (escapes and `${…}` kept
# inside) is one lexeme, as is a name or number; every other character is a lexeme of its own.
# Each alternative consumes at least one character and none backtracks, so the scan is linear.
_LEXEME = re.compile(
    r"""
      (?P<space>[ \t\r\n\ufeff]+)
    | (?P<comment>\#[^\n]*|//[^\n]*|/\*.*?(?:\*/|\Z))
    | (?P<heredoc><<-?(?P<marker>[A-Za-z_][\w-]*)\r?\n)
    | (?P<string>"[^"\\]*(?:\\.[^"\\]*)*"?)
    | (?P<word>[\w.\-+]+)
    | (?P<open>[\[{(])
    | (?P<close>[\]})])
    | (?P<other>.)
    """,
    re.X | re.S,
)


def scan(text: str, limits: SpecLimits) -> Overrun | None:
    """The first limit ``text`` exceeds, before any parser sees it; None when it is within all."""
    # len() counts characters; UTF-8 needs up to 4 bytes each, so encode only when it may matter.
    if len(text) > limits.config_bytes or (
        len(text) * 4 > limits.config_bytes and len(text.encode()) > limits.config_bytes
    ):
        size = len(text.encode(errors="surrogatepass"))
        return Overrun(
            f"the file is {size} bytes; at most {describe_size(limits.config_bytes)} are read "
            "(BEDROCK_MAX_CONFIG_BYTES)"
        )
    depth = tokens = 0
    position, end = 0, len(text)
    while position < end:
        match = _LEXEME.match(text, position)
        assert match is not None  # the last alternative matches any character
        kind = match.lastgroup
        if kind == "marker":
            kind = "heredoc"
        position = match.end()
        if kind in ("space", "comment"):
            continue
        tokens += _weight(kind, match)
        if kind == "string" and "${" in match.group():
            # python-hcl2 parses what a ${…} holds as an expression: its brackets nest and its
            # lexemes count like any outside a string.
            inner_tokens, inner_depth = _interpolation_cost(match.group())
            tokens += inner_tokens
            if depth + inner_depth > limits.config_depth:
                return _too_deep(limits, match.start())
        if tokens > limits.config_tokens:
            return Overrun(
                f"the file has more than {limits.config_tokens} tokens (names, numbers and "
                "punctuation count 1, a string 3 and each ${…} in it 4 more, plus what it holds); "
                "the largest real "
                "bedrock.hcl files have under 1,000 (BEDROCK_MAX_CONFIG_TOKENS)",
                match.start(),
            )
        if kind == "heredoc":
            position = _heredoc_end(text, position, match.group("marker"))
        elif kind == "open":
            depth += 1
            if depth > limits.config_depth:
                return _too_deep(limits, match.start())
        elif kind == "close":
            depth = max(depth - 1, 0)
    return None


def _too_deep(limits: SpecLimits, offset: int) -> Overrun:
    return Overrun(
        f"brackets and braces nest deeper than {limits.config_depth} levels "
        "(BEDROCK_MAX_CONFIG_DEPTH)",
        offset,
    )


_INNER = re.compile(r"[\w.\-+]+|\s+|.", re.S)


def _interpolation_cost(string: str) -> tuple[int, int]:
    """The lexemes inside a string's ``${…}`` and how deep their brackets nest, in one pass."""
    tokens = deepest = 0
    start = string.find("${")
    while start != -1:
        position, depth, open_braces = start + 2, 0, 1
        while position < len(string) and open_braces:
            lexeme = _INNER.match(string, position)
            assert lexeme is not None  # "." matches any character
            position = lexeme.end()
            text = lexeme.group()
            if text.isspace():
                continue
            tokens += 1
            if text in "[({":
                depth += 1
                deepest = max(deepest, depth)
                open_braces += text == "{"
            elif text in "])}":
                depth = max(depth - 1, 0)
                open_braces -= text == "}"
        start = string.find("${", position)
    return tokens, deepest


def _weight(kind: str | None, match: re.Match[str]) -> int:
    """Tokens a lexeme costs the parsers: python-hcl2 reads a string as its quotes and body, and
    each ``${…}`` inside as a template of several tokens more."""
    if kind != "string":
        return 1
    return 3 + 4 * match.group().count("${")


def _heredoc_end(text: str, start: int, marker: str) -> int:
    """Where the heredoc whose body starts at ``start`` ends; an unclosed one runs to the end."""
    closing = re.compile(rf"^[ \t]*{re.escape(marker)}[ \t]*\r?$", re.M)
    found = closing.search(text, start)
    return len(text) if found is None else found.end()
