"""Steps and users acting as attackers would: every case must end in a clear error, with nothing
half-written and no run left in a state that is not true.

The sections follow the threat they answer; each case names the behaviour it holds.
"""

from __future__ import annotations

import pytest

# --- 1. A step sees its own run only -----------------------------------------------------------


# --- 2. What a run may set in a step's environment --------------------------------------------


# --- 3. Bounded work ---------------------------------------------------------------------------
# Each limit is refused up front, naming the setting; nothing half-made is left behind.


def _limits_gql(user, query: str, **variables):
    from django.test import Client

    client = Client()
    if user is not None:
        client.force_login(user)
    return client.post(
        "/graphql", {"query": query, "variables": variables}, content_type="application/json"
    )


_VALIDATE = """mutation($text: String!) { validateConfig(text: $text) { ... on ConfigCheck {
    valid problems { path message line column severity } } } }"""


def _hostile_hcl(kind: str) -> str:
    if kind == "nested lists":
        return "a = " + "[" * 100_000 + "]" * 100_000 + "\n"
    if kind == "deep braces":
        return "a " + "b {" * 50_000 + "}" * 50_000 + "\n"
    if kind == "many tokens":
        return "a = [" + ",".join(["1"] * 100_000) + "]\n"
    return "# " + "x" * 300_000 + "\n"  # oversized, though only a comment


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("kind", "setting", "where"),
    [
        ("nested lists", "BEDROCK_MAX_CONFIG_DEPTH", (1, 37)),
        ("deep braces", "BEDROCK_MAX_CONFIG_DEPTH", (1, 101)),
        ("many tokens", "BEDROCK_MAX_CONFIG_TOKENS", (1, 10_003)),
        ("oversized", "BEDROCK_MAX_CONFIG_BYTES", (None, None)),
    ],
)
def test_validate_config_answers_a_hostile_document_within_a_second_naming_the_limit(
    kind, setting, where
):
    import time

    from tests import factories

    outsider = factories.user("limits-outsider")  # a member of no project may call it
    text = _hostile_hcl(kind)
    assert len(text) >= 200_000
    started = time.process_time()
    response = _limits_gql(outsider, _VALIDATE, text=text)
    took = time.process_time() - started
    assert response.status_code == 200
    check = response.json()["data"]["validateConfig"]
    assert took < 1.0, f"{kind}: {took:.2f} s of CPU"
    assert check["valid"] is False
    [problem] = check["problems"]
    assert setting in problem["message"]
    assert (problem["line"], problem["column"]) == where


def _limits_step(name: str, extra: str = "") -> str:
    script = 'script = [{sh = ["true"]}]'
    return f'step "{name}" {{\n image = "python:3.11-slim"\n {script}\n{extra}}}\n'


_BIG = "1" * 101
# (what step "a" adds, the key refused under train.step.a, what the message says)
_OVER_LIMITS = {
    "retries": (
        "retry { limit = 100000 }",
        "retry.limit",
        "100000 is more than the 10 retries allowed",
    ),
    "retries-101-digits": (f"retry {{ limit = {_BIG} }}", "retry.limit", "(BEDROCK_MAX_RETRIES)"),
    "retries-5000-digits": (
        f'retry {{ limit = "{"9" * 5000}" }}',
        "retry.limit",
        "…9999999999 (5000 characters) is more than the 10 retries allowed",
    ),
    "cpu": (f'resources {{ cpu = "{_BIG}" }}', "resources.cpu", "(BEDROCK_MAX_STEP_CPUS)"),
    "memory": (
        f'resources {{ memory = "{_BIG}Gi" }}',
        "resources.memory",
        "is more than the 16Ti a step may ask for (BEDROCK_MAX_STEP_MEMORY)",
    ),
    "gpu": (
        f'resources {{ gpu = "{_BIG}" }}',
        "resources.gpu",
        "64 GPUs allowed (BEDROCK_MAX_STEP_GPUS)",
    ),
}


def _only_error(body: str):
    from bedrock.pipelines import spec

    errors = [p for p in spec.check(f'version = "1.0"\ntrain {{\n{body}}}\n') if p.is_error]
    assert len(errors) == 1, errors
    assert errors[0].line is not None
    return errors[0]


