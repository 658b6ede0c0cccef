"""Git access for pipelines: the only module that imports GitPython or runs the git binary.

Each pipeline has a bare repository under ``settings.BEDROCK_GIT_CACHE / <cache_key>``. The first
call fetches every branch and tag; later calls fetch only what is new, and a commit that is already
in the cache is read without touching the network. Files are read from the bare repository and
checkouts are plain working trees (files only, no ``.git``), so a step cannot see or change the
cache.

Credentials never reach argv, a URL, a file under the cache or an exception message: the HTTPS
token travels as an ``http.extraHeader`` set through ``GIT_CONFIG_*`` environment variables, and an
SSH key is written to a 0600 file in a private temporary directory for the length of one call.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import os
import re
import shlex
import shutil
import tempfile
import time
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

from django.conf import settings
from git import Git
from git.exc import GitCommandError, GitCommandNotFound

from bedrock.runs.logmask import mask_text

__all__ = [
    "GitCredentials",
    "GitError",
    "checkout",
    "read_file",
    "redact",
    "resolve_ref",
    "validate_ref",
    "validate_repo_url",
]

# The reserved pipeline secret names (names, not values).
TOKEN_SECRET = "BEDROCK_GIT_TOKEN"  # noqa: S105
SSH_KEY_SECRET = "BEDROCK_GIT_SSH_KEY"  # noqa: S105
KNOWN_HOSTS_SECRET = "BEDROCK_GIT_KNOWN_HOSTS"  # noqa: S105

MAX_FILE_BYTES = 10 * 1024 * 1024
_PINNED = "refs/bedrock/pinned/"
_FETCH_REFSPECS = ("+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*")
_FULL_SHA = re.compile(r"[0-9a-fA-F]{40}")
_ABBREV_SHA = re.compile(r"[0-9a-fA-F]{7,40}")
_CACHE_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
# "<transport>::<address>" makes git run git-remote-<transport>; ext:: runs any command.
_HELPER_SYNTAX = re.compile(r"[A-Za-z0-9][A-Za-z0-9+.-]*::")
_SCP_LIKE = re.compile(r"(?:(?P<user>[^@/:]+)@)?(?P<host>\[[^\]/]+\]|[^@/:\[\]]+):(?P<path>.*)")
_SSH_SCHEMES = ("ssh", "git+ssh", "ssh+git")
_SUPPORTED = "use an https:// URL, an ssh:// URL or the scp-like form git@host:owner/repo.git"


class GitError(Exception):
    """A failure a user can act on; ``str(exc)`` never contains a credential."""


@dataclass(frozen=True, repr=False)
class GitCredentials:
    """How to authenticate to a pipeline's repository, read from its reserved secrets."""

    token: str | None = None
    ssh_key: str | None = None
    known_hosts: str | None = None

    def __repr__(self) -> str:
        def state(value: str | None) -> str:
            return "<set>" if value else "None"

        return (
            f"GitCredentials(token={state(self.token)}, ssh_key={state(self.ssh_key)}, "
            f"known_hosts={state(self.known_hosts)})"
        )

    __str__ = __repr__

    @classmethod
    def from_secrets(cls, secrets: Mapping[str, str]) -> GitCredentials | None:
        """Credentials from the pipeline secrets BEDROCK_GIT_TOKEN, BEDROCK_GIT_SSH_KEY and
        BEDROCK_GIT_KNOWN_HOSTS; None when none of them has a value."""
        token = (secrets.get(TOKEN_SECRET) or "").strip() or None
        ssh_key = (secrets.get(SSH_KEY_SECRET) or "").strip() or None
        known_hosts = (secrets.get(KNOWN_HOSTS_SECRET) or "").strip() or None
        if not (token or ssh_key or known_hosts):
            return None
        return cls(token=token, ssh_key=ssh_key, known_hosts=known_hosts)


