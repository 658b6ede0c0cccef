"""bedrock.pipelines.git against real repositories, a real smart-HTTP server and real sockets."""

from __future__ import annotations

import base64
import datetime
import fcntl
import ipaddress
import os
import socket
import ssl
import stat
import subprocess
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, unquote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bedrock.pipelines.git import (
    GitCredentials,
    GitError,
    checkout,
    read_file,
    redact,
    resolve_ref,
    validate_ref,
    validate_repo_url,
)

TOKEN = "tok_5ecr3t_Zq9"
KEY = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAAkeybody\n"
    "-----END OPENSSH PRIVATE KEY-----"
)
GIT_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
}


def git(cwd: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env={**os.environ, **GIT_ENV},
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


@dataclass
class Origin:
    path: Path
    first: str = ""
    second: str = ""
    shas: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"file://{self.path}"

    def commit(self, files: dict[str, str], message: str) -> str:
        for name, text in files.items():
            target = self.path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        git(self.path, "add", "--all")
        git(self.path, "commit", "--quiet", "-m", message)
        sha = git(self.path, "rev-parse", "HEAD")
        self.shas.append(sha)
        return sha


@pytest.fixture(autouse=True)
def git_settings(settings, tmp_path: Path) -> Path:
    settings.BEDROCK_GIT_CACHE = tmp_path / "cache"
    settings.BEDROCK_ALLOW_LOCAL_REPOS = True
    settings.BEDROCK_GIT_TIMEOUT = 30
    return tmp_path / "cache"


@pytest.fixture
def origin(tmp_path: Path) -> Origin:
    """main: two commits (bedrock.hcl changes); tag v1 (lightweight) and v1-notes (annotated)
    on the first."""
    path = tmp_path / "origin"
    path.mkdir()
    git(path, "init", "--quiet", "--initial-branch=main")
    repo = Origin(path)
    repo.first = repo.commit(
        {"bedrock.hcl": 'train { image = "v1" }\n', "src/train.py": "print('v1')\n"}, "first"
    )
    git(path, "tag", "v1")
    git(path, "tag", "-a", "v1-notes", "-m", "annotated")
    repo.second = repo.commit({"bedrock.hcl": 'train { image = "v2" }\n'}, "second")
    return repo


def cache_files(cache: Path) -> Iterator[Path]:
    return (p for p in cache.rglob("*") if p.is_file())


# --- Resolving refs ----------------------------------------------------------------------------


def test_resolve_ref_returns_the_head_of_a_branch(origin: Origin) -> None:
    assert resolve_ref(origin.url, "main", cache_key="p1") == origin.second


def test_resolve_ref_returns_the_commit_of_a_lightweight_tag(origin: Origin) -> None:
    assert resolve_ref(origin.url, "v1", cache_key="p1") == origin.first


def test_resolve_ref_peels_an_annotated_tag_to_its_commit(origin: Origin) -> None:
    tag_object = git(origin.path, "rev-parse", "v1-notes")
    assert tag_object != origin.first
    assert resolve_ref(origin.url, "v1-notes", cache_key="p1") == origin.first


def test_resolve_ref_accepts_fully_qualified_ref_names(origin: Origin) -> None:
    assert resolve_ref(origin.url, "refs/heads/main", cache_key="p1") == origin.second
    assert resolve_ref(origin.url, "refs/tags/v1", cache_key="p1") == origin.first


def test_resolve_ref_returns_a_full_sha_unchanged(origin: Origin) -> None:
    assert resolve_ref(origin.url, origin.first, cache_key="p1") == origin.first


def test_resolve_ref_expands_an_abbreviated_sha(origin: Origin) -> None:
    assert resolve_ref(origin.url, origin.first[:7], cache_key="p1") == origin.first
    assert resolve_ref(origin.url, origin.first[:12].upper(), cache_key="p1") == origin.first


def test_resolve_ref_fetches_a_commit_that_no_branch_or_tag_reaches(origin: Origin) -> None:
    resolve_ref(origin.url, "main", cache_key="p1")
    git(origin.path, "checkout", "--quiet", "-b", "scratch")
    orphan = origin.commit({"scratch.txt": "x\n"}, "scratch")
    git(origin.path, "checkout", "--quiet", "main")
    git(origin.path, "branch", "--quiet", "-D", "scratch")

    assert resolve_ref(origin.url, orphan, cache_key="p1") == orphan


def test_resolve_ref_names_the_missing_ref_and_the_repository(origin: Origin) -> None:
    with pytest.raises(GitError) as excinfo:
        resolve_ref(origin.url, "no-such-branch", cache_key="p1")
    assert f"ref 'no-such-branch' not found in {origin.url}" in str(excinfo.value)


def test_resolve_ref_reports_an_unknown_sha_as_not_found(origin: Origin) -> None:
    with pytest.raises(GitError, match=r"ref '0{40}' not found in"):
        resolve_ref(origin.url, "0" * 40, cache_key="p1")


def test_resolve_ref_reports_a_missing_repository(tmp_path: Path) -> None:
    with pytest.raises(GitError, match="there is no repository there"):
        resolve_ref(f"file://{tmp_path}/nothing", "main", cache_key="p1")


def test_resolve_ref_asks_to_qualify_a_name_that_is_both_branch_and_tag(origin: Origin) -> None:
    git(origin.path, "branch", "v1", "main")  # branch v1 at second, tag v1 at first

    with pytest.raises(GitError, match=r"both a branch and a tag.*refs/heads/v1"):
        resolve_ref(origin.url, "v1", cache_key="p1")
    assert resolve_ref(origin.url, "refs/heads/v1", cache_key="p1") == origin.second


# --- Reading files -----------------------------------------------------------------------------


def test_read_file_reads_an_older_commit_after_the_branch_moved(origin: Origin) -> None:
    assert resolve_ref(origin.url, "main", cache_key="p1") == origin.second

    text = read_file(origin.url, origin.first, "bedrock.hcl", cache_key="p1")

    assert text == 'train { image = "v1" }\n'
    assert read_file(origin.url, origin.second, "./bedrock.hcl", cache_key="p1") == (
        'train { image = "v2" }\n'
    )
    assert read_file(origin.url, origin.first, "src/train.py", cache_key="p1") == "print('v1')\n"


def test_read_file_names_the_missing_file_and_the_commit(origin: Origin) -> None:
    with pytest.raises(GitError) as excinfo:
        read_file(origin.url, origin.first, "ml/bedrock.hcl", cache_key="p1")
    assert str(excinfo.value) == f"ml/bedrock.hcl not found at commit {origin.first[:7]}."


def test_read_file_refuses_a_directory(origin: Origin) -> None:
    with pytest.raises(GitError, match="src is a directory at commit"):
        read_file(origin.url, origin.first, "src", cache_key="p1")


def test_read_file_refuses_a_path_outside_the_repository(origin: Origin) -> None:
    with pytest.raises(GitError, match="inside the repository"):
        read_file(origin.url, origin.first, "../secrets.txt", cache_key="p1")


def test_read_file_refuses_text_that_is_not_utf8(origin: Origin) -> None:
    (origin.path / "latin1.txt").write_bytes("café".encode("latin-1"))
    sha = origin.commit({}, "latin-1")
    with pytest.raises(GitError, match=r"latin1\.txt at commit \w+ is not UTF-8 text"):
        read_file(origin.url, sha, "latin1.txt", cache_key="p1")


# --- The cache ---------------------------------------------------------------------------------


def test_a_cached_commit_is_resolved_and_read_without_the_network(origin: Origin) -> None:
    resolve_ref(origin.url, "main", cache_key="p1")
    origin.path.rename(origin.path.with_name("gone"))  # the "network" is now unreachable

    assert resolve_ref(origin.url, origin.first, cache_key="p1") == origin.first
    assert resolve_ref(origin.url, origin.second[:8], cache_key="p1") == origin.second
    assert "v1" in read_file(origin.url, origin.first, "bedrock.hcl", cache_key="p1")
    # A branch can move, so it is always looked up on the server, which is gone.
    with pytest.raises(GitError, match="no repository there"):
        resolve_ref(origin.url, "main", cache_key="p1")


def count_objects(cache: Path) -> dict[str, int]:
    out = git(cache, "count-objects", "-v")
    return {k: int(v) for k, v in (line.split(": ") for line in out.splitlines())}


def test_a_second_fetch_transfers_only_the_new_commit(origin: Origin, git_settings: Path) -> None:
    # Enough history that the first fetch is kept as a pack (git unpacks fetches of fewer than
    # 100 objects into loose objects), so the second fetch's objects can be counted apart.
    for i in range(40):
        origin.commit({f"data/{i}.txt": f"{i}\n"}, f"commit {i}")
    assert resolve_ref(origin.url, "main", cache_key="p1") == origin.shas[-1]
    before = count_objects(git_settings / "p1")
    assert before["count"] == 0 and before["in-pack"] > 100

    newest = origin.commit({"bedrock.hcl": 'train { image = "v3" }\n'}, "newest")

    assert resolve_ref(origin.url, "main", cache_key="p1") == newest
    after = count_objects(git_settings / "p1")
    # The new commit, its root tree and the changed bedrock.hcl: nothing already cached.
    assert after["count"] == 3
    assert after["in-pack"] == before["in-pack"]
    assert read_file(origin.url, newest, "bedrock.hcl", cache_key="p1").endswith('"v3" }\n')


def test_a_resolved_commit_survives_a_force_push_and_gc(origin: Origin, git_settings: Path) -> None:
    assert resolve_ref(origin.url, "main", cache_key="p1") == origin.second
    git(origin.path, "reset", "--quiet", "--hard", origin.first)
    git(origin.path, "reflog", "expire", "--expire=now", "--all")
    git(origin.path, "gc", "--quiet", "--prune=now")

    assert resolve_ref(origin.url, "main", cache_key="p1") == origin.first
    git(git_settings / "p1", "gc", "--quiet", "--prune=now")  # as git's auto gc would, in time
    assert "v2" in read_file(origin.url, origin.second, "bedrock.hcl", cache_key="p1")


def test_a_changed_url_starts_a_fresh_cache(origin: Origin, tmp_path: Path) -> None:
    other = Origin(tmp_path / "other")
    other.path.mkdir()
    git(other.path, "init", "--quiet", "--initial-branch=main")
    other.commit({"bedrock.hcl": "other\n"}, "other")
    resolve_ref(origin.url, "main", cache_key="p1")

    with pytest.raises(GitError, match="not found"):
        resolve_ref(other.url, origin.first, cache_key="p1")
    assert resolve_ref(other.url, "main", cache_key="p1") == other.shas[0]


def test_a_cache_in_use_by_another_worker_is_waited_for(origin: Origin, git_settings: Path) -> None:
    git_settings.mkdir(parents=True)
    holder = os.open(git_settings / "p1.lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(holder, fcntl.LOCK_EX)
    results: list[str] = []
    worker = threading.Thread(
        target=lambda: results.append(resolve_ref(origin.url, "main", cache_key="p1"))
    )
    worker.start()
    time.sleep(1.0)
    assert worker.is_alive() and not results

    os.close(holder)
    worker.join(timeout=30)
    assert results == [origin.second]


def test_an_unsafe_cache_key_is_refused(origin: Origin) -> None:
    with pytest.raises(ValueError, match="single path component"):
        resolve_ref(origin.url, "main", cache_key="../elsewhere")


# --- Checkout ----------------------------------------------------------------------------------


def test_checkout_writes_the_files_of_the_commit_and_no_git_metadata(
    origin: Origin, tmp_path: Path
) -> None:
    (origin.path / "run.sh").write_text("#!/bin/sh\n")
    (origin.path / "run.sh").chmod(0o755)
    third = origin.commit({}, "script")
    dest = tmp_path / "work" / "app"

    assert checkout(origin.url, origin.first, dest, cache_key="p1") == dest
    assert (dest / "bedrock.hcl").read_text() == 'train { image = "v1" }\n'
    assert (dest / "src" / "train.py").read_text() == "print('v1')\n"
    assert sorted(p.name for p in dest.iterdir()) == ["bedrock.hcl", "src"]

    later = tmp_path / "later"
    checkout(origin.url, third, later, cache_key="p1")
    assert (later / "run.sh").stat().st_mode & stat.S_IXUSR
    assert not (later / ".git").exists()


def test_checkout_refuses_a_destination_that_is_not_empty(origin: Origin, tmp_path: Path) -> None:
    dest = tmp_path / "app"
    dest.mkdir()
    (dest / "leftover").write_text("x")
    with pytest.raises(ValueError, match="empty"):
        checkout(origin.url, origin.first, dest, cache_key="p1")


# --- Validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/acme/models.git",
        "https://[::1]:8443/acme/models.git",
        "ssh://git@github.com/acme/models.git",
        "ssh://git@[::1]:2222/acme/models.git",
        "git@github.com:acme/models.git",
    ],
)
def test_remote_urls_are_accepted(url: str) -> None:
    validate_repo_url(url, allow_local=False)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ext::sh -c id", "transport helper syntax 'ext::'"),
        ("ext::ssh", "transport helper syntax 'ext::'"),
        ("fd::3", "transport helper syntax 'fd::'"),
        ("-uhelp", "must not begin with '-'"),
        ("--upload-pack=touch", "must not begin with '-'"),
        ("ssh://-oProxyCommand=id/repo", "must not begin with '-'"),
        ("git@-oProxyCommand=id:repo", "must not begin with '-'"),
        ("git@host:-repo", "must not begin with '-'"),
        ("http://example.com/acme/models.git", "unencrypted; use the https:// URL"),
        ("git://example.com/acme/models.git", "unencrypted"),
        ("ftp://example.com/acme/models.git", "'ftp://' is not supported"),
        ("ext://example.com/x", "'ext://' is not supported"),
        ("https://example.com/acme models.git", "spaces or control characters"),
        ("https://example.com/acme/models.git\n", "spaces or control characters"),
        ("https://example.com", "no repository path"),
        ("relative/path", "not a repository URL git can fetch"),
    ],
)
def test_unsafe_or_unsupported_urls_are_refused_with_the_reason(url: str, reason: str) -> None:
    with pytest.raises(GitError) as excinfo:
        validate_repo_url(url, allow_local=True)
    assert reason in str(excinfo.value)


