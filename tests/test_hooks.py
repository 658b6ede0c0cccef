"""The artefact hooks of Nomad step jobs (``bedrock hook fetch|upload``), their endpoints, and the
stage archives behind them.

The hooks run as subprocesses with nothing but their environment, against a live server, and, when
``BEDROCK_HOOK_IMAGE`` names one, inside the hook image as Nomad would start them.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import secrets
import shutil
import stat
import subprocess
import sys
import threading
import zipfile
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.test import Client

from bedrock.accounts.models import hash_token
from bedrock.accounts.services import api_token_create
from bedrock.models.artefacts import ArchiveError
from bedrock.models.models import ModelVersion
from bedrock.models.services import model_version_publish
from bedrock.pipelines.models import Pipeline, PipelineKind, Role
from bedrock.runs.models import Run, RunStatus, RunStep
from bedrock.runs.stages import (
    StaleAttemptError,
    stage_key,
    stage_store,
    stages_delete,
    stages_fetch,
)
from tests import factories
from tests.repos import commit, git, make_repo
from tests.runflow import pipeline_for

pytestmark = pytest.mark.django_db

BEDROCK = Path(sys.executable).with_name("bedrock")
HCL = 'version = "1.0"\nbatch_score {\n  step "score" {\n    image = "python:3.11-slim"\n  }\n}\n'
FIRST_COMMIT = {"bedrock.hcl": HCL, "score.py": "print('v1')\n", "data/params.json": '{"k": 1}\n'}


# --- builders -------------------------------------------------------------------------------------


def write_tree(directory: Path, files: dict[str, str | bytes]) -> Path:
    for name, content in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return directory


def read_tree(directory: Path) -> dict[str, str]:
    return {
        path.relative_to(directory).as_posix(): path.read_text()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def publish(pipeline: Pipeline, number: int, files: dict[str, str], tmp_path: Path):
    trained = Run.objects.create(
        pipeline=pipeline, number=number, ref="main", status=RunStatus.SUCCEEDED
    )
    return model_version_publish(
        run=trained, directory=write_tree(tmp_path / f"version-{number}", files)
    )


def active_run(pipeline: Pipeline, number: int, **fields) -> tuple[Run, str]:
    """A running run and its plaintext token, as the supervisor hands it to the steps."""
    token = "bdrkrun_" + secrets.token_urlsafe(32)
    run = Run.objects.create(
        pipeline=pipeline,
        number=number,
        ref="main",
        status=RunStatus.RUNNING,
        token_hash=hash_token(token),
        **fields,
    )
    return run, token


def store(run_step: RunStep, files: dict[str, str | bytes], tmp_path: Path):
    directory = write_tree(tmp_path / f"stage-{run_step.name}-{secrets.token_hex(4)}", files)
    return stage_store(run_step, directory)


def zip_of(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


@pytest.fixture(autouse=True)
def own_storage(settings, tmp_path):
    """Storage of this test's own: run ids restart between tests, and so would stage keys."""
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "storage")},
        },
    }


@dataclass
class World:
    repo: Path
    first_sha: str
    scoring: Pipeline
    version: ModelVersion
    run: Run
    token: str
    prepare: RunStep
    features: RunStep
    score: RunStep


@pytest.fixture
def world(tmp_path) -> World:
    """A batch scoring run at the repository's first commit (a later one changes score.py), with
    an input model version and three steps: score depends on prepare and features."""
    repo = make_repo(tmp_path / "repo", FIRST_COMMIT)
    first_sha = git(repo, "rev-parse", "HEAD")
    commit(repo, {"score.py": "print('v2')\n"})
    training = pipeline_for(repo, name="train")
    scoring = pipeline_for(
        repo, kind=PipelineKind.BATCH_SCORING, project=training.project, name="score"
    )
    version = publish(
        training, 1, {"model.txt": "weights v1\n", "shared.txt": "from the model\n"}, tmp_path
    )
    run, token = active_run(scoring, 1, commit_sha=first_sha, input_model_version=version)
    steps = [
        RunStep.objects.create(
            run=run,
            name=name,
            position=position,
            depends_on=depends_on,
            status=status,
            attempts=1,
        )
        for position, (name, depends_on, status) in enumerate(
            [
                ("prepare", [], RunStatus.SUCCEEDED),
                ("features", [], RunStatus.SUCCEEDED),
                ("score", ["prepare", "features"], RunStatus.RUNNING),
            ]
        )
    ]
    return World(repo, first_sha, scoring, version, run, token, *steps)