def test_more_steps_in_a_stanza_than_the_limit_is_a_spec_error_at_the_first_extra_step():
    error = _only_error("".join(_limits_step(f"s{i}") for i in range(101)))
    assert error.path == "train.step.s100"
    assert error.message == (
        "train has 101 steps; at most 100 are allowed in a stanza (BEDROCK_MAX_STEPS)"
    )


@pytest.mark.parametrize("case", _OVER_LIMITS)
def test_retries_and_resources_over_their_limits_are_spec_errors_naming_key_and_limit(case):
    extra, key, wanted = _OVER_LIMITS[case]
    error = _only_error(_limits_step("a", extra + "\n"))
    assert error.path == f"train.step.a.{key}"
    assert wanted in error.message


@pytest.mark.django_db
def test_a_run_asking_for_100000_retries_is_rejected_before_any_step_exists(tmp_path):
    from bedrock.runs.models import RunStatus
    from bedrock.runs.services import run_create
    from tests.repos import hcl, step
    from tests.runflow import pipeline_for, repo_with

    text = hcl("train", step("a", "true", extra="retry { limit = 100000 }"))
    run = run_create(actor=None, pipeline=pipeline_for(repo_with(tmp_path, text)))
    assert run.status == RunStatus.REJECTED
    assert "BEDROCK_MAX_RETRIES" in run.failure_reason
    assert "retry.limit" in run.failure_reason
    assert not run.steps.exists()


@pytest.mark.django_db
def test_a_graphql_body_over_the_limit_is_a_graphql_error_not_an_html_page(settings):
    settings.BEDROCK_MAX_REQUEST_BYTES = 10_000
    response = _limits_gql(None, _VALIDATE, text="x" * 20_000)
    assert response.status_code == 413
    assert response["Content-Type"] == "application/json"
    [error] = response.json()["errors"]
    assert "request body is larger than 10000 bytes" in error["message"]
    assert "BEDROCK_MAX_REQUEST_BYTES" in error["message"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "cursor",
    [
        "!!!",
        "bm90IGEgY3Vyc29y",  # base64 of "not a cursor"
        "YXJyYXljb25uZWN0aW9uOng=",  # "arrayconnection:x"
        "YXJyYXljb25uZWN0aW9uOjk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5",  # an offset past SQLite's
    ],
)
def test_a_malformed_after_cursor_is_a_validation_error(cursor):
    from tests import factories

    query = (
        "query($after: String) { pipelines(first: 1, after: $after) { edges { node { name } } } }"
    )
    response = _limits_gql(factories.user("limits-reader"), query, after=cursor)
    body = response.json()
    assert body["data"] is None
    [error] = body["errors"]
    assert error["message"].startswith(f"after: {cursor!r} is not a cursor this API returned")
    assert "expected to contain" not in error["message"]


@pytest.mark.django_db
def test_a_document_of_several_operations_needs_an_operation_name():
    from tests import factories

    user = factories.user("limits-multi")
    document = "query A { projects { totalCount } } query B { pipelines { totalCount } }"
    body = _limits_gql(user, document).json()
    assert body["data"] is None
    assert body["errors"][0]["message"] == (
        "The document holds 2 operations (A, B); say which one to run with operationName."
    )
    from django.test import Client

    client = Client()
    client.force_login(user)
    unknown = client.post(
        "/graphql", {"query": document, "operationName": "C"}, content_type="application/json"
    )
    assert unknown.status_code == 400
    assert unknown.json() == {"errors": [{"message": 'Unknown operation named "C".'}]}


# Archives. The hostile ZIPs are written here byte by byte: a bomb's deflate stream is one
# full-flushed segment of zeros repeated, so a 2 GiB entry costs the test a single megabyte of
# compression.