@pytest.mark.parametrize(
    "url",
    [
        f"https://x-access-token:{TOKEN}@github.com/acme/models.git",
        f"https://{TOKEN}@github.com/acme/models.git",
        f"git:{TOKEN}@github.com:acme/models.git",
    ],
)
def test_credentials_in_the_url_are_refused_without_repeating_them(url: str) -> None:
    with pytest.raises(GitError) as excinfo:
        validate_repo_url(url)
    message = str(excinfo.value)
    assert "contains credentials" in message
    assert TOKEN not in message


def test_https_token_in_url_points_to_the_token_secret() -> None:
    with pytest.raises(GitError, match="pipeline secret BEDROCK_GIT_TOKEN instead"):
        validate_repo_url("https://user:pw@github.com/acme/models.git")


@pytest.mark.parametrize("url", ["file:///srv/repo", "/srv/repo"])
def test_local_repositories_are_refused_unless_allowed(url: str) -> None:
    validate_repo_url(url, allow_local=True)
    with pytest.raises(GitError, match="BEDROCK_ALLOW_LOCAL_REPOS is off"):
        validate_repo_url(url, allow_local=False)


def test_local_repositories_follow_the_site_setting(origin: Origin, settings) -> None:
    settings.BEDROCK_ALLOW_LOCAL_REPOS = False
    with pytest.raises(GitError, match="BEDROCK_ALLOW_LOCAL_REPOS is off"):
        resolve_ref(origin.url, "main", cache_key="p1")
    with pytest.raises(GitError, match="BEDROCK_ALLOW_LOCAL_REPOS is off"):
        resolve_ref(str(origin.path), "main", cache_key="p1")