def hook_env(url: str, world: World, directory: Path, **extra: str) -> dict[str, str]:
    """The hook's whole environment: the job's variables and a PATH, nothing else."""
    return {
        "PATH": "/usr/bin:/bin",
        "BEDROCK_API_DOMAIN": url,
        "BEDROCK_API_TOKEN": world.token,
        "BEDROCK_RUN_ID": str(world.run.pk),
        "BEDROCK_RUN_STEP_NAME": "score",
        "BEDROCK_RUN_STEP_ATTEMPT": "1",
        "BEDROCK_HOOK_DIR": str(directory),
        **extra,
    }


def run_hook(action: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BEDROCK), "hook", action], env=env, capture_output=True, text=True, timeout=180
    )


def stage_objects(run: Run) -> list[str]:
    """The stage archives in storage under the run's prefix, whatever their keys."""
    prefix = f"runs/{run.pk}/steps/"
    try:
        return sorted(prefix + name for name in default_storage.listdir(prefix)[1])
    except FileNotFoundError:
        return []


def stored_bytes(run_step: RunStep) -> bytes:
    with default_storage.open(run_step.artefact_key, "rb") as handle:
        return handle.read()


# --- fetch ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("order", "later"),
    [("prepare,features", "features"), ("features, prepare", "prepare")],
)
def test_fetch_writes_the_commit_then_the_model_version_then_the_stages_in_order(
    live_server, world, tmp_path, order, later
):
    store(
        world.prepare,
        {"shared.txt": "prepare\n", "prepare.txt": "p\n", "d/a.txt": "prepare\n"},
        tmp_path,
    )
    store(world.features, {"shared.txt": "features\n", "d/a.txt": "features\n"}, tmp_path)
    directory = tmp_path / "alloc-data"

    result = run_hook(
        "fetch",
        hook_env(
            live_server.url,
            world,
            directory,
            BEDROCK_MODEL_VERSION_ID=str(world.version.pk),
            BEDROCK_HOOK_DEPENDENCIES=order,
        ),
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert read_tree(directory / "app") == FIRST_COMMIT
    assert read_tree(directory / "artefact") == {
        "model.txt": "weights v1\n",
        "shared.txt": f"{later}\n",
        "prepare.txt": "p\n",
        "d/a.txt": f"{later}\n",
    }
    assert (directory / "fetched").is_file()
    assert sorted(p.name for p in directory.iterdir()) == ["app", "artefact", "fetched"]
    assert stat.S_IMODE((directory / "artefact").stat().st_mode) == 0o777
    assert stat.S_IMODE((directory / "artefact" / "d").stat().st_mode) == 0o777
    assert (directory / "artefact" / "d" / "a.txt").stat().st_mode & 0o666 == 0o666
    assert f"GET /runs/{world.run.pk}/source: " in result.stdout
    assert " in 0." in result.stdout or " s\n" in result.stdout
    assert f"app: 3 files at commit {world.first_sha}" in result.stdout
    assert world.token not in result.stdout + result.stderr


def test_fetch_without_inputs_leaves_an_empty_writable_artefact_and_replaces_an_earlier_fetch(
    live_server, world, tmp_path
):
    directory = write_tree(
        tmp_path / "alloc-data", {"app/stale.txt": "old", "artefact/stale.txt": "old"}
    )

    result = run_hook(
        "fetch", hook_env(live_server.url, world, directory, BEDROCK_HOOK_DEPENDENCIES="prepare")
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "step 'prepare' stored no artefact" in result.stdout
    assert read_tree(directory / "app") == FIRST_COMMIT
    assert list((directory / "artefact").iterdir()) == []
    assert stat.S_IMODE((directory / "artefact").stat().st_mode) == 0o777
    assert (directory / "fetched").read_text() == f"run {world.run.pk} step score\n"


@pytest.mark.slow
def test_the_hooks_open_no_database_and_write_nothing_to_bedrock_home(live_server, world, tmp_path):
    home = tmp_path / "home-that-must-not-appear"
    env = hook_env(
        live_server.url,
        world,
        tmp_path / "alloc-data",
        # Anything that opened the database would wait on this port, then fail.
        DATABASE_URL="postgres://nobody@127.0.0.1:9/nothing",
        BEDROCK_HOME=str(home),
    )

    fetched = run_hook("fetch", env)
    (tmp_path / "alloc-data" / "main.exit").write_text("0\n")
    (tmp_path / "alloc-data" / "artefact" / "out.txt").write_text("scored\n")
    uploaded = run_hook("upload", env)

    assert fetched.returncode == 0, fetched.stdout + fetched.stderr
    assert uploaded.returncode == 0, uploaded.stdout + uploaded.stderr
    assert not home.exists()
    world.score.refresh_from_db()
    assert stage_objects(world.run) == [world.score.artefact_key]


# --- upload ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_upload_stores_the_artefact_as_the_steps_stage_and_a_second_one_replaces_it(
    live_server, world, tmp_path
):
    directory = tmp_path / "alloc-data"
    weights = secrets.token_bytes(300_000)
    write_tree(directory, {"main.exit": "0\n", "artefact/scores.csv": "id,score\n1,0.5\n"})
    write_tree(directory, {"artefact/nested/weights.bin": weights})
    env = hook_env(live_server.url, world, directory)

    first = run_hook("upload", env)

    assert first.returncode == 0, first.stdout + first.stderr
    step = RunStep.objects.get(pk=world.score.pk)
    stored = stored_bytes(step)
    assert re.fullmatch(rf"runs/{world.run.pk}/steps/score-[0-9a-f]{{12}}\.zip", step.artefact_key)
    assert step.artefact_sha256 == hashlib.sha256(stored).hexdigest()
    assert step.artefact_size == len(stored)
    assert f"PUT /runs/{world.run.pk}/steps/score/artefact?attempt=1: " in first.stdout
    assert f"sha256 {step.artefact_sha256}" in first.stdout
    assert world.token not in first.stdout + first.stderr
    unpacked = tmp_path / "unpacked"
    assert stages_fetch([step], unpacked) == 2
    assert (unpacked / "nested" / "weights.bin").read_bytes() == weights

    (directory / "artefact" / "nested" / "weights.bin").unlink()
    (directory / "artefact" / "scores.csv").write_text("id,score\n1,0.9\n")
    second = run_hook("upload", env)

    assert second.returncode == 0, second.stdout + second.stderr
    first_key = step.artefact_key
    step.refresh_from_db()
    assert step.artefact_sha256 == hashlib.sha256(stored_bytes(step)).hexdigest()
    assert stage_objects(world.run) == [step.artefact_key] != [first_key]  # the old one is gone
    again = tmp_path / "again"
    stages_fetch([step], again)
    assert read_tree(again) == {"scores.csv": "id,score\n1,0.9\n"}


@pytest.mark.parametrize(
    ("exit_text", "said"),
    [
        (None, "main.exit is absent"),
        ("1\n", "the main task exited with '1'"),
        ("137", "the main task exited with '137'"),
        ("", "the main task exited with 'no code'"),
    ],
)
@pytest.mark.slow
def test_upload_sends_nothing_unless_the_main_task_exited_0(
    live_server, world, tmp_path, exit_text, said
):
    directory = write_tree(tmp_path / "alloc-data", {"artefact/out.txt": "partial"})
    if exit_text is not None:
        (directory / "main.exit").write_text(exit_text)

    result = run_hook("upload", hook_env(live_server.url, world, directory))

    assert result.returncode == 0, result.stdout + result.stderr
    assert said in result.stdout and "nothing uploaded" in result.stdout
    world.score.refresh_from_db()
    assert world.score.artefact_key == ""
    assert stage_objects(world.run) == []


@pytest.mark.slow
def test_fetch_fails_when_a_dependencys_archive_is_missing_from_storage(
    live_server, world, tmp_path
):
    stored = store(world.prepare, {"prepare.txt": "p"}, tmp_path)
    default_storage.delete(stored.key)
    directory = tmp_path / "alloc-data"

    result = run_hook(
        "fetch", hook_env(live_server.url, world, directory, BEDROCK_HOOK_DEPENDENCIES="prepare")
    )

    # Only "stored no artefact" (204) lets a step start without a dependency's files.
    assert result.returncode == 1
    assert "HTTP 404" in result.stderr and "missing from storage" in result.stderr
    assert not (directory / "fetched").exists()


@pytest.mark.slow
def test_a_refused_request_fails_the_hook_with_its_path_and_status(live_server, world, tmp_path):
    directory = write_tree(tmp_path / "alloc-data", {"main.exit": "0", "artefact/a.txt": "a"})
    unknown_step = hook_env(live_server.url, world, directory, BEDROCK_RUN_STEP_NAME="not-a-step")

    upload = run_hook("upload", unknown_step)
    Run.objects.filter(pk=world.run.pk).update(status=RunStatus.SUCCEEDED)
    fetch = run_hook("fetch", hook_env(live_server.url, world, tmp_path / "other"))

    assert upload.returncode == 1
    assert (
        f"PUT /runs/{world.run.pk}/steps/not-a-step/artefact?attempt=1 failed: HTTP 404: "
        f"Run {world.run.pk} has no step 'not-a-step'." in upload.stderr
    )
    assert fetch.returncode == 1
    assert f"GET /runs/{world.run.pk}/source failed: HTTP 401: " in fetch.stderr
    assert not (tmp_path / "other" / "fetched").exists()
    assert world.token not in upload.stdout + upload.stderr + fetch.stdout + fetch.stderr


class _Server:
    """A real HTTP server on a free port whose answers a test decides, recording each request."""

    def __init__(self, answer) -> None:
        self.requests: list[tuple[str, dict[str, str]]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests.append((self.path, dict(self.headers)))
                status, headers, body = answer(self.path, len(outer.requests))
                self.send_response(status)
                for key, value in {**headers, "Content-Length": str(len(body))}.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> _Server:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_fetch_retries_a_5xx_and_follows_a_redirect_to_storage_without_the_token(tmp_path):
    """Bedrock may answer 503 while busy, and redirect downloads to signed storage URLs."""
    archive = zip_of({"hello.py": "print('hi')\n"})
    token = "bdrkrun_" + secrets.token_urlsafe(32)
    storage_answer = lambda path, count: (200, {"Content-Type": "application/zip"}, archive)  # noqa: E731
    with _Server(storage_answer) as storage:

        def bedrock_answer(path: str, count: int):
            if count == 1:
                return 503, {"Content-Type": "application/json"}, b'{"error": "busy"}'
            return 302, {"Location": f"{storage.url}/bucket/src.zip?Signature=s3cr3t"}, b""

        with _Server(bedrock_answer) as bedrock:
            result = run_hook("fetch", _score_fetch_env(bedrock.url, token, tmp_path))

    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "alloc-data" / "app" / "hello.py").read_text() == "print('hi')\n"
    assert "GET /runs/7/source failed: HTTP 503: busy; trying again in 1 s" in result.stdout
    assert [path for path, _ in bedrock.requests] == ["/runs/7/source"] * 2
    assert all(headers["Authorization"] == f"Bearer {token}" for _, headers in bedrock.requests)
    assert storage.requests[0][0] == "/bucket/src.zip?Signature=s3cr3t"
    sent_to_storage = json.dumps(storage.requests)
    assert token not in sent_to_storage and "Authorization" not in sent_to_storage
    assert "s3cr3t" not in result.stdout + result.stderr


def _score_fetch_env(api: str, token: str, tmp_path: Path) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "BEDROCK_API_DOMAIN": api,
        "BEDROCK_API_TOKEN": token,
        "BEDROCK_RUN_ID": "7",
        "BEDROCK_RUN_STEP_NAME": "score",
        "BEDROCK_HOOK_DIR": str(tmp_path / "alloc-data"),
    }


