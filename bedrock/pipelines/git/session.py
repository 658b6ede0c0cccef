"""Running the git binary through GitPython: one environment per public call, with the
timeout, the credentials passed out of argv, and git's failures turned into GitErrors."""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

from django.conf import settings
from git import Git
from git.exc import GitCommandError, GitCommandNotFound

from bedrock.pipelines.git.credentials import (
    KNOWN_HOSTS_SECRET,
    SSH_KEY_SECRET,
    TOKEN_SECRET,
    GitCredentials,
    basic_auth,
    redact,
)
from bedrock.pipelines.git.errors import GitError


def git_timeout() -> float:
    return float(getattr(settings, "BEDROCK_GIT_TIMEOUT", 120))


class Session:
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
                ("http.extraHeader", f"Authorization: Basic {basic_auth(credentials.token)}")
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
        timeout: float | None = None,
    ) -> tuple[int, bytes, str]:
        """Run ``git <args>`` with the timeout (default BEDROCK_GIT_TIMEOUT); return (status,
        stdout, stderr)."""
        full_env = dict(self.env)
        if self.git_dir is not None:
            full_env["GIT_DIR"] = str(self.git_dir)
        full_env.update(env or {})
        limit = git_timeout() if timeout is None else timeout
        runner = Git(str(Path(settings.BEDROCK_GIT_CACHE)))
        command = [Git.GIT_PYTHON_GIT_EXECUTABLE or "git", *args]
        failure: GitError | None = None
        try:
            status, stdout, stderr = runner.execute(
                command,
                kill_after_timeout=limit,
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
            failure = self.error(action, exc.status, raw, timeout=timeout)
        if failure is not None:
            # Raised outside the except block so the unscrubbed GitCommandError is not kept as
            # __context__, where a traceback or error reporter could still print it.
            raise failure
        if _timed_out(status, stderr):
            # Even where a failure is expected (check=False), a timeout is never "not found".
            raise self.error(action, status, str(stderr), timeout=timeout)
        return int(status), bytes(stdout), str(stderr)

    def error(
        self, action: str, status: object, stderr: str, *, timeout: float | None = None
    ) -> GitError:
        stderr = redact(stderr, self.credentials)
        url = redact(self.url, self.credentials)
        if _timed_out(status, stderr):
            setting = "" if timeout is not None else " (BEDROCK_GIT_TIMEOUT)"
            seconds = git_timeout() if timeout is None else timeout
            return GitError(
                f"{action} {url} timed out after {seconds:g} seconds{setting}; check "
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
def open_session(url: str, credentials: GitCredentials | None) -> Iterator[Session]:
    tmpdir = Path(tempfile.mkdtemp(prefix="bedrock-git-"))  # mode 0700
    try:
        yield Session(url, credentials, tmpdir)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
