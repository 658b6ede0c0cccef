"""The artefact hooks of a Nomad step job: ``bedrock hook fetch`` and ``bedrock hook upload``.

They run in the hook image as the job's prestart and poststop tasks, beside the step's own image,
and share the allocation's data directory with it. They hold no Git or storage credential and open
no database: they talk to Bedrock's HTTP API with the run's own token, sent as
``Authorization: Bearer``, through ``requests`` (this module imports nothing of Django).

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
502, 503 or 504. Downloads follow redirects (signed storage URLs) without the token: requests drops
the Authorization header when a redirect leaves Bedrock's host, where it would forward a header of
Bedrock's own.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import ssl
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal, Self, overload
from urllib.parse import urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from bedrock.models.archive import ArchiveError, EmptyArtefactError, pack, unpack
from bedrock.runs.overlay import make_shared, overlay

__all__ = ["HookConfig", "HookError", "hook_fetch", "hook_upload"]

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
# Answers of a proxy or a Bedrock restarting: another attempt may meet a working one. A 500 is a
# bug another attempt would meet again.
RETRIED_STATUSES = (502, 503, 504)
# Both calls are idempotent: a download changes nothing, an upload replaces the step's stage.
RETRIED_METHODS = frozenset({"GET", "PUT"})

Say = Callable[[str], None]


class HookError(Exception):
    """The hook cannot do its work; the message says which request or file, and why."""


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


def _error_text(response: requests.Response | urllib3.BaseHTTPResponse) -> str:
    """Bedrock's message from an error body ({"error"} or GraphQL's {"errors"}), if any."""
    try:
        if isinstance(response, requests.Response):
            text = response.content[: 64 << 10]
        else:  # an answer about to be retried, its body still unread
            text = response.read(64 << 10, decode_content=True)
        body = json.loads(text or b"{}")
    except (ValueError, OSError, requests.RequestException, urllib3.exceptions.HTTPError):
        return ""
    if isinstance(body, dict):
        if isinstance(body.get("error"), str):
            return body["error"]
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            return str(errors[0].get("message", ""))
    return ""


def _shown(method: str, url: str) -> str:
    # Never the query: a signed storage URL's signature lives there.
    return f"{method} {urlsplit(url).path}"


class _SayingRetry(Retry):
    """urllib3's retry, saying before each new attempt what failed and how long it waits.

    The wait doubles from BACKOFF_SECONDS: urllib3's own backoff skips the wait before the second
    attempt, and a busy Bedrock deserves one."""

    say: Say = staticmethod(lambda text: None)

    def new(self, **kw: Any) -> Self:
        fresh = super().new(**kw)
        fresh.say = self.say
        return fresh

    def get_backoff_time(self) -> float:
        failures = len(self.history)
        return BACKOFF_SECONDS * 2 ** (failures - 1) if failures else 0.0

    def increment(
        self, method: str | None = None, url: str | None = None, *args: Any, **kwargs: Any
    ) -> Self:
        fresh = super().increment(method, url, *args, **kwargs)
        response = kwargs.get("response", args[0] if args else None)
        error = kwargs.get("error", args[1] if len(args) > 1 else None)
        failure = f"{_shown(method or '', url or '')} failed: "
        if response is not None:
            message = _error_text(response)
            failure += f"HTTP {response.status}" + (f": {message}" if message else "")
        else:
            failure += f"{error or type(error).__name__}"
        self.say(f"{failure}; trying again in {fresh.get_backoff_time():.0f} s")
        return fresh


class _Adapter(HTTPAdapter):
    """An adapter that trusts the system's certificate authorities, as the hook image's OpenSSL
    does (a company's CA installed there), besides the bundle requests brings."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["ssl_context"] = ssl.create_default_context()
        super().init_poolmanager(*args, **kwargs)


def _session(token: str, say: Say) -> requests.Session:
    retry = _SayingRetry(
        total=ATTEMPTS - 1,
        status_forcelist=RETRIED_STATUSES,
        allowed_methods=RETRIED_METHODS,
        raise_on_status=False,  # the last answer is reported with Bedrock's message
        respect_retry_after_header=False,
    )
    retry.say = say
    session = requests.Session()
    # No proxy, .netrc or CA bundle from the environment: the job's variables are the step's.
    session.trust_env = False
    session.max_redirects = MAX_REDIRECTS
    for scheme in ("http://", "https://"):
        session.mount(scheme, _Adapter(max_retries=retry))
    # requests drops Authorization when a redirect leaves Bedrock's host, so signed storage URLs
    # never see the token.
    session.headers.update(
        {
            "User-Agent": "bedrock-hook",
            "Accept": "application/zip, application/json",
            "Authorization": f"Bearer {token}",
        }
    )
    return session


def _attempts(response: requests.Response) -> str:
    retries = getattr(response.raw, "retries", None)
    failures = len(retries.history) if retries is not None else 0
    return f" (gave up after {failures + 1} attempts)" if failures else ""


class _BrokenOff(HookError):
    """A download whose body stopped short or does not match its SHA-256: worth another try."""


class ApiClient:
    """Requests to Bedrock with the run's token, and to the storage URLs it redirects to."""

    def __init__(self, api: str, token: str, say: Say) -> None:
        self.api = api
        self.say = say
        self.session = _session(token, say)

    def url(self, path: str) -> str:
        return self.api + path

    def _send(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        what = f"{method} {path}"
        try:
            return self.session.request(
                method,
                self.url(path),
                timeout=(TIMEOUT_SECONDS, ANSWER_TIMEOUT_SECONDS),
                **kwargs,
            )
        except requests.TooManyRedirects:
            raise HookError(f"{what} failed: more than {MAX_REDIRECTS} redirects") from None
        except requests.RequestException as exc:
            reason = exc.args[0] if exc.args else exc
            if isinstance(reason, urllib3.exceptions.MaxRetryError):
                reason = reason.reason or reason
                raise HookError(
                    f"{what} failed: {reason} (gave up after {ATTEMPTS} attempts)"
                ) from None
            raise HookError(f"{what} failed: {reason or type(exc).__name__}") from None

    # --- downloads -----------------------------------------------------------------------------

    def download(self, path: str, spool: BinaryIO, *, missing_ok: bool = False) -> dict | None:
        """GET ``path`` into ``spool``; return the response headers, or None for a 204 (nothing
        there) when ``missing_ok``. The body's length and, when Bedrock sends one, its SHA-256
        are checked, and a body that fails either is fetched again."""
        for number in range(1, ATTEMPTS + 1):
            try:
                return self._download_once(path, spool, missing_ok)
            except _BrokenOff as exc:
                if number == ATTEMPTS:
                    raise HookError(f"{exc} (gave up after {ATTEMPTS} attempts)") from None
                self.say(f"{exc}; trying again")
        raise AssertionError("unreachable")

    def _download_once(self, path: str, spool: BinaryIO, missing_ok: bool) -> dict | None:
        spool.seek(0)
        spool.truncate()
        what = f"GET {path}"
        with self._send("GET", path, stream=True) as response:
            if response.status_code == 204 and missing_ok:
                return None  # Bedrock's word for "there is none"; a 404 is a failure
            if response.status_code != 200:
                raise HookError(_failure(what, response) + _attempts(response))
            headers = {key.lower(): value for key, value in response.headers.items()}
            self._receive(_shown("GET", response.url), response, headers, spool)
            return headers

    def _receive(
        self, what: str, response: requests.Response, headers: dict, spool: BinaryIO
    ) -> None:
        progress = _Progress(self.say, what)
        digest = hashlib.sha256()
        try:
            for chunk in response.iter_content(_CHUNK):
                spool.write(chunk)
                digest.update(chunk)
                progress.add(len(chunk))
        except (OSError, requests.RequestException) as exc:
            raise _BrokenOff(
                f"{what} broke off after {_size(progress.count)}: {exc or type(exc).__name__}"
            ) from None
        expected_length = headers.get("content-length")
        encoded = headers.get("content-encoding", "identity") != "identity"
        if expected_length is not None and not encoded and int(expected_length) != progress.count:
            raise _BrokenOff(
                f"{what} broke off: {progress.count} of {expected_length} bytes arrived"
            )
        expected_sha = headers.get("x-bedrock-sha256", "").lower()
        if expected_sha and digest.hexdigest() != expected_sha:
            raise _BrokenOff(
                f"{what}: the archive's SHA-256 is {digest.hexdigest()}, not the {expected_sha} "
                "Bedrock recorded"
            )
        spool.flush()
        progress.done()

    # --- uploads -------------------------------------------------------------------------------

    def upload(self, path: str, source: BinaryIO, size: int) -> dict:
        """PUT ``size`` bytes of ``source`` (a ZIP) to ``path``; return the JSON answer.

        The length is sent up front: Django cannot read a chunked request body. urllib3 rewinds
        the file before another attempt.
        """
        what = f"PUT {path}"
        source.seek(0)
        body = _Counted(source, _Progress(self.say, what))
        headers = {"Content-Type": "application/zip", "Content-Length": str(size)}
        response = self._send("PUT", path, data=body, headers=headers)
        if response.status_code != 201:
            raise HookError(_failure(what, response) + _attempts(response))
        try:
            return response.json()
        except ValueError:
            raise HookError(f"{what} answered 201 with a body that is not JSON") from None


def _failure(what: str, response: requests.Response) -> str:
    message = _error_text(response)
    return f"{what} failed: HTTP {response.status_code}" + (f": {message}" if message else "")


class _Counted:
    """The upload's file, telling the progress what has been read from it."""

    def __init__(self, source: BinaryIO, progress: _Progress) -> None:
        self.source = source
        self.progress = progress

    def read(self, size: int = -1) -> bytes:
        chunk = self.source.read(_CHUNK if size is None or size < 0 else size)
        self.progress.add(len(chunk))
        if not chunk:
            self.progress.done(", waiting for Bedrock to store it")
        return chunk

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.source.seek(offset, whence)

    def tell(self) -> int:
        return self.source.tell()


# --- fetch ----------------------------------------------------------------------------------------


def _unpack(spool: BinaryIO, dest: Path, what: str) -> int:
    try:
        spool.seek(0)
        return unpack(spool, dest, workers=ZIP_WORKERS)
    except ArchiveError as exc:
        raise HookError(f"{what}: the archive cannot be unpacked: {exc}") from None


# Without missing_ok a missing download raises, so there is always a count and headers.
@overload
def _download_and_unpack(
    client: ApiClient, path: str, scratch: Path, dest: Path, *, missing_ok: Literal[False] = False
) -> tuple[int, dict]: ...
@overload
def _download_and_unpack(
    client: ApiClient, path: str, scratch: Path, dest: Path, *, missing_ok: bool
) -> tuple[int, dict] | None: ...
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