def test_a_redirect_to_another_host_reaches_it_without_the_token(tmp_path):
    """The same address under another name is another host: the token stays with Bedrock's."""
    archive = zip_of({"hello.py": "print('hi')\n"})
    token = "bdrkrun_" + secrets.token_urlsafe(32)
    storage_answer = lambda path, count: (200, {"Content-Type": "application/zip"}, archive)  # noqa: E731
    with _Server(storage_answer) as storage:
        elsewhere = storage.url.replace("127.0.0.1", "localhost")
        bedrock_answer = lambda path, count: (302, {"Location": f"{elsewhere}/src.zip"}, b"")  # noqa: E731
        with _Server(bedrock_answer) as bedrock:
            result = run_hook("fetch", _score_fetch_env(bedrock.url, token, tmp_path))

    assert result.returncode == 0, result.stdout + result.stderr
    assert [headers["Authorization"] for _, headers in bedrock.requests] == [f"Bearer {token}"]
    assert [path for path, _ in storage.requests] == ["/src.zip"]
    assert token not in json.dumps(storage.requests)


@pytest.mark.slow
def test_fetch_gives_up_after_three_failed_attempts(tmp_path):
    answer = lambda path, count: (502, {"Content-Type": "text/html"}, b"<h1>Bad gateway</h1>")  # noqa: E731
    with _Server(answer) as bedrock:
        env = {
            "PATH": "/usr/bin:/bin",
            "BEDROCK_API_DOMAIN": bedrock.url,
            "BEDROCK_API_TOKEN": "bdrkrun_x",
            "BEDROCK_RUN_ID": "7",
            "BEDROCK_RUN_STEP_NAME": "score",
            "BEDROCK_HOOK_DIR": str(tmp_path / "alloc-data"),
        }
        result = run_hook("fetch", env)

    assert result.returncode == 1
    assert len(bedrock.requests) == 3
    assert "GET /runs/7/source failed: HTTP 502 (gave up after 3 attempts)" in result.stderr


