"""How a pipeline authenticates to its repository, and scrubbing those values from text."""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass

from bedrock.runs.logmask import mask_text

# The reserved pipeline secret names (names, not values).
TOKEN_SECRET = "BEDROCK_GIT_TOKEN"  # noqa: S105
SSH_KEY_SECRET = "BEDROCK_GIT_SSH_KEY"  # noqa: S105
KNOWN_HOSTS_SECRET = "BEDROCK_GIT_KNOWN_HOSTS"  # noqa: S105


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
            basic_auth(token),
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


def basic_auth(token: str) -> str:
    return base64.b64encode(f"x-access-token:{token}".encode()).decode()
