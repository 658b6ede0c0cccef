"""The one exception the Git package raises for anything a user can cause."""

from __future__ import annotations


class GitError(Exception):
    """A failure a user can act on; ``str(exc)`` never contains a credential."""