def test_a_hook_names_the_variable_it_misses(tmp_path):
    result = run_hook("fetch", {"PATH": "/usr/bin:/bin", "BEDROCK_HOOK_DIR": str(tmp_path)})

    assert result.returncode == 1
    assert "BEDROCK_API_DOMAIN is not set" in result.stderr


# --- endpoints ------------------------------------------------------------------------------------


def get(path: str, token: str | None = None, client: Client | None = None):
    headers = {"X-Bedrock-Access-Token": token} if token else {}
    return (client or Client()).get(path, headers=headers)


def put(path: str, body: bytes, token: str | None = None, client: Client | None = None):
    headers = {"X-Bedrock-Access-Token": token} if token else {}
    return (client or Client(enforce_csrf_checks=True)).put(
        path, body, content_type="application/zip", headers=headers
    )


def body_of(response) -> bytes:
    try:
        return b"".join(response.streaming_content)
    finally:
        response.close()


def test_source_is_the_commits_files_as_a_zip_without_git(world):
    response = get(f"/runs/{world.run.pk}/source", world.token)

    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert response["X-Bedrock-Commit"] == world.first_sha
    with zipfile.ZipFile(io.BytesIO(body_of(response))) as archive:
        files = {name: archive.read(name).decode() for name in archive.namelist()}
    assert files == FIRST_COMMIT


