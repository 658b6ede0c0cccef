"""Runs on a real Docker Engine, with the locally built Python image (.ci/docker-image)."""

from __future__ import annotations

import os
import zipfile
from dataclasses import replace

import pytest
from django.core.files.storage import default_storage

from bedrock.actors import SYSTEM
from bedrock.models.models import ModelVersion
from bedrock.pipelines.models import PipelineKind
from bedrock.pipelines.spec import Resources
from bedrock.runs.executors.base import StepContext
from bedrock.runs.models import RunStatus
from bedrock.runs.plan import StepPlan
from bedrock.runs.services import run_create, run_stop
from bedrock.secrets.services import secret_set
from tests.repos import EXAMPLE, hcl, make_repo, step
from tests.runflow import pipeline_for, repo_with, step_log, wait_for, wait_until_done

IMAGE = "python:3.11-slim"


def _engine_problem() -> str | None:
    try:
        import docker

        client = docker.from_env(timeout=10)
        client.ping()
        client.images.get(IMAGE)
    except Exception as exc:
        return f"no Docker Engine with the image {IMAGE} ({exc}); build it with .ci/docker-image"
    return None


problem = _engine_problem()
if problem and os.environ.get("BEDROCK_REQUIRE_DOCKER"):
    raise RuntimeError(problem)  # CI installs Docker: a skip there would hide a failure
needs_docker = pytest.mark.skipif(problem is not None, reason=problem or "")


@pytest.fixture
def docker_executor(settings):
    settings.BEDROCK_EXECUTOR = "docker"


def labelled_containers(run_id: int) -> list:
    import docker

    from bedrock.runs.executors.docker import LABEL_RUN

    # One removed between docker's listing and its inspection is gone, not an error.
    return docker.from_env().containers.list(
        all=True, filters={"label": f"{LABEL_RUN}={run_id}"}, ignore_removed=True
    )


def plan(**resources) -> StepPlan:
    return StepPlan(
        name="train",
        image=IMAGE,
        command="{ python3 train.py; }",
        environment={"ALPHA": "1"},
        secret_names=("DB_PASSWORD",),
        resources=Resources(
            cpu=None, memory=None, gpu=None, millicpu=None, memory_bytes=None, gpu_count=0
        )
        if not resources
        else Resources(**resources),
        depends_on=(),
        retry_limit=0,
    )


def test_container_options_apply_cpu_memory_and_gpus_and_keep_secrets_out_of_the_environment(
    tmp_path,
):
    from bedrock.runs.executors.docker import container_options

    step_plan = plan(
        cpu="1.5", memory="2Gi", gpu="2", millicpu=1500, memory_bytes=2 << 30, gpu_count=2
    )
    context = StepContext(
        run_id=7,
        app_dir=tmp_path / "app",
        artefact_dir=tmp_path / "artefact",
        step_dir=tmp_path / "step",
        environment={"ALPHA": "1"},
        secrets={"DB_PASSWORD": "hunter2"},
        attempt=1,
    )
    options = container_options(step_plan, context)

    assert options["nano_cpus"] == 1_500_000_000
    assert options["mem_limit"] == 2 << 30
    [request] = options["device_requests"]
    assert request["Count"] == 2 and request["Capabilities"] == [["gpu"]]
    assert options["volumes"][str(tmp_path / "app")]["bind"] == "/app"
    assert options["volumes"][str(tmp_path / "artefact")]["bind"] == "/artefact"
    assert "hunter2" not in repr(options)
    assert options["command"][:2] == ["bash", "-c"]


def test_a_step_without_gpus_requests_no_devices(tmp_path):
    from bedrock.runs.executors.docker import container_options

    context = StepContext(7, tmp_path, tmp_path, tmp_path, {}, {}, 1)
    assert "device_requests" not in container_options(plan(), context)


@needs_docker
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_example_trains_and_batch_scores_in_containers(tmp_path, docker_executor, step_api):
    repo = make_repo(tmp_path / "churn", copy=EXAMPLE)
    training = pipeline_for(repo, name="churn-train")
    scoring = pipeline_for(repo, kind=PipelineKind.BATCH_SCORING, project=training.project)

    run = wait_until_done(run_create(actor=SYSTEM, pipeline=training))

    assert run.status == RunStatus.SUCCEEDED, (run.failure_reason, step_log(run, "train")[-2000:])
    # The container's pip found Bedrock's client through the host, and it logged there.
    assert run.metrics.filter(name="validation_auc").exists()
    version = ModelVersion.objects.get(run=run)
    with default_storage.open(version.storage_key) as handle:
        assert "model.json" in zipfile.ZipFile(handle).namelist()
    assert labelled_containers(run.pk) == []

    scored = wait_until_done(
        run_create(actor=SYSTEM, pipeline=scoring, model_version_id=version.pk)
    )
    assert scored.status == RunStatus.SUCCEEDED, scored.failure_reason
    assert "scored 200 customers" in step_log(scored, "score")