def _deflated_zeros(size: int) -> tuple[bytes, int]:
    """A raw deflate stream of ``size`` zero bytes (a multiple of 1 MiB), and its CRC-32."""
    import zlib

    from bedrock.models.zipstream import crc32_combine

    piece = 1 << 20
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    segment = compressor.compress(bytes(piece)) + compressor.flush(zlib.Z_FULL_FLUSH)
    final = compressor.flush()
    crc, one = 0, zlib.crc32(bytes(piece))
    for _ in range(size // piece):
        crc = crc32_combine(crc, one, piece)
    return segment * (size // piece) + final, crc


def _raw_zip(entries: list[tuple[str, bytes, int, int, int]], declared: int | None = None) -> bytes:
    """A ZIP of (name, data as stored, method, CRC-32, uncompressed size) entries; its end record
    says it holds ``declared`` entries, when given, instead of the truth."""
    import struct

    body, directory = bytearray(), bytearray()
    for name, data, method, crc, size in entries:
        encoded = name.encode()
        offset = len(body)
        header = (20, 0x800, method, 0, 0x21, crc, len(data), size, len(encoded))
        body += struct.pack("<IHHHHHIIIHH", 0x04034B50, *header, 0) + encoded + data
        directory += struct.pack(
            "<IHHHHHHIIIHHHHHII", 0x02014B50, 0x031E, *header, 0, 0, 0, 0, 0o100644 << 16, offset
        )
        directory += encoded
    count, zip64 = len(entries) if declared is None else declared, b""
    if count > 0xFFFF:  # the count needs ZIP64's end records
        at = len(body) + len(directory)
        zip64 = struct.pack(
            "<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, count, count, len(directory), len(body)
        ) + struct.pack("<IIQI", 0x07064B50, 0, at, 1)
        count = 0xFFFF
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, count, count, len(directory), len(body), 0)
    return bytes(body + directory + zip64 + end)


def _bomb() -> bytes:
    """2 MB that expand to 2 GiB, in one entry."""
    import zipfile

    data, crc = _deflated_zeros(2 << 30)
    return _raw_zip([("zeros.bin", data, zipfile.ZIP_DEFLATED, crc, 2 << 30)])


def _many_entries(count: int, declared: int | None = None) -> bytes:
    import zipfile
    import zlib

    crc = zlib.crc32(b"x")
    entries = [(f"f{i:05}", b"x", zipfile.ZIP_STORED, crc, 1) for i in range(count)]
    return _raw_zip(entries, declared)


def _deep_tree(levels: int) -> bytes:
    import zipfile
    import zlib

    name = "a/" * levels + "leaf.txt"
    return _raw_zip([(name, b"x", zipfile.ZIP_STORED, zlib.crc32(b"x"), 1)])


_HOSTILE_ARCHIVES = {
    # name: (archive maker, what the refusal says)
    "bomb": (_bomb, "more than 1000:1 (BEDROCK_MAX_ARCHIVE_RATIO"),
    "100000 entries": (
        lambda: _many_entries(100_000),
        "more than 50000 entries; at most 50000 are unpacked (BEDROCK_MAX_ARCHIVE_ENTRIES)",
    ),
    "2000 levels": (
        lambda: _deep_tree(2000),
        "2001 levels deep; at most 64 are unpacked (BEDROCK_MAX_ARCHIVE_DEPTH)",
    ),
}


@pytest.fixture
def limits_world(settings, tmp_path, monkeypatch):
    """A running training run with its token and one running step; storage and the temporary
    directory of this test's own, so that anything left behind shows."""
    import secrets
    import tempfile
    from types import SimpleNamespace

    from bedrock.runs.models import Run, RunStatus, RunStep
    from bedrock.secrets.models import hash_token
    from tests.runflow import pipeline_for

    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "storage")},
        },
    }
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    token = "bdrkrun_" + secrets.token_urlsafe(32)
    run = Run.objects.create(
        pipeline=pipeline_for(tmp_path, name="train"),
        number=1,
        ref="main",
        status=RunStatus.RUNNING,
        token_hash=hash_token(token),
    )
    step = RunStep.objects.create(
        run=run, name="train", position=0, status=RunStatus.RUNNING, attempts=1
    )
    return SimpleNamespace(
        run=run, step=step, token=token, storage=tmp_path / "storage", tmp=scratch
    )


def _left_behind(root) -> list[str]:
    import os

    return sorted(str(p) for p in root.rglob("*")) if os.path.isdir(root) else []