def test_source_leaves_out_links_that_leave_the_repository_or_name_no_file(tmp_path):
    (tmp_path / "server-secret.txt").write_text("the server's own file\n")
    repo = make_repo(tmp_path / "repo", {"bedrock.hcl": HCL, "data/params.json": "{}\n"})
    for name, target in [
        ("escape", "../server-secret.txt"),
        ("absolute", str(tmp_path / "server-secret.txt")),
        ("folder", "data"),
        ("dangling", "nowhere.txt"),
        ("params", "data/params.json"),
    ]:
        (repo / name).symlink_to(target)
    sha = commit(repo, {}, "links")
    pipeline = pipeline_for(repo, kind=PipelineKind.BATCH_SCORING)
    run, token = active_run(pipeline, 1, commit_sha=sha)

    response = get(f"/runs/{run.pk}/source", token)

    assert response.status_code == 200
    assert response["X-Bedrock-Skipped-Links"] == "absolute, dangling, escape, folder"
    with zipfile.ZipFile(io.BytesIO(body_of(response))) as archive:
        assert sorted(archive.namelist()) == ["bedrock.hcl", "data/params.json", "params"]
        assert archive.read("params") == b"{}\n"


ENDPOINTS = [
    ("GET", "/runs/{run}/source"),
    ("GET", "/runs/{run}/steps/score/artefact"),
    ("PUT", "/runs/{run}/steps/score/artefact?attempt=1"),
]


