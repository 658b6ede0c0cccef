"""Following a task's log through Nomad's log API, across the rotation of its files.

A task's stdout and stderr are files ``alloc/logs/<task>.<stream>.<n>``: the client starts file
n + 1 once file n reaches the task's ``LogConfig.MaxFileSizeMB``, and deletes the oldest once there
are more than ``MaxFiles``. ``GET /v1/client/fs/logs/<alloc>?origin=start&offset=N`` counts N from
the start of the oldest file *still on disk*, so once a file has been deleted the same N points
further on, and a reader that kept its own byte count would skip what it had not read yet (after
about 200 MB with ten files of 20 MB).

So a cursor holds a place as Nomad's files name it, a file index and an offset in that file, read
from the frames of the framed (not plain) answer: each carries ``File`` and ``Data``, and the first
frame of an answer starts at its ``Offset`` less its length (Nomad's framer counts later frames'
offsets loosely, so only the first one is relied on, and bytes are counted after it). Before each
read the cursor turns its place into Nomad's offset from the sizes of the files it has read; when
the first frame shows that the oldest files have gone, it tries the next oldest file as the start
until the answer begins where it is. What was deleted before it could be read is said in the log,
never skipped silently.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field

# fetch(origin, offset): the framed answer of GET /v1/client/fs/logs for one task and stream.
Fetch = Callable[[str, int], bytes]
_DECODER = json.JSONDecoder()


@dataclass(frozen=True)
class Frame:
    index: int  # the n of <task>.<stream>.<n>
    start: int  # where the data begins in that file; exact for the first frame of an answer
    data: bytes


def frames(body: bytes) -> list[Frame]:
    """The data frames of a framed answer: JSON objects one after another, heartbeats left out."""
    text = body.decode("utf-8", errors="replace")
    out: list[Frame] = []
    position = 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position >= len(text):
            return out
        frame, position = _DECODER.raw_decode(text, position)
        data = base64.b64decode(frame.get("Data") or "")
        name = frame.get("File") or ""
        if data and name:
            index = int(name.rsplit(".", 1)[1])
            out.append(Frame(index, int(frame.get("Offset") or 0) - len(data), data))


@dataclass
class LogCursor:
    """Where a reader of one task's stream has got to (see the module docstring)."""

    index: int | None = None  # the file being read; None before the first data
    offset: int = 0  # bytes read of that file
    oldest: int = 0  # the oldest file believed to be on disk, where Nomad's offsets count from
    sizes: dict[int, int] = field(default_factory=dict)  # files read to their end
    searches: int = 0  # times the start of Nomad's offsets had moved (for tests and logs)

    def read(self, fetch: Fetch) -> tuple[bytes, str]:
        """What the stream holds past the cursor, and a note when part of it is lost for good."""
        if self.index is None:
            return self._take(frames(fetch("start", 0)), 0), ""
        for oldest in range(self.oldest, self.index + 1):
            # From the last byte read, when there is one: an answer that begins with it proves
            # the cursor and Nomad agree on where offsets count from (an empty answer, or one
            # from another place, proves they do not).
            back = 1 if self.offset else 0
            answer = frames(fetch("start", self._nomad_offset(oldest) - back))
            if answer and (answer[0].index, answer[0].start) == (self.index, self.offset - back):
                self.searches += oldest != self.oldest
                self.oldest = oldest
                return self._take(answer, back), ""
            if not answer and not back:
                return b"", ""
        return self._rotated_away(fetch)

    def _nomad_offset(self, oldest: int) -> int:
        """Our place as Nomad's offset, counting from ``oldest`` (sizes known up to our file)."""
        assert self.index is not None
        return sum(self.sizes.get(n, 0) for n in range(oldest, self.index)) + self.offset

    def _rotated_away(self, fetch: Fetch) -> tuple[bytes, str]:
        """Our file itself was deleted before we read its end: read on from the oldest left."""
        assert self.index is not None
        answer = frames(fetch("start", 0))
        if not answer or answer[0].index <= self.index:
            return b"", ""
        self.searches += 1
        self.index, self.offset, self.oldest = answer[0].index, 0, answer[0].index
        note = "part of this log was rotated away by Nomad before Bedrock could copy it"
        return self._take(answer, 0), note

    def _take(self, answer: list[Frame], skip: int) -> bytes:
        """Move the cursor past an answer that begins ``skip`` bytes before it (those are left)."""
        if self.index is None and answer:
            self.index = self.oldest = answer[0].index
            self.offset = answer[0].start
        data = bytearray()
        for frame in answer:
            if frame.index != self.index:  # the next file: read from its start
                assert self.index is not None
                self.sizes[self.index] = self.offset
                self.index, self.offset = frame.index, 0
            piece = frame.data[skip:]
            skip = 0
            self.offset += len(piece)
            data += piece
        return bytes(data)