@pytest.mark.parametrize(
    "ref",
    ["main", "feature/new-model", "v1.2.3", "refs/heads/main", "a" * 40, "release-2024.01"],
)
def test_valid_refs_are_accepted(ref: str) -> None:
    validate_ref(ref)


@pytest.mark.parametrize(
    ("ref", "reason"),
    [
        ("", "empty"),
        ("-x", "must not begin with '-'"),
        ("--upload-pack=touch", "must not begin with '-'"),
        ("main..other", "'..'"),
        ("main@{1}", "'@{'"),
        ("@", "'@' alone"),
        ("my branch", "spaces or control characters"),
        ("main\x01", "spaces or control characters"),
        ("main~1", "'~'"),
        ("main^", "'^'"),
        ("a:b", "':'"),
        ("a?b", "'?'"),
        ("a*b", "'*'"),
        ("a[b", "'['"),
        ("a\\b", "'\\'"),
        ("feature/", "end with '/'"),
        ("/feature", "begin or end with '/'"),
        ("a//b", "'//'"),
        ("main.lock", "'.lock'"),
        ("feature/.hidden", "begin with '.'"),
        ("main.", "end with '.'"),
    ],
)
def test_invalid_refs_are_refused_with_the_reason(ref: str, reason: str) -> None:
    with pytest.raises(GitError) as excinfo:
        validate_ref(ref)
    assert reason in str(excinfo.value)