def _secret_fragments(credentials: GitCredentials | None) -> list[str]:
    if credentials is None:
        return []
    fragments: list[str] = []
    if credentials.token:
        token = credentials.token
        fragments += [
            token,
            _basic_auth(token),
            base64.b64encode(token.encode()).decode(),
        ]
    if credentials.ssh_key:
        fragments.append(credentials.ssh_key)
        fragments += [line.strip() for line in credentials.ssh_key.splitlines()]
    # Longest first, so a fragment that contains another is replaced whole.
    return sorted({f for f in fragments if len(f) >= 4}, key=len, reverse=True)


def redact(text: str, credentials: GitCredentials | None) -> str:
    """``text`` with the credential values, any Authorization header value and any password in a
    URL replaced by ``***``."""
    text = mask_text(text, _secret_fragments(credentials), mask="***")
    text = re.sub(r"(?i)(authorization:\s*)\S+(\s+\S+)?", r"\1***", text)
    return re.sub(r"(://)[^/@\s:]+:[^/@\s]+@", r"\1***@", text)


# --- Validation --------------------------------------------------------------------------------


def _has_space_or_control(text: str) -> bool:
    return any(ch.isspace() or unicodedata.category(ch)[0] == "C" for ch in text)


def validate_repo_url(url: str, *, allow_local: bool | None = None) -> None:
    """Raise GitError unless ``url`` is a repository URL pipelines may fetch from.

    Accepted: ``https://``, ``ssh://`` and scp-like ``user@host:path``; local paths (absolute paths
    and ``file://``) only when ``allow_local`` (default: ``settings.BEDROCK_ALLOW_LOCAL_REPOS``).
    """
    if allow_local is None:
        allow_local = bool(getattr(settings, "BEDROCK_ALLOW_LOCAL_REPOS", False))
    if not isinstance(url, str) or not url:
        raise GitError(f"The repository URL is empty; {_SUPPORTED}.")
    if len(url) > 2048:
        raise GitError("The repository URL is longer than 2048 characters.")
    if _HELPER_SYNTAX.match(url):
        transport = url.split("::", 1)[0]
        raise GitError(
            f"The repository URL uses the git transport helper syntax '{transport}::', which can "
            f"run commands on the server; {_SUPPORTED}."
        )

    if _has_space_or_control(url):
        raise GitError("The repository URL must not contain spaces or control characters.")
    if url.startswith("-"):
        raise GitError(
            "The repository URL must not begin with '-': git would read it as an option."
        )
    if "://" in url:
        _validate_scheme_url(url, allow_local=allow_local)
    elif url.startswith("/"):
        if not allow_local:
            raise GitError(
                f"Local repository paths are not allowed on this site (BEDROCK_ALLOW_LOCAL_REPOS "
                f"is off); {_SUPPORTED}."
            )
        _refuse_own_directories(url)
    else:
        _validate_scp_like(url)


def _own_directories() -> list[Path]:
    """Where Bedrock keeps its state: its home (keys, database, logs, workspaces), the Git cache
    of every pipeline, and the artefact store when it is a local directory."""
    roots = [Path(settings.BEDROCK_HOME), Path(settings.BEDROCK_GIT_CACHE)]
    storage = settings.STORAGES.get("default", {})
    if storage.get("BACKEND", "").endswith("FileSystemStorage"):
        location = storage.get("OPTIONS", {}).get("location")
        if location:
            roots.append(Path(location))
    return [Path(os.path.realpath(root)) for root in roots]


def _refuse_own_directories(path: str) -> None:
    """Refuse a local repository inside Bedrock's own directories, once symbolic links and
    ``..`` are resolved: another pipeline's Git cache, a run's workspace or the keys would become
    readable through a pipeline of one's own.

    The example repositories Bedrock publishes itself (``BEDROCK_HOME/examples``) are allowed.
    """
    home, *others = _own_directories()
    examples = home / "examples"
    # git also opens <path>/.git and <path>.git when given <path>.
    for candidate in (path, f"{path}/.git", f"{path}.git"):
        resolved = Path(os.path.realpath(candidate))
        for root in (home, *others):
            if root == home and resolved.is_relative_to(examples):
                continue
            if resolved.is_relative_to(root):
                raise GitError(
                    f"{path} is inside Bedrock's own directory {root} (it resolves to "
                    f"{resolved}); a pipeline's repository must be somewhere else."
                )