def _upload(world, endpoint: str, body: bytes):
    from django.test import Client

    headers = {"X-Bedrock-Access-Token": world.token}
    if endpoint == "publish":
        url = f"/runs/{world.run.pk}/artefact"
        return Client().post(url, body, content_type="application/zip", headers=headers)
    url = f"/runs/{world.run.pk}/steps/train/artefact?attempt=1"
    return Client().put(url, body, content_type="application/zip", headers=headers)


@pytest.mark.django_db
@pytest.mark.parametrize("endpoint", ["publish", "stage"])
@pytest.mark.parametrize("archive", _HOSTILE_ARCHIVES)
def test_a_hostile_archive_is_refused_by_the_upload_endpoints_leaving_nothing(
    limits_world, endpoint, archive
):
    import time

    from bedrock.models.models import ModelVersion
    from bedrock.runs.models import RunStep

    make, wanted = _HOSTILE_ARCHIVES[archive]
    started = time.monotonic()
    response = _upload(limits_world, endpoint, make())
    assert response.status_code == 400, response.content
    assert wanted in response.json()["error"]
    assert time.monotonic() - started < 20
    assert not ModelVersion.objects.exists()
    assert RunStep.objects.get(pk=limits_world.step.pk).artefact_key == ""
    assert _left_behind(limits_world.storage) == []
    assert _left_behind(limits_world.tmp) == []


@pytest.mark.parametrize("archive", _HOSTILE_ARCHIVES)
def test_bedrock_artefact_unpack_refuses_a_hostile_archive_and_leaves_no_directory(
    tmp_path, archive
):
    from django.core.management import CommandError, call_command

    make, wanted = _HOSTILE_ARCHIVES[archive]
    source = tmp_path / "hostile.zip"
    source.write_bytes(make())
    with pytest.raises(CommandError, match=r"\(BEDROCK_MAX_ARCHIVE_") as refused:
        call_command("artefact", "unpack", str(source), str(tmp_path / "out"))
    assert wanted in str(refused.value)
    assert not (tmp_path / "out").exists()


def test_an_entry_that_inflates_past_the_size_it_declares_is_stopped_and_removed(tmp_path):
    import zipfile

    from bedrock.models.zipstream import ArchiveError, unpack

    data, crc = _deflated_zeros(8 << 20)
    lying = _raw_zip([("small.bin", data, zipfile.ZIP_DEFLATED, crc, 1 << 20)])
    with pytest.raises(ArchiveError, match="inflates to more than the 1048576 declared"):
        unpack(__import__("io").BytesIO(lying), tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("count", "wanted"),
    [
        (25_000, "central directory takes 1300000 bytes, more than 10 entries can need"),
        (20, "the archive has more than 10 entries; at most 10 are unpacked"),
    ],
)
def test_an_archive_that_understates_its_entry_count_is_refused_all_the_same(
    tmp_path, count, wanted
):
    import io

    from bedrock.models.zipstream import ArchiveLimitError, ArchiveLimits, unpack

    lying = _many_entries(count, declared=5)
    with pytest.raises(ArchiveLimitError, match=wanted):
        unpack(io.BytesIO(lying), tmp_path / "out", limits=ArchiveLimits(entries=10))
    assert not (tmp_path / "out").exists()


def test_a_stream_longer_than_any_archive_within_the_limits_is_cut_off_while_it_is_read(
    tmp_path,
):
    from bedrock.models.zipstream import ArchiveLimitError, ArchiveLimits, unpack

    class Endless:  # a pipe: no fileno, no seek
        read_so_far = 0

        def read(self, size: int) -> bytes:
            self.read_so_far += size
            return bytes(size)

    limits = ArchiveLimits(total_bytes=4 << 20, entries=10)
    source = Endless()
    with pytest.raises(ArchiveLimitError, match=r"more than \d+ bytes long, .*ARCHIVE_BYTES"):
        unpack(source, tmp_path / "out", limits=limits)  # type: ignore[arg-type]
    assert source.read_so_far < 8 << 20
    assert not (tmp_path / "out").exists()


def test_the_bytes_really_written_are_counted_against_the_total():
    from bedrock.models.zipstream import ArchiveLimitError, ArchiveLimits, _Budget

    budget = _Budget(ArchiveLimits(total_bytes=10))
    budget.spend(10)
    with pytest.raises(ArchiveLimitError, match=r"more than 10 bytes .*BEDROCK_MAX_ARCHIVE_BYTES"):
        budget.spend(1)