@needs_docker
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_container_gets_its_limits_and_secrets_but_not_in_its_environment(
    tmp_path, docker_executor
):
    steps = step(
        "s",
        "test $DB_PASSWORD = pa55word-in-a-file && echo secret-ok",
        "echo done > /artefact/out; sleep 3",
        extra='resources {\ncpu = "0.5"\nmemory = "300M"\n}',
    )
    pipeline = pipeline_for(repo_with(tmp_path, hcl("train", steps, secrets='"DB_PASSWORD"')))
    secret_set(actor=SYSTEM, pipeline=pipeline, name="DB_PASSWORD", value="pa55word-in-a-file")
    run = run_create(actor=SYSTEM, pipeline=pipeline)

    [container] = wait_for(lambda: labelled_containers(run.pk), what="the step's container")
    host_config, config = container.attrs["HostConfig"], container.attrs["Config"]
    run = wait_until_done(run)

    assert run.status == RunStatus.SUCCEEDED, run.failure_reason
    assert host_config["NanoCpus"] == 500_000_000
    assert host_config["Memory"] == 300_000_000
    assert not any("pa55word" in variable for variable in config["Env"])
    assert "secret-ok" in step_log(run, "s")
    assert labelled_containers(run.pk) == []


@needs_docker
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_stopping_a_docker_run_removes_its_container(tmp_path, docker_executor):
    pipeline = pipeline_for(repo_with(tmp_path, hcl("train", step("s", "sleep 120"))))
    run = run_create(actor=SYSTEM, pipeline=pipeline)
    wait_for(lambda: labelled_containers(run.pk), what="the step's container")

    run_stop(actor=SYSTEM, run=run)

    run = wait_until_done(run, timeout=60)
    assert run.status == RunStatus.STOPPED
    assert labelled_containers(run.pk) == []


@pytest.mark.parametrize(
    ("configured", "in_containers"),
    [
        ("http://127.0.0.1:8000", "http://host.docker.internal:8000"),
        ("http://localhost:8765/", "http://host.docker.internal:8765/"),
        ("http://[::1]:8000", "http://host.docker.internal:8000"),
        ("http://127.0.0.2", "http://host.docker.internal"),
        ("https://bedrock.example.com", "https://bedrock.example.com"),
        ("http://10.0.0.5:8000", "http://10.0.0.5:8000"),
    ],
)
def test_a_loopback_api_address_is_given_to_containers_as_the_host_gateway(
    configured, in_containers
):
    from bedrock.runs.executors.docker import container_api_domain

    assert container_api_domain(configured) == in_containers


def test_container_options_keep_the_token_out_of_the_environment_and_drop_capabilities(tmp_path):
    from bedrock.runs.executors.docker import _variables, container_options

    environment = {"BEDROCK_API_TOKEN": "bdrkrun_x", "BEDROCK_API_DOMAIN": "http://127.0.0.1:8000"}
    context = StepContext(7, tmp_path, tmp_path, tmp_path, environment, {}, 1)

    options = container_options(plan(), context, user="1000:1000")

    assert "BEDROCK_API_TOKEN" not in options["environment"]
    assert options["environment"]["BEDROCK_API_DOMAIN"] == "http://host.docker.internal:8000"
    assert options["cap_drop"] == ["ALL"] and options["security_opt"] == ["no-new-privileges"]
    assert options["user"] == "1000:1000" and options["init"] is True
    assert options["extra_hosts"] == {"host.docker.internal": "host-gateway"}
    assert _variables(context)[1]["BEDROCK_API_TOKEN"] == "bdrkrun_x"


