"""The artefact hooks of a Nomad step job: ``bedrock hook fetch`` and ``bedrock hook upload``.

They run in the hook image as the job's prestart and poststop tasks, beside the step's own image,
and share the allocation's data directory with it. They hold no Git or storage credential and open
no database: they talk to Bedrock's HTTP API with the run's own token, using the standard library
alone (this module imports nothing of Django).

Environment:

``BEDROCK_API_DOMAIN``
    Bedrock's base URL as the job reaches it, such as ``https://bedrock.example.com``.
``BEDROCK_API_TOKEN``
    The run's token (``bdrkrun_…``); sent only to that origin, never printed.
``BEDROCK_RUN_ID``, ``BEDROCK_RUN_STEP_NAME``
    The run's database id and the step's name.
``BEDROCK_RUN_STEP_ATTEMPT`` (required by ``upload``)
    The attempt the job runs; Bedrock refuses an upload from any attempt but the running one.
``BEDROCK_MODEL_VERSION_ID`` (optional)
    A model version that ``fetch`` unpacks into the artefact directory first.
``BEDROCK_HOOK_DEPENDENCIES`` (optional)
    Comma-separated step names whose stage archives ``fetch`` unpacks next, in that order, a
    later one overwriting an earlier one's files. A step that stored none (Bedrock answers 204)
    adds nothing; any other failure, a 404 included, fails the fetch.
``BEDROCK_HOOK_DIR`` (default ``/alloc/data``)
    ``fetch`` writes ``app/`` (the source at the run's commit), ``artefact/`` (always, writable by
    any user) and, last, the marker file ``fetched``. ``upload`` sends ``artefact/`` only when the
    main task wrote ``0`` to ``main.exit``.

Every request has a timeout and is tried three times when the connection fails or Bedrock answers
with a 5xx. Downloads follow redirects (signed storage URLs) without the token.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import shutil
import ssl
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urljoin, urlsplit

from bedrock.models.archive import ArchiveError, EmptyArtefactError, pack, unpack
from bedrock.runs.overlay import make_shared, overlay

__all__ = ["HookConfig", "HookError", "hook_fetch", "hook_upload"]

TOKEN_HEADER = "X-Bedrock-Access-Token"  # noqa: S105  (a header name)
FETCHED_MARKER = "fetched"
MAIN_EXIT = "main.exit"
ATTEMPTS = 3
BACKOFF_SECONDS = 1.0  # doubled after each failed attempt
TIMEOUT_SECONDS = 60.0  # for connecting and for each read or write on the socket
# How long Bedrock may take to answer once a request is sent: it checks the source out of Git
# before the first byte of a download, and unpacks and stores an upload before answering.
ANSWER_TIMEOUT_SECONDS = 900.0
MAX_REDIRECTS = 5
PROGRESS_EVERY_SECONDS = 10.0
# The hook tasks get little memory and CPU, and a container sees all of the node's cores: each
# worker of pack/unpack holds a few 2 MiB chunks.
ZIP_WORKERS = 2
_CHUNK = 1 << 20
_REDIRECTS = {301, 302, 303, 307, 308}

Say = Callable[[str], None]


class HookError(Exception):
    """The hook cannot do its work; the message says which request or file, and why."""


class _Retryable(HookError):
    """A failure another attempt may not meet: a lost connection, a timeout, a 5xx."""


@dataclass(frozen=True)
class HookConfig:
    """What a hook is told by its environment."""

    api: str
    token: str
    run_id: int
    step: str
    directory: Path
    model_version_id: int | None = None
    dependencies: tuple[str, ...] = ()
    attempt: int | None = None  # the step's attempt, which its upload names

    def __repr__(self) -> str:  # the token stays out of tracebacks and logs
        return (
            f"HookConfig(api={self.api!r}, run_id={self.run_id}, step={self.step!r}, "
            f"directory={str(self.directory)!r}, model_version_id={self.model_version_id}, "
            f"dependencies={self.dependencies!r}, attempt={self.attempt})"
        )

    __str__ = __repr__

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> HookConfig:
        def required(name: str) -> str:
            value = environ.get(name, "").strip()
            if not value:
                raise HookError(f"{name} is not set; the job must set it for the hook.")
            return value

        def number(name: str, value: str) -> int:
            try:
                return int(value)
            except ValueError:
                raise HookError(f"{name}={value!r} is not a number.") from None

        api = required("BEDROCK_API_DOMAIN").rstrip("/")
        parts = urlsplit(api)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise HookError(
                f"BEDROCK_API_DOMAIN={api!r} is not a URL such as https://bedrock.example.com."
            )
        model_version = environ.get("BEDROCK_MODEL_VERSION_ID", "").strip()
        attempt = environ.get("BEDROCK_RUN_STEP_ATTEMPT", "").strip()
        dependencies = environ.get("BEDROCK_HOOK_DEPENDENCIES", "")
        return cls(
            api=api,
            token=required("BEDROCK_API_TOKEN"),
            run_id=number("BEDROCK_RUN_ID", required("BEDROCK_RUN_ID")),
            step=required("BEDROCK_RUN_STEP_NAME"),
            directory=Path(environ.get("BEDROCK_HOOK_DIR", "").strip() or "/alloc/data"),
            model_version_id=(
                number("BEDROCK_MODEL_VERSION_ID", model_version) if model_version else None
            ),
            dependencies=tuple(name.strip() for name in dependencies.split(",") if name.strip()),
            attempt=number("BEDROCK_RUN_STEP_ATTEMPT", attempt) if attempt else None,
        )


def _size(count: int) -> str:
    return f"{count / (1 << 20):.1f} MiB" if count >= 1 << 20 else f"{count} bytes"


class _Progress:
    """Progress lines for one transfer: one every few seconds, and one at the end."""

    def __init__(self, say: Say, what: str) -> None:
        self.say = say
        self.what = what
        self.count = 0
        self.started = time.monotonic()
        self.last = self.started

    def add(self, count: int) -> None:
        self.count += count
        now = time.monotonic()
        if now - self.last >= PROGRESS_EVERY_SECONDS:
            self.last = now
            self.say(f"{self.what}: {_size(self.count)} so far ({now - self.started:.1f} s)")

    def done(self, extra: str = "") -> None:
        elapsed = time.monotonic() - self.started
        self.say(f"{self.what}: {_size(self.count)} in {elapsed:.1f} s{extra}")


def _error_text(response: http.client.HTTPResponse) -> str:
    """Bedrock's message from an error body ({"error"} or GraphQL's {"errors"}), if any."""
    try:
        body = json.loads(response.read(64 << 10) or b"{}")
    except (ValueError, OSError, http.client.HTTPException):
        return ""
    if isinstance(body, dict):
        if isinstance(body.get("error"), str):
            return body["error"]
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            return str(errors[0].get("message", ""))
    return ""


class ApiClient:
    """Requests to Bedrock with the run's token, and to the storage URLs it redirects to."""

    def __init__(self, api: str, token: str, say: Say) -> None:
        self.api = api
        self.origin = self._origin(api)
        self.token = token
        self.say = say

    @staticmethod
    def _origin(url: str) -> tuple[str, str, int]:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return parts.scheme, (parts.hostname or "").lower(), port

    def url(self, path: str) -> str:
        return self.api + path

    def _connect(self, url: str, timeout: float) -> http.client.HTTPConnection:
        parts = urlsplit(url)
        if parts.scheme == "https":
            return http.client.HTTPSConnection(
                parts.hostname, parts.port, timeout=timeout, context=ssl.create_default_context()
            )
        if parts.scheme == "http":
            return http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
        raise HookError(f"cannot follow a redirect to a {parts.scheme!r} URL ({parts.path})")

    def _headers(self, url: str) -> dict[str, str]:
        headers = {"User-Agent": "bedrock-hook", "Accept": "application/zip, application/json"}
        # Only Bedrock gets the token: a redirect to storage must not carry it.
        if self._origin(url) == self.origin:
            headers[TOKEN_HEADER] = self.token
        return headers

    def _retrying(self, attempt: Callable[[], object]) -> object:
        delay = BACKOFF_SECONDS
        for number in range(1, ATTEMPTS + 1):
            try:
                return attempt()
            except _Retryable as exc:
                if number == ATTEMPTS:
                    raise HookError(f"{exc} (gave up after {ATTEMPTS} attempts)") from None
                self.say(f"{exc}; trying again in {delay:.0f} s")
                time.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")

    # --- downloads -----------------------------------------------------------------------------

    def download(self, path: str, spool: BinaryIO, *, missing_ok: bool = False) -> dict | None:
        """GET ``path`` into ``spool``; return the response headers, or None for a 204 (nothing
        there) when ``missing_ok``. The body's length and, when Bedrock sends one, its SHA-256
        are checked."""
        return self._retrying(lambda: self._download_once(path, spool, missing_ok))

    def _download_once(self, path: str, spool: BinaryIO, missing_ok: bool) -> dict | None:
        spool.seek(0)
        spool.truncate()
        url = self.url(path)
        for _ in range(MAX_REDIRECTS + 1):
            shown = urlsplit(url).path  # never the query: a signed URL's signature lives there
            what = f"GET {shown}"
            connection = self._connect(url, TIMEOUT_SECONDS)
            try:
                try:
                    target = urlsplit(url)
                    request_path = target.path + (f"?{target.query}" if target.query else "")
                    connection.request("GET", request_path or "/", headers=self._headers(url))
                    # Kept: the connection drops its reference when the answer ends it.
                    sock = connection.sock
                    sock.settimeout(ANSWER_TIMEOUT_SECONDS)
                    response = connection.getresponse()
                    sock.settimeout(TIMEOUT_SECONDS)
                except (OSError, http.client.HTTPException) as exc:
                    raise _Retryable(f"{what} failed: {exc or type(exc).__name__}") from None
                if response.status in _REDIRECTS:
                    location = response.getheader("Location")
                    if not location:
                        raise HookError(f"{what} answered {response.status} without a Location")
                    url = urljoin(url, location)
                    continue
                if response.status == 204 and missing_ok:
                    return None  # Bedrock's word for "there is none"; a 404 is a failure
                if response.status != 200:
                    message = _error_text(response)
                    failure = f"{what} failed: HTTP {response.status}" + (
                        f": {message}" if message else ""
                    )
                    if response.status >= 500:
                        raise _Retryable(failure)
                    raise HookError(failure)
                headers = {key.lower(): value for key, value in response.getheaders()}
                self._receive(what, response, headers, spool)
                return headers
            finally:
                connection.close()
        raise HookError(f"GET {path} failed: more than {MAX_REDIRECTS} redirects")

    def _receive(
        self, what: str, response: http.client.HTTPResponse, headers: dict, spool: BinaryIO
    ) -> None:
        progress = _Progress(self.say, what)
        digest = hashlib.sha256()
        try:
            while chunk := response.read(_CHUNK):
                spool.write(chunk)
                digest.update(chunk)
                progress.add(len(chunk))
        except (OSError, http.client.HTTPException) as exc:
            raise _Retryable(
                f"{what} broke off after {_size(progress.count)}: {exc or type(exc).__name__}"
            ) from None
        expected_length = headers.get("content-length")
        if expected_length is not None and int(expected_length) != progress.count:
            raise _Retryable(
                f"{what} broke off: {progress.count} of {expected_length} bytes arrived"
            )
        expected_sha = headers.get("x-bedrock-sha256", "").lower()
        if expected_sha and digest.hexdigest() != expected_sha:
            raise _Retryable(
                f"{what}: the archive's SHA-256 is {digest.hexdigest()}, not the {expected_sha} "
                "Bedrock recorded"
            )
        spool.flush()
        progress.done()

    # --- uploads -------------------------------------------------------------------------------

    def upload(self, path: str, source: BinaryIO, size: int) -> dict:
        """PUT ``size`` bytes of ``source`` (a ZIP) to ``path``; return the JSON answer.

        The length is sent up front: Django cannot read a chunked request body.
        """
        return self._retrying(lambda: self._upload_once(path, source, size))

    def _upload_once(self, path: str, source: BinaryIO, size: int) -> dict:
        what = f"PUT {path}"
        url = self.url(path)
        connection = self._connect(url, TIMEOUT_SECONDS)
        progress = _Progress(self.say, what)
        try:
            try:
                source.seek(0)
                target = urlsplit(url)
                connection.putrequest(
                    "PUT", target.path + (f"?{target.query}" if target.query else "")
                )
                for key, value in self._headers(url).items():
                    connection.putheader(key, value)
                connection.putheader("Content-Type", "application/zip")
                connection.putheader("Content-Length", str(size))
                connection.endheaders()
                while chunk := source.read(_CHUNK):
                    connection.send(chunk)
                    progress.add(len(chunk))
                progress.done(", waiting for Bedrock to store it")
                if connection.sock is not None:
                    connection.sock.settimeout(ANSWER_TIMEOUT_SECONDS)
                response = connection.getresponse()
                body = response.read(1 << 20)
            except (OSError, http.client.HTTPException) as exc:
                raise _Retryable(f"{what} failed: {exc or type(exc).__name__}") from None
            if response.status != 201:
                try:
                    parsed = json.loads(body or b"{}")
                except ValueError:
                    parsed = {}
                message = parsed.get("error", "") if isinstance(parsed, dict) else ""
                if not message and isinstance(parsed, dict) and parsed.get("errors"):
                    message = str(parsed["errors"][0].get("message", ""))
                failure = f"{what} failed: HTTP {response.status}" + (
                    f": {message}" if message else ""
                )
                if response.status >= 500:
                    raise _Retryable(failure)
                raise HookError(failure)
            try:
                return json.loads(body)
            except ValueError:
                raise HookError(f"{what} answered 201 with a body that is not JSON") from None
        finally:
            connection.close()