@pytest.mark.django_db
def test_an_upload_over_the_size_limit_is_refused_before_its_body_is_read(limits_world, settings):
    from bedrock.models.models import ModelVersion

    settings.BEDROCK_MAX_UPLOAD_BYTES = 1000
    response = _upload(limits_world, "publish", _many_entries(100))
    assert response.status_code == 413
    assert "larger than 1000 bytes" in response.json()["error"]
    assert "BEDROCK_MAX_UPLOAD_BYTES" in response.json()["error"]
    assert not ModelVersion.objects.exists()
    assert _left_behind(limits_world.storage) == []
    assert _left_behind(limits_world.tmp) == []


@pytest.mark.django_db(transaction=True)
def test_the_upload_hook_fails_with_the_servers_reason_when_the_archive_is_over_the_limit(
    live_server, limits_world, settings, tmp_path
):
    import secrets
    import subprocess
    import sys
    from pathlib import Path

    settings.BEDROCK_MAX_UPLOAD_BYTES = 1 << 20
    hook = tmp_path / "hook"
    (hook / "artefact").mkdir(parents=True)
    (hook / "main.exit").write_text("0\n")
    (hook / "artefact" / "weights.bin").write_bytes(secrets.token_bytes(8 << 20))
    env = {
        "PATH": "/usr/bin:/bin",
        "BEDROCK_API_DOMAIN": live_server.url,
        "BEDROCK_API_TOKEN": limits_world.token,
        "BEDROCK_RUN_ID": str(limits_world.run.pk),
        "BEDROCK_RUN_STEP_NAME": "train",
        "BEDROCK_RUN_STEP_ATTEMPT": "1",
        "BEDROCK_HOOK_DIR": str(hook),
    }
    bedrock = Path(sys.executable).with_name("bedrock")
    result = subprocess.run(
        [str(bedrock), "hook", "upload"], env=env, capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 1
    assert "failed: HTTP 413: The request body is larger than 1Mi" in result.stderr
    assert "(BEDROCK_MAX_UPLOAD_BYTES); nothing was stored" in result.stderr
    limits_world.step.refresh_from_db()
    assert limits_world.step.artefact_key == ""
    assert _left_behind(limits_world.storage) == []
    assert _left_behind(limits_world.tmp) == []


def test_a_body_without_a_length_is_cut_off_once_past_the_limit(settings):
    import io
    from types import SimpleNamespace

    from bedrock.runs import views

    settings.BEDROCK_MAX_UPLOAD_BYTES = 3 << 20
    endless = SimpleNamespace(META={}, read=lambda size: b"x" * size)
    spool = io.BytesIO()
    with pytest.raises(views._BodyTooLarge):
        views._spool_body(endless, spool)
    assert len(spool.getvalue()) <= 3 << 20


def test_packing_refuses_a_tree_deeper_or_larger_than_the_limits(tmp_path):
    import io

    from bedrock.models.zipstream import ArchiveLimitError, ArchiveLimits, pack

    deep = tmp_path / "deep"
    leaf = deep.joinpath(*["d"] * 70)
    leaf.mkdir(parents=True)
    (leaf / "f").write_text("x")
    with pytest.raises(
        ArchiveLimitError, match=r"at most 64 are packed \(BEDROCK_MAX_ARCHIVE_DEPTH"
    ):
        pack(deep, io.BytesIO())
    many = tmp_path / "many"
    many.mkdir()
    for i in range(11):
        (many / f"f{i}").write_text("x")
    with pytest.raises(
        ArchiveLimitError, match=r"at most 10 are packed \(BEDROCK_MAX_ARCHIVE_ENTRIES"
    ):
        pack(many, io.BytesIO(), limits=ArchiveLimits(entries=10))


# --- 4. Every run ends in a true state ---------------------------------------------------------


# --- 4b. Followers, the worker, archives, idempotency, addresses, repositories ------------------


# --- 5. Masking --------------------------------------------------------------------------------


# --- 6. Deployment -----------------------------------------------------------------------------


# --- 7. The Docker executor --------------------------------------------------------------------