@pytest.fixture
def strangers(world):
    """Everyone but the run's own token: another active run, and the project's admin."""
    other_run, other_token = active_run(world.scoring, 2, commit_sha=world.first_sha)
    RunStep.objects.create(run=other_run, name="score", position=0)
    admin = factories.user()
    factories.member(world.scoring.project, admin, Role.ADMIN)
    logged_in = Client()
    logged_in.force_login(admin)
    return {
        "no token": (None, None),
        "another run's token": (other_token, None),
        "the admin's API token": (api_token_create(user=admin).plaintext, None),
        "the admin's session": (None, logged_in),
    }


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
@pytest.mark.parametrize(
    "who", ["no token", "another run's token", "the admin's API token", "the admin's session"]
)
def test_only_the_runs_own_token_reaches_its_endpoints(
    world, strangers, tmp_path, method, path, who
):
    store(world.score, {"out.txt": "kept"}, tmp_path)
    before = RunStep.objects.get(pk=world.score.pk).artefact_sha256
    token, client = strangers[who]
    url = path.format(run=world.run.pk)

    if method == "GET":
        response = get(url, token, client)
    else:
        response = put(url, zip_of({"evil.txt": "replaced"}), token, client)

    assert response.status_code == 404
    assert response.json()["error"].startswith(f"There is no active run {world.run.pk}")
    assert RunStep.objects.get(pk=world.score.pk).artefact_sha256 == before


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_a_finished_runs_token_reaches_nothing(world, method, path):
    Run.objects.filter(pk=world.run.pk).update(status=RunStatus.FAILED)
    url = path.format(run=world.run.pk)

    if method == "GET":
        response = get(url, world.token)
    else:
        response = put(url, zip_of({"late.txt": "late"}), world.token)

    # The token stops working when its run ends: the middleware answers before any view.
    assert response.status_code == 401
    assert RunStep.objects.get(pk=world.score.pk).artefact_key == ""


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not a zip at all", "not a readable ZIP archive"),
        (zip_of({"../outside.txt": "x"}), "the path contains '..'"),
        (zip_of({"/etc/cron.d/x": "x"}), "/etc/cron.d/x"),
        (zip_of({}), "has no files"),
    ],
)
def test_a_bad_archive_is_refused_with_the_reason(world, tmp_path, body, reason):
    earlier = store(world.score, {"earlier.txt": "kept"}, tmp_path)

    response = put(f"/runs/{world.run.pk}/steps/score/artefact?attempt=1", body, world.token)

    assert response.status_code == 400
    assert response.json()["error"].startswith("The artefact of step 'score' cannot be stored: ")
    assert reason in response.json()["error"]
    # The step keeps the archive it stored before, and nothing else is left.
    assert RunStep.objects.get(pk=world.score.pk).artefact_sha256 == earlier.sha256
    assert stage_objects(world.run) == [earlier.key]


def test_an_upload_must_name_the_attempt_the_step_is_running(world, tmp_path):
    earlier = store(world.score, {"earlier.txt": "kept"}, tmp_path)
    url = f"/runs/{world.run.pk}/steps/score/artefact"
    RunStep.objects.filter(pk=world.score.pk).update(attempts=2)

    unnamed = put(url, zip_of({"a.txt": "a"}), world.token)
    stale = put(f"{url}?attempt=1", zip_of({"late.txt": "from attempt 1"}), world.token)
    finished = put(
        f"/runs/{world.run.pk}/steps/prepare/artefact?attempt=1", zip_of({"a": "a"}), world.token
    )
    current = put(f"{url}?attempt=2", zip_of({"now.txt": "from attempt 2"}), world.token)

    assert unnamed.status_code == 400 and "?attempt=N" in unnamed.json()["error"]
    assert stale.status_code == 409
    assert stale.json()["error"] == "Step 'score' is not running attempt 1; its upload is refused."
    assert finished.status_code == 409  # prepare has succeeded: its archive is settled
    assert current.status_code == 201
    score = RunStep.objects.get(pk=world.score.pk)
    stages_fetch([score], tmp_path / "dest")
    assert read_tree(tmp_path / "dest") == {"now.txt": "from attempt 2"}
    assert sorted(stage_objects(world.run)) == [score.artefact_key]
    assert not default_storage.exists(earlier.key)