def test_an_option_like_ref_is_refused_before_any_git_runs(
    origin: Origin, git_settings: Path
) -> None:
    with pytest.raises(GitError, match="must not begin with '-'"):
        resolve_ref(origin.url, "--upload-pack=touch", cache_key="p1")
    assert not git_settings.exists()


# --- Credentials -------------------------------------------------------------------------------


def test_credentials_repr_never_shows_values() -> None:
    creds = GitCredentials(token=TOKEN, ssh_key=KEY, known_hosts="host ssh-ed25519 AAAA")
    for text in (repr(creds), str(creds), f"{creds}", repr([creds])):
        assert TOKEN not in text and "keybody" not in text and "AAAA" not in text
    assert "token=<set>" in repr(creds)


def test_credentials_come_from_the_reserved_secret_names() -> None:
    assert GitCredentials.from_secrets({"OTHER": "x", "BEDROCK_GIT_TOKEN": ""}) is None
    creds = GitCredentials.from_secrets(
        {"BEDROCK_GIT_TOKEN": f" {TOKEN}\n", "BEDROCK_GIT_KNOWN_HOSTS": "h ssh-ed25519 AAAA"}
    )
    assert creds == GitCredentials(token=TOKEN, known_hosts="h ssh-ed25519 AAAA")


def test_redact_removes_the_token_in_every_form() -> None:
    creds = GitCredentials(token=TOKEN, ssh_key=KEY)
    basic = base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
    text = redact(
        f"a {TOKEN} b Basic {basic} c https://u:{TOKEN}x@h/r d Authorization: Bearer zzz {KEY}",
        creds,
    )
    assert TOKEN not in text and basic not in text and "zzz" not in text
    assert "keybody" not in text


