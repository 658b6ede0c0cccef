"""When a commit was made, read from the cache: what dated installs resolve packages as of."""

from __future__ import annotations

from datetime import datetime

from bedrock.pipelines.git.cache import locked_cache
from bedrock.pipelines.git.credentials import GitCredentials
from bedrock.pipelines.git.errors import GitError
from bedrock.pipelines.git.fetch import resolve_in_cache
from bedrock.pipelines.git.session import open_session
from bedrock.pipelines.git.validation import validate_repo_url, validate_sha


def commit_date(
    url: str, sha: str, *, cache_key: str, credentials: GitCredentials | None = None
) -> datetime:
    """The committer date of ``sha``, timezone-aware: when the commit's tree was last the
    working state, which is what its unpinned requirements were meant to resolve against (the
    author date of a rebased or cherry-picked commit can be much older)."""
    validate_repo_url(url)
    validate_sha(sha)
    with open_session(url, credentials) as session, locked_cache(session, cache_key):
        full = resolve_in_cache(session, sha, commit_only=True)
        _, out, _ = session.run(
            "show", "-s", "--format=%cI", full, "--", action="Reading the cache of"
        )
    text = out.decode().strip()
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise GitError(f"commit {full[:7]} has no readable committer date ({text!r}).") from None