def _validate_scheme_url(url: str, *, allow_local: bool) -> None:
    scheme = url.split("://", 1)[0].lower()
    if scheme == "http":
        raise GitError(
            "Plain http:// sends the code, and any token, unencrypted; use the https:// URL of "
            "the repository instead."
        )
    if scheme == "git":
        raise GitError(
            "The git:// protocol is unauthenticated and unencrypted; use the https:// or ssh:// "
            "URL of the repository instead."
        )
    if scheme == "file":
        if not allow_local:
            raise GitError(
                f"Local file:// repositories are not allowed on this site "
                f"(BEDROCK_ALLOW_LOCAL_REPOS is off); {_SUPPORTED}."
            )
        if not url[len("file://") :].startswith("/"):
            raise GitError("A file:// URL must hold an absolute path, such as file:///srv/repo.")
        # git decodes %-escapes in a file:// URL, so the check does too.
        _refuse_own_directories(unquote(url[len("file://") :]))
        return
    if scheme not in ("https", *_SSH_SCHEMES):
        raise GitError(f"The repository URL scheme '{scheme}://' is not supported; {_SUPPORTED}.")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError for a malformed port
    except ValueError:
        raise GitError(f"The repository URL is malformed; {_SUPPORTED}.") from None
    if parts.password is not None or (scheme == "https" and parts.username is not None):
        raise GitError(
            f"The repository URL contains credentials. Remove them from the URL and put the "
            f"token in the pipeline secret {TOKEN_SECRET} instead."
        )
    host = parts.hostname or ""
    if not host:
        raise GitError(f"The repository URL has no host; {_SUPPORTED}.")
    if host.startswith("-") or (parts.username or "").startswith("-"):
        raise GitError("The host or user name in the repository URL must not begin with '-'.")
    if parts.path in ("", "/"):
        raise GitError("The repository URL has no repository path, such as /owner/repo.git.")


def _validate_scp_like(url: str) -> None:
    before_at = url.split("@", 1)[0] if "@" in url else ""
    if ":" in before_at and "/" not in before_at:
        raise GitError(
            f"The repository URL contains credentials. Remove them from the URL and use the "
            f"pipeline secret {SSH_KEY_SECRET} instead."
        )
    match = _SCP_LIKE.fullmatch(url)
    if match is None:
        raise GitError(f"This is not a repository URL git can fetch; {_SUPPORTED}.")
    user, host, path = match.group("user") or "", match.group("host"), match.group("path")
    if host.startswith("-") or user.startswith("-") or path.startswith("-"):
        raise GitError(
            "The user, host and path in the repository URL must not begin with '-': git would "
            "read them as options."
        )
    if not path:
        raise GitError("The repository URL has no repository path, such as git@host:owner/repo.")


def validate_ref(ref: str) -> None:
    """Raise GitError unless ``ref`` is a branch, tag or commit name by the rules of
    ``git check-ref-format --allow-onelevel``, and does not begin with '-'."""
    if not isinstance(ref, str) or not ref:
        raise GitError("The branch, tag or commit is empty.")
    shown = ref if not _has_space_or_control(ref) else repr(ref)

    def bad(reason: str) -> GitError:
        return GitError(f"'{shown}' is not a valid branch, tag or commit name: {reason}.")

    if len(ref) > 255:
        raise bad("it is longer than 255 characters")
    if ref.startswith("-"):
        raise bad("it must not begin with '-'")
    if any(ch.isspace() for ch in ref) or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in ref):
        raise bad("it must not contain spaces or control characters")
    forbidden = sorted({ch for ch in ref if ch in "~^:?*[\\"})
    if forbidden:
        raise bad("it must not contain " + ", ".join(f"'{ch}'" for ch in forbidden))
    if ".." in ref:
        raise bad("it must not contain '..'")
    if "@{" in ref:
        raise bad("it must not contain '@{'")
    if ref == "@":
        raise bad("'@' alone is not allowed")
    if ref.startswith("/") or ref.endswith("/") or "//" in ref:
        raise bad("it must not begin or end with '/' or contain '//'")
    if ref.endswith("."):
        raise bad("it must not end with '.'")
    for component in ref.split("/"):
        if component.startswith("."):
            raise bad("no part of it may begin with '.'")
        if component.endswith(".lock"):
            raise bad("no part of it may end with '.lock'")


