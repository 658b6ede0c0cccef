"""Git access for pipelines: the only module that imports GitPython or runs the git binary.

Each pipeline has a bare repository under ``settings.BEDROCK_GIT_CACHE / <cache_key>``. The first
call fetches every branch and tag; later calls fetch only what is new, and a commit that is already
in the cache is read without touching the network. Files are read from the bare repository and
checkouts are plain working trees (files only, no ``.git``), so a step cannot see or change the
cache.

Credentials never reach argv, a URL, a file under the cache or an exception message: the HTTPS
token travels as an ``http.extraHeader`` set through ``GIT_CONFIG_*`` environment variables, and an
SSH key is written to a 0600 file in a private temporary directory for the length of one call.

The modules: ``errors`` (GitError), ``credentials`` (GitCredentials, redact), ``validation``
(URLs, refs, SHAs, paths), ``session`` (running git), ``cache`` (the locked bare repository),
``fetch`` (resolving refs), ``head`` (a branch head without the cache), ``read`` (a file or a
working tree at a commit), ``dates`` (when a commit was made) and ``publish`` (the example
repository).
"""

from __future__ import annotations

from bedrock.pipelines.git.credentials import (
    KNOWN_HOSTS_SECRET,
    SSH_KEY_SECRET,
    TOKEN_SECRET,
    GitCredentials,
    redact,
)
from bedrock.pipelines.git.dates import commit_date
from bedrock.pipelines.git.errors import GitError
from bedrock.pipelines.git.fetch import ref_branch, resolve_ref
from bedrock.pipelines.git.head import remote_head
from bedrock.pipelines.git.publish import init_repository
from bedrock.pipelines.git.read import MAX_FILE_BYTES, checkout, read_file
from bedrock.pipelines.git.validation import validate_ref, validate_repo_url

__all__ = [
    "KNOWN_HOSTS_SECRET",
    "MAX_FILE_BYTES",
    "SSH_KEY_SECRET",
    "TOKEN_SECRET",
    "GitCredentials",
    "GitError",
    "checkout",
    "commit_date",
    "init_repository",
    "read_file",
    "redact",
    "ref_branch",
    "remote_head",
    "resolve_ref",
    "validate_ref",
    "validate_repo_url",
]