# --- fetch ----------------------------------------------------------------------------------------


def _unpack(spool: BinaryIO, dest: Path, what: str) -> int:
    try:
        spool.seek(0)
        return unpack(spool, dest, workers=ZIP_WORKERS)
    except ArchiveError as exc:
        raise HookError(f"{what}: the archive cannot be unpacked: {exc}") from None


def _download_and_unpack(
    client: ApiClient, path: str, scratch: Path, dest: Path, *, missing_ok: bool = False
) -> tuple[int, dict] | None:
    with tempfile.TemporaryFile(dir=scratch, prefix="download-") as spool:
        headers = client.download(path, spool, missing_ok=missing_ok)
        if headers is None:
            return None
        return _unpack(spool, dest, f"GET {path}"), headers


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def hook_fetch(config: HookConfig, say: Say) -> None:
    """Write ``app/`` and ``artefact/`` under the hook directory, then the ``fetched`` marker.

    Safe to run again: whatever an earlier, interrupted fetch left is replaced.
    """
    client = ApiClient(config.api, config.token, say)
    root = config.directory
    root.mkdir(parents=True, exist_ok=True)
    (root / FETCHED_MARKER).unlink(missing_ok=True)
    # Scratch space inside the hook directory, so that finished trees move into place by rename.
    scratch = root / ".bedrock-fetch"
    _remove(scratch)
    scratch.mkdir()
    started = time.monotonic()
    try:
        source_path = f"/runs/{config.run_id}/source"
        count, headers = _download_and_unpack(client, source_path, scratch, scratch / "app")
        say(f"app: {count} files at commit {headers.get('x-bedrock-commit', '?')}")
        if skipped := headers.get("x-bedrock-skipped-links"):
            say(
                f"app: symbolic links left out (they leave the repository or name no file): "
                f"{skipped}"
            )

        artefact = scratch / "artefact"
        artefact.mkdir()
        if config.model_version_id is not None:
            path = f"/model-versions/{config.model_version_id}/download"
            count, _ = _download_and_unpack(client, path, scratch, scratch / "model")
            overlay(scratch / "model", artefact)
            say(f"artefact: {count} files of model version {config.model_version_id}")
        for number, step in enumerate(config.dependencies):
            path = f"/runs/{config.run_id}/steps/{step}/artefact"
            unpacked = scratch / f"step-{number}"
            fetched = _download_and_unpack(client, path, scratch, unpacked, missing_ok=True)
            if fetched is None:
                say(f"artefact: step {step!r} stored no artefact; nothing to add")
                continue
            overlay(unpacked, artefact)
            say(f"artefact: {fetched[0]} files of step {step!r}")

        for name in ("app", "artefact"):
            _remove(root / name)
            os.replace(scratch / name, root / name)
            # The step's image may run as any user; it must be able to write in both trees.
            make_shared(root / name)
    finally:
        _remove(scratch)
    marker = root / f".{FETCHED_MARKER}.tmp"
    marker.write_text(f"run {config.run_id} step {config.step}\n")
    os.replace(marker, root / FETCHED_MARKER)
    say(f"fetched into {root} in {time.monotonic() - started:.1f} s")


