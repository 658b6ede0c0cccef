"""The bare repository each pipeline keeps under BEDROCK_GIT_CACHE, and the lock that lets
one worker at a time change it."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings

from bedrock.pipelines.git.errors import GitError
from bedrock.pipelines.git.session import Session, git_timeout
from bedrock.pipelines.git.validation import validate_cache_key


@contextlib.contextmanager
def locked_cache(session: Session, cache_key: str) -> Iterator[Path]:
    """Hold the cache's lock and yield its bare repository, created (or recreated, when the URL
    changed or it is damaged) if need be."""
    validate_cache_key(cache_key)
    root = Path(settings.BEDROCK_GIT_CACHE)
    root.mkdir(parents=True, exist_ok=True)
    # The lock file sits beside the repository so a damaged repository can be replaced under it.
    fd = os.open(root / f"{cache_key}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        # Each operation of the holder is bounded by the timeout; a checkout is a handful of them.
        deadline = time.monotonic() + 6 * git_timeout() + 5
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


def _cache_is_usable(session: Session, repo: Path) -> bool:
    if not (repo / "HEAD").is_file() or not (repo / "objects").is_dir():
        return False
    status, out, _ = session.run(
        "config", "--local", "--get", "bedrock.url", action="Reading the cache of", check=False
    )
    # A pipeline whose URL changed starts a fresh cache: commits of the old repository must not
    # be readable as if they were the new one's.
    return status == 0 and out.decode().strip() == session.url
