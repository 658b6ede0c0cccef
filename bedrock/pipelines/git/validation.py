"""Checks on what users hand to Git: repository URLs, ref names, commit SHAs and file paths.

Each check runs before any git command, so a hostile value never reaches argv."""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

from django.conf import settings

from bedrock.pipelines.git.credentials import SSH_KEY_SECRET, TOKEN_SECRET
from bedrock.pipelines.git.errors import GitError

ABBREV_SHA = re.compile(r"[0-9a-fA-F]{7,40}")
_CACHE_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
# "<transport>::<address>" makes git run git-remote-<transport>; ext:: runs any command.
_HELPER_SYNTAX = re.compile(r"[A-Za-z0-9][A-Za-z0-9+.-]*::")
_SCP_LIKE = re.compile(r"(?:(?P<user>[^@/:]+)@)?(?P<host>\[[^\]/]+\]|[^@/:\[\]]+):(?P<path>.*)")
_SSH_SCHEMES = ("ssh", "git+ssh", "ssh+git")
_SUPPORTED = "use an https:// URL, an ssh:// URL or the scp-like form git@host:owner/repo.git"


def has_space_or_control(text: str) -> bool:
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

    if has_space_or_control(url):
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
    shown = ref if not has_space_or_control(ref) else repr(ref)

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


def validate_cache_key(cache_key: str) -> None:
    # A programming error, not the user's: callers pass f"pipeline-{pk}".
    if not isinstance(cache_key, str) or not _CACHE_KEY.fullmatch(cache_key):
        raise ValueError(
            f"cache_key {cache_key!r} must be a single path component of letters, digits, "
            f"'.', '_' and '-'"
        )


def validate_sha(sha: str) -> None:
    if not isinstance(sha, str) or not ABBREV_SHA.fullmatch(sha):
        raise GitError(f"'{sha}' is not a commit SHA (7 to 40 hexadecimal characters).")


def normalize_path(path: str) -> str:
    if not isinstance(path, str) or not path.strip():
        raise GitError("The file path is empty; give a path inside the repository.")
    if has_space_or_control(path.replace(" ", "")):
        raise GitError(f"The file path {path!r} contains control characters.")
    if path.startswith("/"):
        raise GitError(f"The file path '{path}' must be relative to the repository root.")
    parts = [p for p in PurePosixPath(path).parts if p != "."]
    if not parts or ".." in parts:
        raise GitError(f"The file path '{path}' must stay inside the repository (no '..').")
    return "/".join(parts)