# --- upload ---------------------------------------------------------------------------------------


def _spool_directory() -> str | None:
    # Nomad's /alloc/tmp sits on the allocation's disk, sized for the job; the container's /tmp
    # may be small. TMPDIR, when set, wins.
    if os.environ.get("TMPDIR"):
        return None
    alloc_tmp = Path(os.environ.get("NOMAD_ALLOC_DIR", "/alloc")) / "tmp"
    return str(alloc_tmp) if alloc_tmp.is_dir() and os.access(alloc_tmp, os.W_OK) else None


def hook_upload(config: HookConfig, say: Say) -> bool:
    """Send ``artefact/`` as the step's stage archive if the main task exited 0; True if sent."""
    root = config.directory
    exit_file = root / MAIN_EXIT
    if not exit_file.is_file():
        say(
            f"{exit_file} is absent: the main task did not run to its end (the fetch failed, or "
            "the job was stopped); nothing uploaded"
        )
        return False
    code = exit_file.read_text(errors="replace").strip()
    if code != "0":
        say(f"the main task exited with {code or 'no code'!r} ({exit_file}); nothing uploaded")
        return False
    artefact = root / "artefact"
    if not artefact.is_dir():
        say(f"{artefact} is absent; nothing uploaded")
        return False
    if config.attempt is None:
        raise HookError("BEDROCK_RUN_STEP_ATTEMPT is not set; the job must set it for the upload.")
    client = ApiClient(config.api, config.token, say)
    with tempfile.TemporaryFile(prefix="bedrock-upload-", dir=_spool_directory()) as spool:
        started = time.monotonic()
        try:
            packed = pack(artefact, spool, workers=ZIP_WORKERS)
        except EmptyArtefactError:
            say(f"{artefact} holds no file; nothing uploaded")
            return False
        except ArchiveError as exc:
            raise HookError(f"cannot pack {artefact}: {exc}") from None
        say(
            f"packed {packed.file_count} files of {artefact} into {_size(packed.size)} in "
            f"{time.monotonic() - started:.1f} s"
        )
        spool.flush()
        path = f"/runs/{config.run_id}/steps/{config.step}/artefact?attempt={config.attempt}"
        stored = client.upload(path, spool, packed.size)
    with contextlib.suppress(AttributeError, TypeError, KeyError):
        say(
            f"stored {stored['fileCount']} files, {_size(stored['size'])}, sha256 "
            f"{stored['sha256']}"
        )
    return True