def _validate_cache_key(cache_key: str) -> None:
    # A programming error, not the user's: callers pass f"pipeline-{pk}".
    if not isinstance(cache_key, str) or not _CACHE_KEY.fullmatch(cache_key):
        raise ValueError(
            f"cache_key {cache_key!r} must be a single path component of letters, digits, "
            f"'.', '_' and '-'"
        )


def _validate_sha(sha: str) -> None:
    if not isinstance(sha, str) or not _ABBREV_SHA.fullmatch(sha):
        raise GitError(f"'{sha}' is not a commit SHA (7 to 40 hexadecimal characters).")


def _normalize_path(path: str) -> str:
    if not isinstance(path, str) or not path.strip():
        raise GitError("The file path is empty; give a path inside the repository.")
    if _has_space_or_control(path.replace(" ", "")):
        raise GitError(f"The file path {path!r} contains control characters.")
    if path.startswith("/"):
        raise GitError(f"The file path '{path}' must be relative to the repository root.")
    parts = [p for p in PurePosixPath(path).parts if p != "."]
    if not parts or ".." in parts:
        raise GitError(f"The file path '{path}' must stay inside the repository (no '..').")
    return "/".join(parts)


# --- Running git -------------------------------------------------------------------------------


def _timeout() -> float:
    return float(getattr(settings, "BEDROCK_GIT_TIMEOUT", 120))


def _basic_auth(token: str) -> str:
    return base64.b64encode(f"x-access-token:{token}".encode()).decode()


