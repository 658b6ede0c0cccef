"""Naming a commit: fetching into the cache only what is new, and resolving a branch, tag or
SHA to the full SHA of one commit."""

from __future__ import annotations

from bedrock.pipelines.git.cache import locked_cache
from bedrock.pipelines.git.credentials import GitCredentials
from bedrock.pipelines.git.errors import GitError
from bedrock.pipelines.git.session import Session, open_session
from bedrock.pipelines.git.validation import ABBREV_SHA, validate_ref, validate_repo_url

_PINNED = "refs/bedrock/pinned/"
_FETCH_REFSPECS = ("+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*")


def _fetch_all(session: Session) -> None:
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


def _fetch_sha(session: Session, sha: str) -> bool:
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


def _rev_parse(session: Session, name: str) -> str | None:
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


def _ref_exists(session: Session, full_name: str) -> bool:
    status, _, _ = session.run(
        "show-ref", "--verify", "--quiet", full_name, action="Reading the cache of", check=False
    )
    return status == 0


def _lookup_name(session: Session, ref: str) -> str | None:
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


def pin(session: Session, sha: str) -> None:
    # Keeps the commit reachable in the cache, so gc never drops it even after a force push.
    session.run("update-ref", f"{_PINNED}{sha}", sha, action="Updating the cache of")


def _ambiguity(session: Session, prefix: str) -> GitError | None:
    status, out, _ = session.run(
        "rev-parse", f"--disambiguate={prefix}", action="Reading the cache of", check=False
    )
    if status == 0 and len(out.split()) > 1:
        return GitError(
            f"The commit abbreviation '{prefix}' is ambiguous in {session.url}; give more of "
            f"the SHA."
        )
    return None


def resolve_in_cache(session: Session, ref: str, *, commit_only: bool = False) -> str:
    is_hex = bool(ABBREV_SHA.fullmatch(ref))
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
    with open_session(url, credentials) as session, locked_cache(session, cache_key):
        sha = resolve_in_cache(session, ref)
        pin(session, sha)
        return sha


def ref_branch(url: str, ref: str, *, cache_key: str) -> str:
    """The branch ``ref`` names, as :func:`resolve_ref` just resolved it into the cache: ``x`` for
    ``x`` or ``refs/heads/x`` when that is a branch, "" for a tag or a commit. No network."""
    if ref.startswith("refs/heads/"):
        return ref.removeprefix("refs/heads/")
    if ref.startswith("refs/"):
        return ""
    # A name that is a branch resolves as the branch (``resolve_in_cache``), even when it is hex.
    with open_session(url, None) as session, locked_cache(session, cache_key):
        return ref if _ref_exists(session, f"refs/heads/{ref}") else ""
