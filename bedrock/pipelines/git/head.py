"""A branch's head as the server has it now, asked with ``git ls-remote``: no fetch, no cache,
no lock, so a page can ask it with a short timeout while a worker holds the pipeline's cache."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

from bedrock.pipelines.git.credentials import GitCredentials
from bedrock.pipelines.git.session import open_session
from bedrock.pipelines.git.validation import validate_ref, validate_repo_url

_FULL_SHA_LENGTH = 40


def _candidates(ref: str) -> list[str]:
    if ref.startswith("refs/"):
        return [ref, f"{ref}^{{}}"]
    return [f"refs/heads/{ref}", f"refs/tags/{ref}", f"refs/tags/{ref}^{{}}"]


def _pick(listing: bytes, ref: str) -> str | None:
    found: dict[str, str] = {}
    for line in listing.decode(errors="replace").splitlines():
        sha, _, name = line.partition("\t")
        found[name.strip()] = sha.strip()
    shas: set[str] = set()
    for name in _candidates(ref):
        if name.endswith("^{}"):
            continue
        # An annotated tag names a tag object; the commit is on its peeled line.
        commit = found.get(f"{name}^{{}}") or found.get(name)
        if commit:
            shas.add(commit)
    # A name that is both a branch and a tag is left to the full resolution, which explains it.
    return shas.pop() if len(shas) == 1 else None


def remote_head(
    url: str, ref: str, *, timeout: float, credentials: GitCredentials | None = None
) -> str | None:
    """The full SHA ``ref`` (a branch or tag) names on the server, or None when the server has no
    such name or it is ambiguous. A full commit SHA names itself.

    Raises GitError when the server cannot be asked within ``timeout`` seconds.
    """
    validate_repo_url(url)
    validate_ref(ref)
    Path(settings.BEDROCK_GIT_CACHE).mkdir(parents=True, exist_ok=True)
    with open_session(url, credentials) as session:
        _, out, _ = session.run(
            "ls-remote", "--", url, *_candidates(ref), action="Asking", timeout=timeout
        )
    sha = _pick(out, ref)
    if sha is None and len(ref) == _FULL_SHA_LENGTH and all(c in "0123456789abcdef" for c in ref):
        return ref
    return sha