class _Session:
    """The environment for the git commands of one public call, and the place the SSH key and
    known_hosts live while it runs."""

    def __init__(self, url: str, credentials: GitCredentials | None, tmpdir: Path) -> None:
        self.url = url
        self.credentials = credentials
        self.git_dir: Path | None = None
        allow_local = bool(getattr(settings, "BEDROCK_ALLOW_LOCAL_REPOS", False))
        ssh = [
            "ssh",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=15",
            "-o",
            "ServerAliveInterval=15",
            "-o",
            "ServerAliveCountMax=3",
            "-o",
            "StrictHostKeyChecking=yes",
        ]
        if credentials and credentials.ssh_key:
            key = tmpdir / "id"
            _write_private(key, credentials.ssh_key.strip() + "\n")
            ssh += ["-i", str(key), "-o", "IdentitiesOnly=yes"]
        if credentials and credentials.known_hosts:
            known_hosts = tmpdir / "known_hosts"
            _write_private(known_hosts, credentials.known_hosts.strip() + "\n")
            ssh += ["-o", f"UserKnownHostsFile={known_hosts}"]
        config: list[tuple[str, str]] = []
        if credentials and credentials.token:
            config.append(
                ("http.extraHeader", f"Authorization: Basic {_basic_auth(credentials.token)}")
            )
        self.env: dict[str, str] = {
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_ASKPASS": "",
            "SSH_ASKPASS": "",
            # The host's own git configuration (credential helpers, url rewrites, filters) must
            # not change what a pipeline fetches or where its token goes.
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_ALLOW_PROTOCOL": "https:ssh" + (":file" if allow_local else ""),
            "GIT_HTTP_LOW_SPEED_LIMIT": "1000",
            # A stalled transfer is dropped by curl even when BEDROCK_GIT_TIMEOUT is long.
            "GIT_HTTP_LOW_SPEED_TIME": "60",
            "GIT_LITERAL_PATHSPECS": "1",
            "GIT_SSH_COMMAND": shlex.join(ssh),
            "GIT_SSH_VARIANT": "ssh",
            "GIT_CONFIG_COUNT": str(len(config)),
        }
        for i, (key_name, value) in enumerate(config):
            self.env[f"GIT_CONFIG_KEY_{i}"] = key_name
            self.env[f"GIT_CONFIG_VALUE_{i}"] = value

    def run(
        self,
        *args: str,
        action: str,
        env: Mapping[str, str] | None = None,
        check: bool = True,
    ) -> tuple[int, bytes, str]:
        """Run ``git <args>`` with the timeout; return (status, stdout, stderr)."""
        full_env = dict(self.env)
        if self.git_dir is not None:
            full_env["GIT_DIR"] = str(self.git_dir)
        full_env.update(env or {})
        timeout = _timeout()
        runner = Git(str(Path(settings.BEDROCK_GIT_CACHE)))
        command = [Git.GIT_PYTHON_GIT_EXECUTABLE or "git", *args]
        failure: GitError | None = None
        try:
            status, stdout, stderr = runner.execute(
                command,
                kill_after_timeout=timeout,
                env=full_env,
                with_extended_output=True,
                with_exceptions=check,
                stdout_as_string=False,
                strip_newline_in_stdout=False,
            )
        except GitCommandNotFound:
            raise GitError("The git program is not installed on this worker.") from None
        except GitCommandError as exc:
            # exc.stderr is wrapped as "\n  stderr: '...'"; take git's own words back out.
            raw = re.sub(r"^\s*stderr: '(.*)'\s*$", r"\1", str(exc.stderr or ""), flags=re.S)
            failure = self.error(action, exc.status, raw)
        if failure is not None:
            # Raised outside the except block so the unscrubbed GitCommandError is not kept as
            # __context__, where a traceback or error reporter could still print it.
            raise failure
        if _timed_out(status, stderr):
            # Even where a failure is expected (check=False), a timeout is never "not found".
            raise self.error(action, status, str(stderr))
        return int(status), bytes(stdout), str(stderr)

    def error(self, action: str, status: object, stderr: str) -> GitError:
        stderr = redact(stderr, self.credentials)
        url = redact(self.url, self.credentials)
        timeout = _timeout()
        if _timed_out(status, stderr):
            return GitError(
                f"{action} {url} timed out after {timeout:g} seconds (BEDROCK_GIT_TIMEOUT); check "
                f"that the host is reachable and answering."
            )
        detail = _git_said(stderr)
        lowered = stderr.lower()
        if "operation too slow" in lowered or "timed out" in lowered:
            return GitError(
                f"{action} {url} timed out; check that the host is reachable and answering.{detail}"
            )
        creds = self.credentials
        if (
            "could not read username" in lowered
            or "authentication failed" in lowered
            or "the requested url returned error: 401" in lowered
            or "the requested url returned error: 403" in lowered
        ):
            if creds and creds.token:
                hint = f"the token in the pipeline secret {TOKEN_SECRET} was refused"
            else:
                hint = f"put a token with read access in the pipeline secret {TOKEN_SECRET}"
            return GitError(f"{action} {url} failed: authentication is required; {hint}.")
        if "host key verification failed" in lowered:
            return GitError(
                f"{action} {url} failed: the server's SSH host key is not known; put its "
                f"known_hosts line in the pipeline secret {KNOWN_HOSTS_SECRET}."
            )
        if "permission denied (publickey" in lowered:
            return GitError(
                f"{action} {url} failed: the SSH server refused the key; put a deploy key with "
                f"read access in the pipeline secret {SSH_KEY_SECRET}.{detail}"
            )
        if (
            "does not appear to be a git repository" in lowered
            or "repository not found" in lowered
            or "returned error: 404" in lowered
            or ("not found" in lowered and "repository" in lowered)
        ):
            return GitError(f"{action} {url} failed: there is no repository there.{detail}")
        if "could not resolve host" in lowered or "could not resolve hostname" in lowered:
            return GitError(f"{action} {url} failed: the host name does not resolve.{detail}")
        if "transport" in lowered and "not allowed" in lowered:
            return GitError(f"{action} {url} failed: this transport is not allowed.{detail}")
        return GitError(f"{action} {url} failed.{detail}")