def test_an_archive_recorded_after_its_attempt_ended_is_refused_and_deleted(world, tmp_path):
    """The upload raced the next attempt's start: checked again when the row is locked."""
    directory = write_tree(tmp_path / "late", {"late.txt": "late"})
    RunStep.objects.filter(pk=world.score.pk).update(attempts=2)

    with pytest.raises(StaleAttemptError, match="not running attempt 1"):
        stage_store(world.score, directory, attempt=1)
    assert RunStep.objects.get(pk=world.score.pk).artefact_key == ""
    assert stage_objects(world.run) == []


def test_a_stage_is_sent_back_with_its_sha256(world, tmp_path):
    stored = store(world.prepare, {"features.parquet": secrets.token_bytes(5000)}, tmp_path)

    response = get(f"/runs/{world.run.pk}/steps/prepare/artefact", world.token)
    missing = get(f"/runs/{world.run.pk}/steps/features/artefact", world.token)
    unknown = get(f"/runs/{world.run.pk}/steps/nope/artefact", world.token)

    assert response.status_code == 200
    body = body_of(response)
    assert response["X-Bedrock-Sha256"] == stored.sha256 == hashlib.sha256(body).hexdigest()
    assert int(response["Content-Length"]) == stored.size == len(body)
    assert missing.status_code == 204 and missing["X-Bedrock-Artefact"] == "none"
    assert unknown.status_code == 404


# --- stage archives -------------------------------------------------------------------------------


def test_a_stage_key_names_the_run_and_the_step_and_is_new_each_time():
    first, second = stage_key(12, "train.v2"), stage_key(12, "train.v2")
    assert re.fullmatch(r"runs/12/steps/train\.v2-[0-9a-f]{12}\.zip", first)
    assert first != second
    with pytest.raises(ValueError, match="is not a step name"):
        stage_key(12, "../models/x")


def test_stages_merge_in_order_over_what_the_destination_holds(world, tmp_path):
    store(world.prepare, {"a.txt": "prepare", "x/b.txt": "prepare", "x/c.txt": "prepare"}, tmp_path)
    store(world.features, {"a.txt": "features", "x": "features made x a file"}, tmp_path)
    dest = write_tree(tmp_path / "artefact", {"a.txt": "model", "model.txt": "model"})

    count = stages_fetch([world.prepare, world.score, world.features], dest)

    assert count == 4  # a.txt, x/b.txt, x/c.txt, x; score stored nothing
    assert read_tree(dest) == {
        "a.txt": "features",
        "model.txt": "model",
        "x": "features made x a file",
    }


def test_a_stage_whose_stored_bytes_changed_is_refused(world, tmp_path):
    stored = store(world.prepare, {"a.txt": "original"}, tmp_path)
    path = Path(default_storage.path(stored.key))
    path.write_bytes(path.read_bytes() + b"\0")

    with pytest.raises(ArchiveError, match="checksum mismatch"):
        stages_fetch([world.prepare], tmp_path / "dest")
    assert not (tmp_path / "dest" / "a.txt").exists()


def test_storing_a_stage_again_replaces_the_old_archive(world, tmp_path):
    first = store(world.prepare, {"a.txt": "one"}, tmp_path)
    second = store(world.prepare, {"b.txt": "two"}, tmp_path)

    world.prepare.refresh_from_db()
    assert world.prepare.artefact_key == second.key != first.key
    assert world.prepare.artefact_sha256 == second.sha256 != first.sha256
    assert stage_objects(world.run) == [second.key]  # stored first, then the old one deleted
    stages_fetch([world.prepare], tmp_path / "dest")
    assert read_tree(tmp_path / "dest") == {"b.txt": "two"}