# --- A private repository over HTTPS -----------------------------------------------------------


def _pkt(data: bytes) -> bytes:
    return f"{len(data) + 4:04x}".encode() + data


class _GitHandler(BaseHTTPRequestHandler):
    server: _GitServer

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0], 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            self.rfile.readline()
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _serve(self) -> None:
        auth = self.headers.get("Authorization")
        self.server.seen_auth.append(auth)
        body = self._body()
        if self.server.echo_credentials:
            # A misbehaving server that repeats the credentials back in its error message.
            payload = _pkt(b"# service=git-upload-pack\n") + b"0000" + _pkt(f"ERR {auth}".encode())
            self._reply(200, "application/x-git-upload-pack-advertisement", payload)
            return
        if auth != "Basic " + base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode():
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        path, _, query = self.path.partition("?")
        env = {
            "PATH": os.environ["PATH"],
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_PROJECT_ROOT": str(self.server.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": unquote(path),
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_ADDR": "127.0.0.1",
            "REMOTE_USER": "x-access-token",
        }
        if self.headers.get("Git-Protocol"):
            env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
        if self.headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
        out = subprocess.run(
            ["git", "http-backend"], input=body, env=env, capture_output=True, timeout=30
        ).stdout
        sep = b"\r\n\r\n" if b"\r\n\r\n" in out else b"\n\n"
        head, _, payload = out.partition(sep)
        headers = dict(line.split(": ", 1) for line in head.decode().splitlines() if ": " in line)
        status = int(headers.pop("Status", "200").split()[0])
        self._reply(status, headers.pop("Content-Type", "text/plain"), payload, headers)

    def _reply(
        self, status: int, content_type: str, payload: bytes, extra: dict | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class _GitServer(ThreadingHTTPServer):
    daemon_threads = True
    root: Path
    seen_auth: list[str | None]
    echo_credentials: bool = False


def _self_signed_cert(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture
def https_origin(
    origin: Origin, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, _GitServer]]:
    """``origin`` served by git http-backend over HTTPS, readable only with TOKEN."""
    served = tmp_path / "served"
    served.mkdir()
    subprocess.run(
        ["git", "clone", "--quiet", "--bare", str(origin.path), str(served / "models.git")],
        env={**os.environ, **GIT_ENV},
        check=True,
    )
    cert, key = _self_signed_cert(tmp_path)
    server = _GitServer(("127.0.0.1", 0), _GitHandler)
    server.root, server.seen_auth = served, []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    monkeypatch.setenv("GIT_SSL_CAINFO", str(cert))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://localhost:{server.server_address[1]}/models.git", server
    finally:
        server.shutdown()
        server.server_close()


def test_a_token_is_sent_as_a_header_and_stored_nowhere(
    https_origin: tuple[str, _GitServer], origin: Origin, git_settings: Path
) -> None:
    url, server = https_origin
    creds = GitCredentials.from_secrets({"BEDROCK_GIT_TOKEN": TOKEN})

    assert resolve_ref(url, "main", cache_key="p1", credentials=creds) == origin.second
    assert read_file(url, origin.first, "bedrock.hcl", cache_key="p1", credentials=creds)

    assert server.seen_auth and all(a and a.startswith("Basic ") for a in server.seen_auth)
    basic = base64.b64encode(f"x-access-token:{TOKEN}".encode())
    files = list(cache_files(git_settings))
    assert any(p.name == "config" for p in files)
    for path in files:
        data = path.read_bytes()
        assert TOKEN.encode() not in data and basic not in data, path
    assert "extraheader" not in (git_settings / "p1" / "config").read_text().lower()


def test_a_private_repository_without_a_token_names_the_secret_to_set(
    https_origin: tuple[str, _GitServer],
) -> None:
    url, _ = https_origin
    with pytest.raises(GitError) as excinfo:
        resolve_ref(url, "main", cache_key="p1")
    message = str(excinfo.value)
    assert "authentication is required" in message
    assert "put a token with read access in the pipeline secret BEDROCK_GIT_TOKEN" in message


def test_a_refused_token_is_reported_without_repeating_it(
    https_origin: tuple[str, _GitServer],
) -> None:
    url, server = https_origin
    wrong = "tok_wrong_Qx7"
    with pytest.raises(GitError) as excinfo:
        resolve_ref(url, "main", cache_key="p1", credentials=GitCredentials(token=wrong))
    message = str(excinfo.value)
    assert "the token in the pipeline secret BEDROCK_GIT_TOKEN was refused" in message
    assert wrong not in message
    assert server.seen_auth  # the wrong token was sent, and refused


def test_git_error_text_is_scrubbed_of_credentials_git_printed(
    https_origin: tuple[str, _GitServer],
) -> None:
    url, server = https_origin
    server.echo_credentials = True
    basic = base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
    with pytest.raises(GitError) as excinfo:
        resolve_ref(url, "main", cache_key="p1", credentials=GitCredentials(token=TOKEN))
    message = str(excinfo.value)
    assert "remote error" in message  # git did print the server's message...
    assert basic not in message and TOKEN not in message  # ...but not the credential
    # Nor in a logged traceback: the unscrubbed GitCommandError is not chained to it.
    logged = "".join(traceback.format_exception(excinfo.value))
    assert "remote error" in logged and basic not in logged and TOKEN not in logged
    assert excinfo.value.__context__ is None


# --- SSH ---------------------------------------------------------------------------------------


def test_an_ssh_key_reaches_ssh_in_a_private_file_that_is_removed_afterwards(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stand-in ssh client (there is no SSH server here) that records what git gave it.
    bin_dir, record = tmp_path / "bin", tmp_path / "ssh-call"
    bin_dir.mkdir()
    fake_ssh = bin_dir / "ssh"
    fake_ssh.write_text(
        "#!/bin/sh\n"
        f'echo "$@" > {record}\n'
        "while [ $# -gt 0 ]; do\n"
        '  case "$1" in\n'
        f'    -i) stat -c %a "$2" >> {record}; cat "$2" >> {record}; shift ;;\n'
        f'    UserKnownHostsFile=*) cat "${{1#UserKnownHostsFile=}}" >> {record} ;;\n'
        "  esac\n"
        "  shift\n"
        "done\n"
        f'echo "Permission denied (publickey). {KEY}" >&2\n'
        "exit 255\n"
    )
    fake_ssh.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    creds = GitCredentials(ssh_key=KEY, known_hosts="example.com ssh-ed25519 AAAAhostkey")

    with pytest.raises(GitError) as excinfo:
        resolve_ref("git@example.com:acme/models.git", "main", cache_key="p1", credentials=creds)

    call = record.read_text()
    for option in (
        "IdentitiesOnly=yes",
        "StrictHostKeyChecking=yes",
        "BatchMode=yes",
        "ConnectTimeout=15",
    ):
        assert option in call
    assert "\n600\n" in call and "keybody" in call and "AAAAhostkey" in call
    assert list((tmp_path / "tmp").iterdir()) == []  # key and known_hosts are gone
    message = str(excinfo.value)
    assert "BEDROCK_GIT_SSH_KEY" in message and "keybody" not in message


# --- Timeouts ----------------------------------------------------------------------------------


@pytest.fixture
def hung_server() -> Iterator[int]:
    """A TCP port that accepts connections and never says a word."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except (TimeoutError, OSError):
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        listener.close()


@pytest.mark.parametrize("scheme", ["https", "ssh"])
def test_a_hung_server_is_abandoned_after_the_timeout(
    hung_server: int, settings, scheme: str
) -> None:
    settings.BEDROCK_GIT_TIMEOUT = 2
    url = f"{scheme}://git@127.0.0.1:{hung_server}/models.git"
    if scheme == "https":
        url = url.replace("git@", "")
    started = time.monotonic()

    with pytest.raises(GitError) as excinfo:
        resolve_ref(url, "main", cache_key="p1")

    assert time.monotonic() - started < 10
    assert "timed out after 2 seconds (BEDROCK_GIT_TIMEOUT)" in str(excinfo.value)


def test_redact_masks_the_forms_a_log_masks_too() -> None:
    token = "ghp_a+b/c=d1234"
    creds = GitCredentials(token=token)
    text = redact(f"fatal: https://h/{quote(token, safe='')} and {token.encode().hex()}", creds)

    assert quote(token, safe="") not in text and token.encode().hex() not in text