def _timed_out(status: object, stderr: object) -> bool:
    # GitPython kills the process group with SIGKILL and replaces stderr with its own message.
    return status == -9 or "did not complete in" in str(stderr)


def _git_said(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    lines = [line for line in lines if not line.lower().startswith("hint:")]
    if not lines:
        return ""
    text = " ".join(lines[-3:])
    if len(text) > 500:
        text = text[:500] + "…"
    return f" (git said: {text})"


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


@contextlib.contextmanager
def _session(url: str, credentials: GitCredentials | None) -> Iterator[_Session]:
    tmpdir = Path(tempfile.mkdtemp(prefix="bedrock-git-"))  # mode 0700
    try:
        yield _Session(url, credentials, tmpdir)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


@contextlib.contextmanager
def _cache(session: _Session, cache_key: str) -> Iterator[Path]:
    """Hold the cache's lock and yield its bare repository, created (or recreated, when the URL
    changed or it is damaged) if need be."""
    _validate_cache_key(cache_key)
    root = Path(settings.BEDROCK_GIT_CACHE)
    root.mkdir(parents=True, exist_ok=True)
    # The lock file sits beside the repository so a damaged repository can be replaced under it.
    fd = os.open(root / f"{cache_key}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        # Each operation of the holder is bounded by the timeout; a checkout is a handful of them.
        deadline = time.monotonic() + 6 * _timeout() + 5
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise GitError(
                        f"The git cache '{cache_key}' stayed busy with another worker; try again."
                    ) from None
                time.sleep(0.05)
        repo = root / cache_key
        session.git_dir = repo
        if not _cache_is_usable(session, repo):
            shutil.rmtree(repo, ignore_errors=True)
            session.git_dir = None
            session.run(
                "init",
                "--bare",
                "--quiet",
                "--template=",
                "--",
                str(repo),
                action="Creating the cache for",
            )
            session.git_dir = repo
            for key, value in (
                ("bedrock.url", session.url),
                ("gc.autoDetach", "false"),  # no background gc outliving the lock
                ("core.logAllRefUpdates", "false"),
            ):
                session.run("config", "--local", key, value, action="Configuring the cache for")
        yield repo
    finally:
        os.close(fd)


def _cache_is_usable(session: _Session, repo: Path) -> bool:
    if not (repo / "HEAD").is_file() or not (repo / "objects").is_dir():
        return False
    status, out, _ = session.run(
        "config", "--local", "--get", "bedrock.url", action="Reading the cache of", check=False
    )
    # A pipeline whose URL changed starts a fresh cache: commits of the old repository must not
    # be readable as if they were the new one's.
    return status == 0 and out.decode().strip() == session.url


def _fetch_all(session: _Session) -> None:
    session.run(
        "fetch",
        "--quiet",
        "--prune",
        "--no-tags",
        "--no-recurse-submodules",
        "--no-write-fetch-head",
        "--",
        session.url,
        *_FETCH_REFSPECS,
        action="Fetching from",
    )


def _fetch_sha(session: _Session, sha: str) -> bool:
    """Fetch one commit by its full SHA (for a commit no branch or tag reaches); False when the
    server does not have it or does not serve unadvertised commits."""
    status, _, _ = session.run(
        "fetch",
        "--quiet",
        "--no-tags",
        "--no-recurse-submodules",
        "--no-write-fetch-head",
        "--",
        session.url,
        f"+{sha}:{_PINNED}{sha}",
        action="Fetching from",
        check=False,
    )
    return status == 0


def _rev_parse(session: _Session, name: str) -> str | None:
    status, out, _ = session.run(
        "rev-parse",
        "--verify",
        "--quiet",
        "--end-of-options",
        f"{name}^{{commit}}",
        action="Reading the cache of",
        check=False,
    )
    return out.decode().strip() if status == 0 else None


def _ref_exists(session: _Session, full_name: str) -> bool:
    status, _, _ = session.run(
        "show-ref", "--verify", "--quiet", full_name, action="Reading the cache of", check=False
    )
    return status == 0


def _lookup_name(session: _Session, ref: str) -> str | None:
    if ref.startswith("refs/"):
        return _rev_parse(session, ref)
    found: set[str] = set()
    for kind in ("heads", "tags"):
        if _ref_exists(session, f"refs/{kind}/{ref}"):
            sha = _rev_parse(session, f"refs/{kind}/{ref}")
            if sha:
                found.add(sha)
    if len(found) > 1:
        raise GitError(
            f"'{ref}' is both a branch and a tag in {session.url}; write refs/heads/{ref} or "
            f"refs/tags/{ref} to choose."
        )
    return next(iter(found), None)


def _pin(session: _Session, sha: str) -> None:
    # Keeps the commit reachable in the cache, so gc never drops it even after a force push.
    session.run("update-ref", f"{_PINNED}{sha}", sha, action="Updating the cache of")


def _ambiguity(session: _Session, prefix: str) -> GitError | None:
    status, out, _ = session.run(
        "rev-parse", f"--disambiguate={prefix}", action="Reading the cache of", check=False
    )
    if status == 0 and len(out.split()) > 1:
        return GitError(
            f"The commit abbreviation '{prefix}' is ambiguous in {session.url}; give more of "
            f"the SHA."
        )
    return None


def _resolve(session: _Session, ref: str, *, commit_only: bool = False) -> str:
    is_hex = bool(_ABBREV_SHA.fullmatch(ref))
    # A commit already in the cache never changes: no network. (Branches and tags move, so a
    # hex string that is also a cached branch or tag name is looked up on the server.)
    if is_hex and (
        commit_only
        or not (
            _ref_exists(session, f"refs/heads/{ref}") or _ref_exists(session, f"refs/tags/{ref}")
        )
    ):
        sha = _rev_parse(session, ref.lower())
        if sha:
            return sha
    _fetch_all(session)
    if not commit_only and (sha := _lookup_name(session, ref)):
        return sha
    if is_hex:
        if sha := _rev_parse(session, ref.lower()):
            return sha
        if len(ref) < 40 and (error := _ambiguity(session, ref.lower())):
            raise error
        if (
            len(ref) == 40
            and _fetch_sha(session, ref.lower())
            and (sha := _rev_parse(session, ref.lower()))
        ):
            return sha
    what = "commit" if commit_only else "ref"
    raise GitError(
        f"{what} '{ref}' not found in {session.url}; check the branch, tag or commit name and "
        f"that it has been pushed."
    )


# --- Public operations -------------------------------------------------------------------------


def resolve_ref(
    url: str, ref: str, *, cache_key: str, credentials: GitCredentials | None = None
) -> str:
    """The full 40-character SHA of the commit ``ref`` names in ``url``.

    ``ref`` is a branch, a tag (annotated tags are peeled), ``refs/heads/x``/``refs/tags/x``, or a
    full or abbreviated (at least 7 characters) commit SHA. A commit already in the cache is
    resolved without the network; a branch or tag is always looked up on the server.
    """
    validate_repo_url(url)
    validate_ref(ref)
    with _session(url, credentials) as session, _cache(session, cache_key):
        sha = _resolve(session, ref)
        _pin(session, sha)
        return sha


def _commit(session: _Session, sha: str) -> str:
    _validate_sha(sha)
    return _resolve(session, sha, commit_only=True)


def read_file(
    url: str, sha: str, path: str, *, cache_key: str, credentials: GitCredentials | None = None
) -> str:
    """The UTF-8 text of ``path`` (relative to the repository root) at commit ``sha``."""
    validate_repo_url(url)
    rel = _normalize_path(path)
    with _session(url, credentials) as session, _cache(session, cache_key):
        full = _commit(session, sha)
        short = full[:7]
        _, out, _ = session.run(
            "ls-tree", "-l", "-z", full, "--", rel, action="Reading the cache of"
        )
        entry = next(
            (e for e in out.split(b"\0") if e and e.split(b"\t", 1)[-1] == rel.encode()), None
        )
        if entry is None:
            raise GitError(f"{rel} not found at commit {short}.")
        mode, kind, oid, size = entry.split(b"\t", 1)[0].decode().split()
        if kind != "blob" or mode == "120000":
            what = {"tree": "a directory", "commit": "a submodule"}.get(kind, "a symbolic link")
            raise GitError(f"{rel} is {what} at commit {short}, not a file.")
        if int(size) > MAX_FILE_BYTES:
            raise GitError(
                f"{rel} at commit {short} is {int(size):,} bytes; the limit is {MAX_FILE_BYTES:,}."
            )
        _, data, _ = session.run("cat-file", "blob", oid, action="Reading the cache of")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise GitError(
                f"{rel} at commit {short} is not UTF-8 text (byte {exc.start})."
            ) from None


def checkout(
    url: str,
    sha: str,
    dest: Path,
    *,
    cache_key: str,
    credentials: GitCredentials | None = None,
) -> Path:
    """Write the files of commit ``sha`` into ``dest`` and return it.

    ``dest`` must be missing or empty. It becomes a plain working tree: the files only, with no
    ``.git`` directory, so steps cannot reach the cache or the history. Submodules are left empty
    and Git LFS files stay as pointer files.
    """
    validate_repo_url(url)
    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ValueError(f"checkout destination {dest} must be missing or an empty directory")
    created = not dest.exists()
    with _session(url, credentials) as session, _cache(session, cache_key) as repo:
        full = _commit(session, sha)
        dest.mkdir(parents=True, exist_ok=True)
        index = repo.parent / f".{repo.name}.index"
        env = {"GIT_INDEX_FILE": str(index), "GIT_WORK_TREE": str(dest.resolve())}
        try:
            session.run("read-tree", full, action="Checking out", env=env)
            session.run("checkout-index", "--all", "--force", action="Checking out", env=env)
        except BaseException:
            if created:
                shutil.rmtree(dest, ignore_errors=True)
            else:
                _empty(dest)
            raise
        finally:
            index.unlink(missing_ok=True)
    return dest


def _empty(directory: Path) -> None:
    for child in directory.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def init_repository(source: Path, dest: Path, *, message: str, branch: str = "main") -> str:
    """Make ``dest`` a repository whose ``branch`` holds ``source``'s files; return the commit.

    Used to publish the bundled example as a local repository. When ``dest`` already holds a
    commit of the same files, nothing changes; otherwise a new commit is added on top.
    """
    dest.mkdir(parents=True, exist_ok=True)
    identity = {
        "GIT_AUTHOR_NAME": "Bedrock",
        "GIT_AUTHOR_EMAIL": "bedrock@localhost",
        "GIT_COMMITTER_NAME": "Bedrock",
        "GIT_COMMITTER_EMAIL": "bedrock@localhost",
    }
    with _session(str(dest), None) as session:
        env = {**identity, "GIT_DIR": str(dest / ".git"), "GIT_WORK_TREE": str(dest)}
        if not (dest / ".git").exists():
            session.run("init", "-q", "-b", branch, action="Creating a repository in", env=env)
        for item in dest.iterdir():
            if item.name != ".git":
                shutil.rmtree(item) if item.is_dir() else item.unlink()
        shutil.copytree(
            source, dest, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__")
        )
        session.run("add", "-A", ".", action="Adding files to", env=env)
        status, _, _ = session.run(
            "diff", "--cached", "--quiet", action="Comparing", env=env, check=False
        )
        if status != 0:
            session.run("commit", "-q", "-m", message, action="Committing to", env=env)
        _, head, _ = session.run("rev-parse", "HEAD", action="Reading", env=env)
        return head.decode().strip()
