"""A step's log, written with its secrets masked.

What is masked: each secret's value, each line of a multi-line value (a PEM key's lines come one
by one), and the forms a step most often prints a value in by accident — base64 (standard and
URL-safe, padded or not, also wrapped at 76 columns as `base64` writes it, and the stretch that
does not depend on what surrounds the value), URL-encoded (`quote`, `quote_plus`), hex (lower
and upper case) and JSON-escaped.

Output arrives in chunks of any size (a Nomad log copy, a Docker stream), so a value may be split
across two writes. The writer therefore buffers to a line end and masks whole lines; a line that
grows past `MAX_PARTIAL_LINE` bytes without one is written up to the last bytes that might still
start a masked value.

What masking cannot do: a step that means to reveal a secret can transform it in countless ways
(reverse it, split it, encrypt it). Masking guards against accidents, not against a hostile step.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote, quote_plus

MASK = "********"
# Shorter pieces would mask ordinary text; secret_set refuses values under 4 characters, and
# values stored before that rule still mask from 3.
MIN_MASKED = 3
# A partial line is held at most this long before it is written (a progress bar, a binary dump).
MAX_PARTIAL_LINE = 64 * 1024
# `base64` (coreutils) wraps its output at 76 columns.
BASE64_LINE = 76


def _base64_forms(raw: bytes) -> set[bytes]:
    forms: set[bytes] = set()
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        alone = encode(raw)
        forms |= {alone, alone.rstrip(b"=")}
        forms |= {alone[i : i + BASE64_LINE] for i in range(0, len(alone), BASE64_LINE)}
        # Inside a longer text the value starts at byte offset 0, 1 or 2 of a 3-byte group; the
        # characters that encode only the value's own bits are the same whatever surrounds it.
        for offset in range(3):
            encoded = encode(b"\0" * offset + raw)
            first = -(-8 * offset // 6)  # the first character with no filler bits
            last = 8 * (offset + len(raw)) // 6  # past the last character of whole value bits
            forms.add(encoded[first:last])
    return forms


def masked_forms(value: str) -> set[bytes]:
    """Every byte string the log masks for one secret value."""
    raw = value.encode()
    forms = {raw, raw.hex().encode(), raw.hex().upper().encode()}
    quoted = {quote(value, safe=""), quote(value), quote_plus(value)}
    # Percent-escapes are case-insensitive: JavaScript and some clients write %2f for %2F.
    forms |= {form.encode() for text in quoted for form in (text, _lower_escapes(text))}
    # Inside a JSON document or a printed dict, quotes, backslashes and line breaks are escaped.
    forms |= {
        json.dumps(value)[1:-1].encode(),
        json.dumps(value, ensure_ascii=False)[1:-1].encode(),
    }
    forms |= _base64_forms(raw)
    forms |= {line.encode() for line in value.splitlines()}
    return {form for form in forms if len(form) >= MIN_MASKED}


def _lower_escapes(text: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda escape: escape.group().lower(), text)


def _pattern(forms: set[bytes]) -> re.Pattern[bytes] | None:
    """One pattern matching any form, the longest at a given position (so a secret containing
    another is masked whole). Written as a trie: a plain alternation of a few hundred forms
    tries each one at every byte of the output, several times slower."""
    if not forms:
        return None
    try:
        return re.compile(_trie_source(forms))
    except (RecursionError, re.error):
        ordered = sorted(forms, key=lambda form: (-len(form), form))
        return re.compile(b"|".join(re.escape(form) for form in ordered))


def _trie_source(forms: set[bytes]) -> bytes:
    root: dict = {}
    for form in forms:
        node = root
        for byte in form:
            node = node.setdefault(byte, {})
        node[None] = {}  # a form ends here
    return _node_source(root)


def _node_source(node: dict) -> bytes:
    source = b""
    # A chain of single bytes needs no group (and no recursion: forms can be long).
    while None not in node and len(node) == 1:
        ((byte, node),) = node.items()
        source += re.escape(bytes([byte]))
    branches = [
        re.escape(bytes([byte])) + _node_source(child)
        for byte, child in sorted((key, child) for key, child in node.items() if key is not None)
    ]
    if not branches:
        return source
    group = b"(?:" + b"|".join(branches) + b")"
    # Greedy: the longer form first, this one if none of those matches.
    return source + (group + b"?" if None in node else group)


def mask_text(text: str, values: list[str], mask: str = MASK) -> str:
    """``text`` with every form of every value in ``values`` replaced by ``mask``: the one masker,
    for a step's log and for Git's messages alike."""
    forms = set().union(*(masked_forms(value) for value in values if value))
    pattern = _pattern(forms)
    if pattern is None:
        return text
    return pattern.sub(mask.encode(), text.encode()).decode("utf-8", errors="replace")


class LogWriter:
    """Appends a step's output to its log, masking secret values on the way in.

    Safe to call from several threads (the output pump and the supervisor's own lines).
    """

    def __init__(
        self, path: Path, masked: list[str], observer: Callable[[str], None] | None = None
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Shown the masked text as it is written (marker lines: bedrock.tracking.markers).
        self.observer = observer
        self.handle = path.open("ab", buffering=0)
        forms = set().union(*(masked_forms(value) for value in masked if value))
        self.pattern = _pattern(forms)
        self.longest = max((len(form) for form in forms), default=0)
        self.lock = threading.Lock()
        # Output after the last line end written: it never holds a line end itself.
        self.pending = b""

    def write(self, data: bytes | str) -> None:
        chunk = data.encode() if isinstance(data, str) else data
        with self.lock:
            held = len(self.pending)
            self.pending += chunk
            self._flush(self._ready(held, chunk))

    def close(self) -> None:
        with self.lock:
            self._flush(len(self.pending))
            self.handle.close()

    def _ready(self, held: int, chunk: bytes) -> int:
        """How many pending bytes can be written: through the last line end, or, for a partial
        line past the bound, all but the bytes a masked value might still begin in. Only the
        new chunk can hold a line end, so only it is searched."""
        end = max(chunk.rfind(b"\n"), chunk.rfind(b"\r"))
        if end >= 0:
            return held + end + 1
        if len(self.pending) <= MAX_PARTIAL_LINE:
            return 0
        cut = len(self.pending) - max(self.longest - 1, 0)
        # Never cut inside a UTF-8 sequence: continuation bytes are 0b10xxxxxx.
        while 0 < cut < len(self.pending) and self.pending[cut] & 0xC0 == 0x80:
            cut -= 1
        return cut

    def _flush(self, cut: int) -> None:
        if cut <= 0:
            return
        out: list[bytes] = []
        position = 0
        if self.pattern is not None:
            for match in self.pattern.finditer(self.pending):
                if match.start() >= cut:
                    break
                out += [self.pending[position : match.start()], MASK.encode()]
                position = match.end()
                # A value that began before the cut is masked whole, so write through its end.
                cut = max(cut, position)
        out.append(self.pending[position:cut])
        self.pending = self.pending[cut:]
        text = b"".join(out).decode("utf-8", errors="replace")
        self.handle.write(text.encode())
        if self.observer is not None:
            self.observer(text)
