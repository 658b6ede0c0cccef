"""Reading a commit out of the cache: one file as text, or every file into a working tree."""

from __future__ import annotations

import shutil
from pathlib import Path

from bedrock.pipelines.git.cache import locked_cache
from bedrock.pipelines.git.credentials import GitCredentials
from bedrock.pipelines.git.errors import GitError
from bedrock.pipelines.git.fetch import resolve_in_cache
from bedrock.pipelines.git.session import Session, open_session
from bedrock.pipelines.git.validation import normalize_path, validate_repo_url, validate_sha

MAX_FILE_BYTES = 10 * 1024 * 1024


def _commit(session: Session, sha: str) -> str:
    validate_sha(sha)
    return resolve_in_cache(session, sha, commit_only=True)


def read_file(
    url: str, sha: str, path: str, *, cache_key: str, credentials: GitCredentials | None = None
) -> str:
    """The UTF-8 text of ``path`` (relative to the repository root) at commit ``sha``."""
    validate_repo_url(url)
    rel = normalize_path(path)
    with open_session(url, credentials) as session, locked_cache(session, cache_key):
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
    with open_session(url, credentials) as session, locked_cache(session, cache_key) as repo:
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