@needs_docker
@pytest.mark.slow
def test_a_container_removed_behind_bedrocks_back_ends_its_attempt_with_the_reason(tmp_path):
    import docker

    from bedrock.runs.executors.docker import DockerExecutor

    for name in ("app", "artefact", "step"):
        (tmp_path / name).mkdir()
    context = StepContext(
        990_300, tmp_path / "app", tmp_path / "artefact", tmp_path / "step", {}, {}, 1
    )
    handle = DockerExecutor().start(replace(plan(), command="sleep 60"), context)
    assert handle.wait(0.5) is None

    docker.from_env().containers.get(handle.container.id).remove(force=True)

    assert handle.wait(10) == -1
    assert handle.failure_reason == "its container was removed while it ran"
    assert handle.kill(grace=5) == ""
    assert labelled_containers(990_300) == []


def _server_owned_context(tmp_path, uid: int) -> StepContext:
    # A run's layout, as a server running as ``uid`` makes it.
    root = tmp_path / "run"
    app, artefact, step_dir = root / "steps" / "s" / "app", root / "artefact", root / "steps" / "s"
    for directory in (app, artefact):
        directory.mkdir(parents=True)
    (app / "train.py").write_text("print('trained')\n")
    for path in (root, *root.rglob("*")):
        os.chown(path, uid, uid)
    return StepContext(990_400, app, artefact, step_dir, {}, {"DB_PASSWORD": "pa55"}, 1)


@pytest.mark.parametrize(
    ("server_uid", "image_user", "opened"),
    [(1000, "", True), (1000, "app", True), (0, "app", True), (0, "", False)],
    ids=["root-image-non-root-server", "user-image", "user-image-root-server", "root-on-root"],
)
def test_a_container_user_that_is_not_the_servers_gets_app_artefact_and_secrets_opened(
    tmp_path, monkeypatch, server_uid, image_user, opened
):
    from bedrock.runs.executors import docker as executor

    context = _server_owned_context(tmp_path, 0)
    monkeypatch.setattr(executor.os, "getuid", lambda: server_uid)
    _, exported = executor._variables(context)

    executor._opened_to_the_container(context, image_user, exported)

    secrets = executor._secrets_file(context)
    assert secrets.stat().st_mode & 0o777 == (0o444 if opened else 0o400)
    for path in (context.app_dir, context.artefact_dir, context.app_dir / "train.py"):
        assert bool(path.stat().st_mode & 0o002) is opened, path
    assert context.artefact_dir.parent.stat().st_mode & 0o777 == (0o700 if opened else 0o755)


@needs_docker
@pytest.mark.slow
def test_a_root_image_writes_app_and_artefact_and_reads_secrets_of_a_non_root_server(
    tmp_path, monkeypatch
):
    from bedrock.runs.executors import docker as executor

    server = 1000  # what the files of a server running as uid 1000 look like to the container
    context = _server_owned_context(tmp_path, server)
    monkeypatch.setattr(executor.os, "getuid", lambda: server)
    write_secrets = executor._write_secrets

    def written_by_the_server(context, exported, readable):
        write_secrets(context, exported, readable)
        os.chown(executor._secrets_file(context), server, server)

    monkeypatch.setattr(executor, "_write_secrets", written_by_the_server)
    site = "$(python3 -c 'import sysconfig; print(sysconfig.get_paths()[\"purelib\"])')"
    command = (
        "echo w > /app/new && echo w > /artefact/out && test $DB_PASSWORD = pa55 && "
        # What pip install into the image's own Python needs: root's site-packages writable.
        f"touch {site}/bedrock-probe && echo all-ok"
    )
    handle = executor.DockerExecutor().start(replace(plan(), command=command), context)
    output = b"".join(handle.output()).decode()

    assert handle.wait(60) == 0, output
    assert "all-ok" in output
    assert (context.artefact_dir / "out").read_text() == "w\n"
    assert labelled_containers(990_400) == []


def test_a_name_refused_since_the_run_was_accepted_reaches_no_container(tmp_path):
    from bedrock.runs.executors.docker import _variables, container_options

    environment = {"LD_PRELOAD": "/app/x.so", "ALPHA": "1", "BEDROCK_RUN_ID": "7"}
    secrets = {"BASH_ENV": "/app/x.sh", "DB_PASSWORD": "pa55"}
    context = StepContext(1, tmp_path, tmp_path, tmp_path, environment, secrets, 1)

    options = container_options(plan(), context)
    _, exported = _variables(context)

    assert "LD_PRELOAD" not in options["environment"] and "BASH_ENV" not in exported
    assert options["environment"]["ALPHA"] == "1" and exported["DB_PASSWORD"] == "pa55"
    assert options["environment"]["BEDROCK_RUN_ID"] == "7"
