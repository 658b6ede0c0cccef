"""A small package index on the loopback: PEP 691's JSON simple API, with PEP 700's upload
times where a test gives them, serving wheels it builds itself."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

JSON = "application/vnd.pypi.simple.v1+json"


@dataclass(frozen=True)
class Release:
    """One wheel of a project: ``uploaded`` is PEP 700's ``upload-time``, or None for none."""

    name: str
    version: str
    uploaded: str | None
    requires: tuple[str, ...] = ()

    @property
    def filename(self) -> str:
        return f"{self.name}-{self.version}-py3-none-any.whl"

    def wheel(self) -> bytes:
        """A wheel whose module ``<name>`` holds its ``VERSION``."""
        info = f"{self.name}-{self.version}.dist-info"
        metadata = f"Metadata-Version: 2.1\nName: {self.name}\nVersion: {self.version}\n"
        metadata += "".join(f"Requires-Dist: {requirement}\n" for requirement in self.requires)
        files = {
            f"{self.name}/__init__.py": f"VERSION = {self.version!r}\n",
            f"{info}/METADATA": metadata,
            f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\n"
            "Tag: py3-none-any\n",
        }
        record = "".join(f"{path},{_digest(text)},{len(text)}\n" for path, text in files.items())
        files[f"{info}/RECORD"] = record + f"{info}/RECORD,,\n"
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            for path, text in files.items():
                # A fixed time: the same bytes every time, so the index's hash stays right.
                archive.writestr(zipfile.ZipInfo(path, date_time=(2020, 1, 1, 0, 0, 0)), text)
        return buffer.getvalue()


def _digest(text: str) -> str:
    raw = hashlib.sha256(text.encode()).digest()
    return "sha256=" + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _handler(indexes: dict[str, list[Release]]) -> type[BaseHTTPRequestHandler]:
    wheels = {r.filename: r.wheel() for releases in indexes.values() for r in releases}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def _answer(self, body: bytes, content_type: str, *, head: bool = False) -> None:
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def _serve(self, *, head: bool) -> None:
            parts = self.path.strip("/").split("/")
            if len(parts) == 2 and parts[0] == "files" and parts[1] in wheels:
                return self._answer(wheels[parts[1]], "application/octet-stream", head=head)
            if len(parts) == 2 and parts[0] in indexes:
                releases = [r for r in indexes[parts[0]] if r.name == parts[1]]
                if releases:
                    return self._answer(_page(parts[1], releases), JSON, head=head)
            self.send_error(404)

        def do_GET(self) -> None:
            self._serve(head=False)

        def do_HEAD(self) -> None:
            self._serve(head=True)

    return Handler


def _page(name: str, releases: list[Release]) -> bytes:
    files = []
    for release in releases:
        entry: dict[str, object] = {
            "filename": release.filename,
            "url": f"/files/{release.filename}",
            "hashes": {"sha256": hashlib.sha256(release.wheel()).hexdigest()},
        }
        if release.uploaded:
            entry["upload-time"] = release.uploaded
        files.append(entry)
    page = {"meta": {"api-version": "1.1"}, "name": name, "files": files, "versions": []}
    page["versions"] = sorted({release.version for release in releases})
    return json.dumps(page).encode()


@contextlib.contextmanager
def serving(indexes: dict[str, list[Release]]) -> Iterator[str]:
    """Serve ``indexes`` (each at ``/<name>/<project>/``) on the loopback; yield the base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(indexes))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