def test_stages_delete_removes_every_archive_of_the_run_and_no_other(world, tmp_path):
    store(world.prepare, {"a.txt": "a"}, tmp_path)
    store(world.features, {"b.txt": "b"}, tmp_path)
    # An upload interrupted between storing and recording leaves an unrecorded archive.
    orphan = default_storage.save(stage_key(world.run.pk, "score"), ContentFile(b"partial"))
    other_run, _ = active_run(world.scoring, 2, commit_sha=world.first_sha)
    other_step = RunStep.objects.create(run=other_run, name="prepare", position=0)
    kept = store(other_step, {"c.txt": "c"}, tmp_path)

    stages_delete(world.run.pk)

    assert not RunStep.objects.filter(run=world.run).exclude(artefact_key="").exists()
    assert stage_objects(world.run) == []
    assert not default_storage.exists(orphan)
    assert default_storage.exists(kept.key)
    assert RunStep.objects.get(pk=other_step.pk).artefact_sha256 == kept.sha256


# --- the hook image -------------------------------------------------------------------------------


def hook_image() -> str:
    """The image named by BEDROCK_HOOK_IMAGE; skipped without it, failed if CI requires it."""
    image = os.environ.get("BEDROCK_HOOK_IMAGE", "")
    problem = ""
    if not image:
        problem = "BEDROCK_HOOK_IMAGE names no image (deploy/Dockerfile builds one)"
    elif shutil.which("docker") is None:
        problem = "the docker command is not installed"
    else:
        inspected = subprocess.run(
            ["docker", "image", "inspect", "--format", "{{.Config.User}}", image],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if inspected.returncode != 0:
            problem = f"docker cannot inspect {image}: {inspected.stderr.strip()}"
        elif inspected.stdout.strip() in ("", "0", "root", "0:0"):
            problem = f"{image} runs as root; the hook image must name a user"
            pytest.fail(problem)
    if problem:
        if os.environ.get("BEDROCK_REQUIRE_HOOK_IMAGE") == "1":
            pytest.fail(f"BEDROCK_REQUIRE_HOOK_IMAGE=1 but {problem}")
        pytest.skip(problem)
    return image


def docker_hook(image: str, action: str, env: dict[str, str], directory: Path):
    variables = [arg for key, value in env.items() if key != "PATH" for arg in ("-e", key)]
    return subprocess.run(
        # Host networking: the container reaches the live server on this machine's loopback.
        [
            *("docker", "run", "--rm", "--network", "host", "-v", f"{directory}:/alloc/data"),
            *variables,
            *(image, "bedrock", "hook", action),
        ],
        env={**os.environ, **env},  # -e NAME passes the value without putting it in argv
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_the_hook_image_fetches_and_uploads_as_a_nomad_job_would(live_server, world, tmp_path):
    image = hook_image()
    store(world.prepare, {"shared.txt": "prepare\n"}, tmp_path)
    directory = tmp_path / "alloc"
    directory.mkdir()
    directory.chmod(0o777)  # as Nomad makes /alloc/data
    env = hook_env(
        live_server.url,
        world,
        Path("/alloc/data"),
        BEDROCK_MODEL_VERSION_ID=str(world.version.pk),
        BEDROCK_HOOK_DEPENDENCIES="prepare",
    )
    del env["BEDROCK_HOOK_DIR"]  # the default is /alloc/data

    fetched = docker_hook(image, "fetch", env, directory)

    assert fetched.returncode == 0, fetched.stdout + fetched.stderr
    assert read_tree(directory / "app") == FIRST_COMMIT
    assert read_tree(directory / "artefact") == {
        "model.txt": "weights v1\n",
        "shared.txt": "prepare\n",
    }
    assert (directory / "fetched").is_file()
    assert stat.S_IMODE((directory / "artefact").stat().st_mode) == 0o777
    assert (directory / "app").stat().st_uid != 0  # written by the image's own user

    (directory / "artefact" / "scores.csv").write_text("id,score\n1,0.7\n")  # as root, like main
    (directory / "main.exit").write_text("0\n")
    uploaded = docker_hook(image, "upload", env, directory)

    assert uploaded.returncode == 0, uploaded.stdout + uploaded.stderr
    step = RunStep.objects.get(pk=world.score.pk)
    assert step.artefact_sha256 == hashlib.sha256(stored_bytes(step)).hexdigest()
    unpacked = tmp_path / "unpacked"
    stages_fetch([step], unpacked)
    assert read_tree(unpacked) == {
        "model.txt": "weights v1\n",
        "shared.txt": "prepare\n",
        "scores.csv": "id,score\n1,0.7\n",
    }
    assert world.token not in fetched.stdout + fetched.stderr + uploaded.stdout + uploaded.stderr
