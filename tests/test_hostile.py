"""Steps and users acting as attackers would: every case must end in a clear error, with nothing
half-written and no run left in a state that is not true.

The sections follow the threat they answer; each case names the behaviour it holds.
"""

from __future__ import annotations

import pytest

# --- 1. A step sees its own run only -----------------------------------------------------------


def _sandbox_skip():
    import os

    from bedrock.runs.executors.local import sandbox_problem

    problem = sandbox_problem()
    if problem and os.environ.get("BEDROCK_REQUIRE_SANDBOX") == "1":
        raise RuntimeError(f"BEDROCK_REQUIRE_SANDBOX=1 but {problem}")
    return pytest.mark.skipif(bool(problem), reason=f"no bubblewrap sandbox here: {problem}")


@pytest.fixture
def host_files(settings):
    """Each place of the host a step must neither read nor write, with a file in it."""
    import os
    import sys
    import tempfile
    from pathlib import Path

    from django.db import connection

    import bedrock.settings as base
    from bedrock.runs.workspace import Workspace, log_path

    other = Workspace(999_999)
    other_log = log_path(999_999, "train")
    other_checkout = other.step_app("train") / "train.py"
    for path, text in ((other_checkout, "print('theirs')\n"), (other_log, "their log\n")):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    git_cache = Path(settings.BEDROCK_GIT_CACHE) / "pipeline-999999" / "HEAD"
    git_cache.parent.mkdir(parents=True, exist_ok=True)
    git_cache.write_text("ref: refs/heads/main\n")
    keys = Path(settings.BEDROCK_HOME) / "secret-keys"
    keys.write_text("a-key-of-this-server\n")
    host_tmp = Path(tempfile.mkstemp(prefix="bedrock-host-", dir="/tmp")[1])
    host_tmp.write_text("the host's /tmp\n")
    places = {
        "secret keys": keys,
        "embedded secret keys": base.BEDROCK_HOME / "secret-keys",
        "django secret key": base.BEDROCK_HOME / "django-secret-key",
        "database": Path(connection.settings_dict["NAME"]),
        "another run's checkout": other_checkout,
        "another run's log": other_log,
        "the server's venv": Path(sys.prefix) / "pyvenv.cfg",
        "the host's /tmp": host_tmp,
        "another pipeline's Git cache": git_cache,
        "the Docker socket": Path("/run/docker.sock"),
    }
    root_probe = Path("/root/.bedrock-hostile-probe")
    if Path("/root").is_dir() and os.access("/root", os.W_OK):
        root_probe.write_text("root's\n")
        places["/root"] = root_probe
    yield {name: path for name, path in places.items() if path.exists()}
    host_tmp.unlink()
    root_probe.unlink(missing_ok=True)


@_sandbox_skip()
@pytest.mark.django_db(transaction=True)
def test_a_sandboxed_step_can_neither_read_nor_write_the_servers_files(tmp_path, host_files):
    import os
    from pathlib import Path
    from shlex import quote

    from bedrock.runs.models import RunStatus
    from bedrock.runs.services import run_create
    from tests.repos import hcl, step
    from tests.runflow import pipeline_for, repo_with, step_log, wait_until_done

    places = host_files
    # The database changes as the run goes: its probe says whether the step could open it.
    before = {n: p.read_bytes() for n, p in places.items() if p.is_file() and n != "database"}
    # The checkout's own script is the control: the probes do see what is there.
    checks = {**places, "the checkout": Path("/app/probe.sh")}
    probes = "".join(
        f"if cat {quote(str(path))} > /dev/null 2>&1; then echo {quote('READ ' + name)}; fi\n"
        f"if [ -e {quote(str(path))} ]; then echo {quote('SEEN ' + name)}; fi\n"
        # Opened for writing, nothing written: a failing sandbox must not damage the real files.
        f"if [ -e {quote(str(path))} ] && (: >> {quote(str(path))}) 2> /dev/null; "
        f"then echo {quote('WROTE ' + name)}; fi\n"
        # A new file beside it (the step's own /tmp is the step's: not probed there).
        + (
            f"if touch {quote(str(path.parent / 'bedrock-probe-new'))} 2> /dev/null; "
            f"then echo {quote('CREATED ' + name)}; fi\n"
            if path.parent != Path("/tmp")
            else ""
        )
        for name, path in checks.items()
    )
    script = probes + (
        "for d in /app /artefact /tmp $HOME; do echo ok > $d/probe && echo WRITABLE $d; done\n"
        "if (echo x > /escape) 2> /dev/null; then echo 'WROTE the sandbox root'; fi\n"
        "echo uid=$(id -u) pid=$$ processes=$(ps -e --no-headers | wc -l)\n"
        "python -c 'import sys; print(\"prefix=\" + sys.prefix)'\n"
    )
    repo = repo_with(tmp_path, hcl("train", step("probe", "bash probe.sh")), **{"probe.sh": script})
    pipeline = pipeline_for(repo)

    run = wait_until_done(run_create(actor=None, pipeline=pipeline))

    log = step_log(run, "probe")
    assert run.status == RunStatus.SUCCEEDED, (run.failure_reason, log)
    for name in places:
        assert f"READ {name}" not in log and f"WROTE {name}" not in log, log
        assert f"CREATED {name}" not in log, log
        assert not (places[name].parent / "bedrock-probe-new").exists()
        assert f"SEEN {name}" not in log, log
    assert "READ the checkout\nSEEN the checkout\nWROTE the checkout\nCREATED the checkout\n" in log
    assert "WROTE the sandbox root" not in log
    for directory in ("/app", "/artefact", "/tmp", "/home/step"):
        assert f"WRITABLE {directory}" in log, log
    fields = dict(part.split("=", 1) for part in log.split() if "=" in part)
    assert fields["uid"] != "0", log
    # The step's own pid namespace: bwrap's init, the shells, ps and wc, none of the host's.
    assert int(fields["pid"]) < 10 and int(fields["processes"]) < 10, log
    assert fields["prefix"] == "/venv"
    assert {name: places[name].read_bytes() for name in before} == before
    # What the step wrote in /artefact is the server's to read and publish.
    assert run.output_model_version is not None
    assert not os.path.exists("/escape")


@pytest.fixture
def no_bubblewrap(settings, monkeypatch):
    """A server without bubblewrap whose operator has not accepted the risk."""
    from bedrock.runs.executors import local

    real_which = local.shutil.which
    monkeypatch.setattr(
        local.shutil, "which", lambda name: None if name == "bwrap" else real_which(name)
    )
    settings.BEDROCK_ALLOW_UNSANDBOXED = False
    settings.BEDROCK_EXECUTOR = "local"


def _member_and_pipeline(tmp_path, *, superuser: bool = False):
    from bedrock.pipelines.models import Role
    from tests import factories
    from tests.repos import hcl, step
    from tests.runflow import pipeline_for, repo_with

    pipeline = pipeline_for(
        repo_with(
            tmp_path,
            hcl("train", step("s", "echo ran > /tmp/x; echo ran > $BEDROCK_ARTEFACT_DIR/out")),
        )
    )
    who = factories.user(is_superuser=superuser, is_staff=superuser)
    factories.member(pipeline.project, who, Role.DEVELOPER)
    return who, pipeline


@pytest.mark.django_db(transaction=True)
def test_without_bubblewrap_a_developers_run_is_rejected_and_the_page_says_why(
    tmp_path, no_bubblewrap, client
):
    from django.urls import reverse

    from bedrock.runs.executors.local import sandbox_available
    from bedrock.runs.models import RunStatus
    from bedrock.runs.services import run_create
    from bedrock.runs.workspace import Workspace

    developer, pipeline = _member_and_pipeline(tmp_path)

    run = run_create(actor=developer, pipeline=pipeline)

    run.refresh_from_db()
    assert not sandbox_available()
    assert run.status == RunStatus.REJECTED
    assert run.failure_reason == (
        "the local executor has no sandbox on this server (bubblewrap is not installed): only "
        "site administrators' runs can execute; install bubblewrap or set "
        "BEDROCK_ALLOW_UNSANDBOXED=on to accept the risk"
    )
    assert not run.steps.filter(started_at__isnull=False).exists()
    assert not Workspace(run.pk).root.exists()
    client.force_login(developer)
    page = client.get(reverse("ui:run", args=[run.pk])).content.decode()
    assert "install bubblewrap or set BEDROCK_ALLOW_UNSANDBOXED=on to accept the risk" in page


@pytest.mark.django_db(transaction=True)
def test_without_bubblewrap_a_site_administrators_run_executes(tmp_path, no_bubblewrap):
    from bedrock.runs.models import RunStatus
    from bedrock.runs.services import run_create
    from tests.runflow import wait_until_done

    admin, pipeline = _member_and_pipeline(tmp_path, superuser=True)

    run = wait_until_done(run_create(actor=admin, pipeline=pipeline))

    assert run.status == RunStatus.SUCCEEDED, run.failure_reason


@pytest.mark.django_db(transaction=True)
def test_without_bubblewrap_the_operator_may_accept_the_risk_for_everyone(
    tmp_path, no_bubblewrap, settings
):
    from bedrock.runs.models import RunStatus
    from bedrock.runs.services import run_create
    from tests.runflow import wait_until_done

    settings.BEDROCK_ALLOW_UNSANDBOXED = True
    developer, pipeline = _member_and_pipeline(tmp_path)

    run = wait_until_done(run_create(actor=developer, pipeline=pipeline))

    assert run.status == RunStatus.SUCCEEDED, run.failure_reason


@pytest.mark.django_db(transaction=True)
def test_a_bubblewrap_that_cannot_make_namespaces_counts_as_none(tmp_path, settings, monkeypatch):
    from bedrock.runs.executors import local
    from bedrock.runs.models import RunStatus
    from bedrock.runs.services import run_create

    broken = tmp_path / "bwrap"
    said = "bwrap: No permissions to create new namespace"
    broken.write_text(f"#!/bin/sh\necho '{said}' >&2\nexit 1\n")
    broken.chmod(0o755)
    monkeypatch.setattr(local.shutil, "which", lambda name: str(broken))
    settings.BEDROCK_ALLOW_UNSANDBOXED = False
    developer, pipeline = _member_and_pipeline(tmp_path)

    run = run_create(actor=developer, pipeline=pipeline)

    assert local.sandbox_problem() == f"bubblewrap cannot create its namespaces here: {said}"
    assert local.bubblewrap() is None
    assert run.status == RunStatus.REJECTED
    assert "let bubblewrap create user namespaces or set BEDROCK_ALLOW_UNSANDBOXED=on" in (
        run.failure_reason
    )


@pytest.mark.django_db(transaction=True)
def test_a_run_accepted_with_a_sandbox_does_not_execute_once_bubblewrap_is_gone(
    tmp_path, settings, monkeypatch
):
    from bedrock.runs.executors.base import ExecutorError, StepContext
    from bedrock.runs.executors.local import LocalExecutor
    from bedrock.runs.models import Run, RunStatus

    developer, pipeline = _member_and_pipeline(tmp_path)
    run = Run.objects.create(
        pipeline=pipeline, number=1, status=RunStatus.RUNNING, triggered_by=developer
    )
    settings.BEDROCK_LOCAL_SANDBOX = False
    settings.BEDROCK_ALLOW_UNSANDBOXED = False
    context = StepContext(run.pk, tmp_path / "app", tmp_path / "art", tmp_path / "step", {}, {}, 1)

    refusal = r"BEDROCK_LOCAL_SANDBOX is off\): only site .*; set BEDROCK_LOCAL_SANDBOX=on or"
    with pytest.raises(ExecutorError, match=refusal):
        LocalExecutor().start(None, context)
    assert not (tmp_path / "step").exists()


# --- 2. What a run may set in a step's environment --------------------------------------------


# --- 3. Bounded work ---------------------------------------------------------------------------


# --- 4. Every run ends in a true state ---------------------------------------------------------


# --- 4b. Followers, the worker, archives, idempotency, addresses, repositories ------------------


# --- 5. Masking --------------------------------------------------------------------------------


# --- 6. Deployment -----------------------------------------------------------------------------


# --- 7. The Docker executor --------------------------------------------------------------------


def _docker_skip():
    from tests.test_runs_docker import needs_docker

    return needs_docker


def _containers(run_id: int) -> list:
    from tests.test_runs_docker import labelled_containers

    return labelled_containers(run_id)


def _step_plan(command: str, name: str = "train", image: str = "python:3.11-slim", **resources):
    from bedrock.pipelines.spec import Resources
    from bedrock.runs.plan import StepPlan

    limits = {"cpu": None, "memory": None, "gpu": None, "millicpu": None}
    limits |= {"memory_bytes": None, "gpu_count": 0} | resources
    return StepPlan(
        name=name,
        image=image,
        command=command,
        environment={},
        secret_names=(),
        resources=Resources(**limits),
        depends_on=(),
        retry_limit=0,
    )


def _context(tmp_path, run_id: int, environment=None, secrets=None):
    from bedrock.runs.executors.base import StepContext

    for name in ("app", "artefact", "step"):
        (tmp_path / name).mkdir(exist_ok=True)
    return StepContext(
        run_id=run_id,
        app_dir=tmp_path / "app",
        artefact_dir=tmp_path / "artefact",
        step_dir=tmp_path / "step",
        environment=environment or {},
        secrets=secrets or {},
        attempt=1,
    )


def _pipeline(tmp_path, steps: str, files: dict | None = None, secrets: str = "", **options):
    """A pipeline whose one stanza is made of ``steps``."""
    from tests.repos import hcl
    from tests.runflow import pipeline_for, repo_with

    repo = repo_with(tmp_path, hcl("train", steps, secrets=secrets), **(files or {}))
    return pipeline_for(repo, **options)


def _start(tmp_path, steps: str, files: dict | None = None, **options):
    """A run of :func:`_pipeline`, started on the command line."""
    from bedrock.runs.services import run_create

    return run_create(actor=None, pipeline=_pipeline(tmp_path, steps, files, **options))


def _container_of(run):
    from tests.runflow import wait_for

    [container] = wait_for(lambda: _containers(run.pk), what="the step's container")
    return container


def _published(run, name: str) -> str:
    import zipfile

    from django.core.files.storage import default_storage

    with default_storage.open(run.output_model_version.storage_key) as handle:
        return zipfile.ZipFile(handle).read(name).decode().strip()


@pytest.fixture
def on_docker(settings):
    settings.BEDROCK_EXECUTOR = "docker"


@_docker_skip()
@pytest.mark.django_db(transaction=True)
def test_stopping_a_docker_run_ends_its_step_stopped_and_removes_the_container(tmp_path, on_docker):
    from bedrock.runs.models import ACTIVE_STATUSES, RunStatus
    from bedrock.runs.services import run_stop
    from tests.repos import step
    from tests.runflow import wait_until_done

    run = _start(tmp_path, step("s", "sleep 120"))
    _container_of(run)

    run_stop(actor=None, run=run)

    run = wait_until_done(run, timeout=90)
    assert run.status == RunStatus.STOPPED
    assert run.steps.get().status == RunStatus.STOPPED
    assert not run.steps.filter(status__in=ACTIVE_STATUSES).exists()
    assert "No such container" not in run.failure_reason
    assert _containers(run.pk) == []


@_docker_skip()
@pytest.mark.django_db(transaction=True)
def test_a_docker_run_past_its_time_limit_fails_with_the_reason_not_a_404(tmp_path, on_docker):
    from datetime import timedelta

    from bedrock.runs.models import ACTIVE_STATUSES, RunStatus
    from tests.repos import step
    from tests.runflow import wait_until_done

    run = _start(tmp_path, step("slow", "sleep 120"), max_run_time=timedelta(seconds=3))

    run = wait_until_done(run, timeout=90)
    assert run.status == RunStatus.FAILED
    assert run.failure_reason == "exceeded the maximum run time of 3s"
    assert not run.steps.filter(status__in=ACTIVE_STATUSES).exists()
    assert _containers(run.pk) == []


@_docker_skip()
@pytest.mark.parametrize(
    ("command", "grace", "sentence", "exit_code"),
    [
        ("trap 'echo saved; exit 0' TERM; sleep 60 & wait", 20, "ended on SIGTERM", 0),
        (
            "trap '' TERM; sleep 60 & wait; sleep 60",
            2,
            "killed with SIGKILL after the 2 s grace period",
            137,
        ),
        ("sleep 60", 0, "killed with SIGKILL", 137),
    ],
)
def test_killing_a_container_gives_sigterm_then_sigkill_after_the_grace_and_says_which(
    tmp_path, command, grace, sentence, exit_code
):
    import threading
    import time

    from bedrock.runs.executors.docker import DockerExecutor

    run_id = 990_000 + grace
    handle = DockerExecutor().start(_step_plan(command), _context(tmp_path, run_id))
    lines = []
    try:
        time.sleep(2)  # the trap is set
        pump = threading.Thread(target=lambda: lines.extend(handle.output()), daemon=True)
        pump.start()

        said = handle.kill(grace=grace)

        pump.join(10)
        assert said == sentence
        assert handle.wait(5) == exit_code
        assert handle.kill(grace=grace) == ""  # twice is harmless
    finally:
        DockerExecutor().cleanup_run(run_id)
    assert _containers(run_id) == []
    if exit_code == 0:
        assert b"saved\n" in lines


@_docker_skip()
@pytest.mark.django_db(transaction=True)
def test_the_run_token_reaches_the_container_in_a_read_only_file_never_its_environment(
    tmp_path, on_docker
):
    from bedrock.runs.models import Run, RunStatus
    from tests.repos import step
    from tests.runflow import wait_for, wait_until_done

    steps = step(
        "s",
        "python3 token_hash.py > /artefact/token-hash",
        "if (echo forged > /run/bedrock/secrets.env) 2> /dev/null; then echo WROTE-THE-FILE; fi",
        "sleep 4",
    )
    digest = "import hashlib, os\ntoken = os.environ['BEDROCK_API_TOKEN']\n"
    digest += "print(hashlib.sha256(token.encode()).hexdigest())\n"
    run = _start(tmp_path, steps, {"token_hash.py": digest})
    token_hash = wait_for(
        lambda: Run.objects.filter(pk=run.pk).values_list("token_hash", flat=True).first(),
        what="the run's token",
    )
    container = _container_of(run)
    environment = container.attrs["Config"]["Env"]
    mounts = {m["Destination"]: m for m in container.attrs["Mounts"]}

    run = wait_until_done(run)

    assert run.status == RunStatus.SUCCEEDED, run.failure_reason
    assert not [v for v in environment if v.startswith("BEDROCK_API_TOKEN=")], environment
    assert "BEDROCK_PIPELINE_RUN_ID=1" in environment  # what is not secret stays visible
    assert mounts["/run/bedrock/secrets.env"]["RW"] is False
    assert _published(run, "token-hash") == token_hash
    assert "WROTE-THE-FILE" not in _log(run, "s")


def _log(run, name: str) -> str:
    from tests.runflow import step_log

    return step_log(run, name)


@_docker_skip()
@pytest.mark.django_db(transaction=True)
def test_a_container_has_no_capabilities_and_still_installs_packages_and_writes_artefacts(
    tmp_path, on_docker
):
    from bedrock.runs.models import RunStatus
    from tests.repos import step
    from tests.runflow import wait_until_done

    steps = step(
        "s",
        "grep CapEff /proc/self/status",
        "python3 -m venv /tmp/v && /tmp/v/bin/pip install -q --no-index --no-build-isolation ./pkg",
        "/tmp/v/bin/python -c 'import tinypkg; print(tinypkg.GREETING)' > /artefact/installed",
        "if chown 1234 /artefact/installed 2> /dev/null; then echo CHOWNED; fi",
        "sleep 2",
    )
    setup = "from setuptools import setup\n"
    setup += 'setup(name="tinypkg", version="1", py_modules=["tinypkg"])\n'
    run = _start(
        tmp_path, steps, {"pkg/setup.py": setup, "pkg/tinypkg.py": "GREETING = 'installed'\n"}
    )
    host_config = _container_of(run).attrs["HostConfig"]

    run = wait_until_done(run)

    log = _log(run, "s")
    assert run.status == RunStatus.SUCCEEDED, (run.failure_reason, log)
    assert host_config["CapDrop"] == ["ALL"] and not host_config["CapAdd"]
    assert "no-new-privileges" in host_config["SecurityOpt"]
    assert "CapEff:\t0000000000000000" in log
    assert "CHOWNED" not in log
    assert _published(run, "installed") == "installed"


@_docker_skip()
@pytest.mark.django_db(transaction=True)
def test_a_container_runs_as_its_images_user_and_can_still_write_app_and_artefact(
    tmp_path, on_docker
):
    import io

    import docker

    from bedrock.runs.models import RunStatus
    from bedrock.runs.services import run_create
    from bedrock.secrets.models import Secret
    from tests.repos import step
    from tests.runflow import wait_until_done

    image = "bedrock-test-user:1"
    dockerfile = io.BytesIO(b"FROM python:3.11-slim\nUSER 1000:1000\n")
    docker.from_env().images.build(fileobj=dockerfile, tag=image, rm=True)
    steps = step(
        "s",
        "id -u > /artefact/uid",
        "echo built > /app/build.txt && cp /app/build.txt /artefact/",
        "test -n $BEDROCK_API_TOKEN && echo $DB_PASSWORD > /artefact/secret-seen",
    ).replace("python:3.11-slim", image)

    pipeline = _pipeline(tmp_path, steps, secrets='"DB_PASSWORD"')
    Secret.objects.create(pipeline=pipeline, name="DB_PASSWORD", value="pa55-for-the-user")

    run = run_create(actor=None, pipeline=pipeline)

    run = wait_until_done(run)

    assert run.status == RunStatus.SUCCEEDED, (run.failure_reason, _log(run, "s"))
    assert _published(run, "uid") == "1000"
    assert _published(run, "build.txt") == "built"
    assert _published(run, "secret-seen") == "pa55-for-the-user"


@pytest.fixture
def host_service():
    """An HTTP service of the host, on every interface, as Bedrock's API would be."""
    import http.server
    import threading

    class Pong(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"pong from the host")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("0.0.0.0", 0), Pong)  # noqa: S104
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


@_docker_skip()
@pytest.mark.django_db(transaction=True)
def test_a_container_reaches_an_api_on_the_hosts_loopback_address_through_the_gateway(
    tmp_path, on_docker, settings, host_service
):
    from bedrock.runs.models import RunStatus
    from tests.repos import step
    from tests.runflow import wait_until_done

    settings.BEDROCK_API_DOMAIN = f"http://127.0.0.1:{host_service}"
    call = "import os, urllib.request\nprint(os.environ['BEDROCK_API_DOMAIN'])\n"
    call += "print(urllib.request.urlopen(os.environ['BEDROCK_API_DOMAIN'], timeout=10).read())\n"
    steps = step("s", "python3 call.py", "echo done > /artefact/out")

    run = wait_until_done(_start(tmp_path, steps, {"call.py": call}))

    log = _log(run, "s")
    assert run.status == RunStatus.SUCCEEDED, (run.failure_reason, log)
    assert f"http://host.docker.internal:{host_service}\n" in log
    assert "pong from the host" in log


@_docker_skip()
@pytest.mark.django_db(transaction=True)
def test_steps_join_the_docker_network_the_operator_names_and_a_missing_one_is_named(
    tmp_path, on_docker, settings
):
    import docker

    from bedrock.runs.models import RunStatus
    from bedrock.runs.services import run_create
    from tests.repos import step
    from tests.runflow import wait_until_done

    network = docker.from_env().networks.create("bedrock-test-steps", driver="bridge")
    try:
        settings.BEDROCK_DOCKER_NETWORK = "bedrock-test-steps"
        run = _start(tmp_path, step("s", "echo done > /artefact/out; sleep 2"))
        networks = set(_container_of(run).attrs["NetworkSettings"]["Networks"])
        assert wait_until_done(run).status == RunStatus.SUCCEEDED, run.failure_reason
        assert networks == {"bedrock-test-steps"}
    finally:
        network.remove()

    run = wait_until_done(run_create(actor=None, pipeline=run.pipeline))

    assert run.status == RunStatus.FAILED
    assert "the Docker network 'bedrock-test-steps' (BEDROCK_DOCKER_NETWORK) does not exist" in (
        run.failure_reason
    )
    assert _containers(run.pk) == []


@_docker_skip()
@pytest.mark.django_db(transaction=True)
def test_a_gpu_step_on_an_engine_without_gpus_says_so_and_which_step_asked(tmp_path, on_docker):
    from bedrock.runs.models import ACTIVE_STATUSES, RunStatus
    from tests.repos import step
    from tests.runflow import wait_until_done

    run = wait_until_done(
        _start(tmp_path, step("train", "nvidia-smi", extra='resources {\ngpu = "1"\n}'))
    )

    assert run.status == RunStatus.FAILED
    reason = "no GPU is available on this Docker Engine; step 'train' asks for 1"
    assert reason in run.failure_reason and "could not select device driver" not in (
        run.failure_reason
    )
    assert run.steps.get().failure_reason == reason
    assert not run.steps.filter(status__in=ACTIVE_STATUSES).exists()
    assert _containers(run.pk) == []


@_docker_skip()
@pytest.mark.django_db(transaction=True)
def test_a_step_killed_for_memory_says_out_of_memory_and_its_limit(tmp_path, on_docker):
    from bedrock.runs.models import RunStatus
    from tests.repos import step
    from tests.runflow import wait_until_done

    hog = step("hog", "python3 hog.py", extra='resources {\nmemory = "256M"\n}')
    files = {"hog.py": "chunks = [b'x' * (64 << 20) for _ in range(64)]\n"}

    run = wait_until_done(_start(tmp_path, hog, files))

    assert run.status == RunStatus.FAILED
    assert run.failure_reason == "step 'hog' failed: killed: out of memory (limit 256M)"
    assert run.steps.get().exit_code == 137
    assert _containers(run.pk) == []


def _own_variables_seen(executor, tmp_path) -> list[str]:
    """What a step sees of Bedrock's variables when secrets try to replace them."""
    import threading

    from bedrock.runs.plan import StepPlan

    environment = {"BEDROCK_API_TOKEN": "bdrkrun_the-real-one", "BEDROCK_PIPELINE_RUN_ID": "7"}
    forged = {name: "forged-by-a-secret" for name in (*environment, "BEDROCK_APP_DIR")}
    context = _context(tmp_path, 990_100, {**environment, "ALPHA": "1"}, forged)
    command = "echo $BEDROCK_API_TOKEN $BEDROCK_PIPELINE_RUN_ID $BEDROCK_APP_DIR $ALPHA"
    step_plan: StepPlan = _step_plan(command)
    handle = executor.start(step_plan, context)
    lines: list[bytes] = []
    pump = threading.Thread(target=lambda: lines.extend(handle.output()), daemon=True)
    pump.start()
    try:
        assert handle.wait(120) == 0
    finally:
        handle.kill()
        executor.cleanup_run(990_100)
    pump.join(10)
    return b"".join(lines).decode().split()


@pytest.mark.django_db(transaction=True)
def test_a_secret_named_as_bedrocks_own_variables_replaces_none_of_them_on_the_local_executor(
    tmp_path,
):
    from bedrock.runs.executors.local import LocalExecutor, sandbox_available

    seen = _own_variables_seen(LocalExecutor(), tmp_path)

    app = "/app" if sandbox_available() else str(tmp_path / "app")
    assert seen == ["bdrkrun_the-real-one", "7", app, "1"]


@_docker_skip()
def test_a_secret_named_as_bedrocks_own_variables_replaces_none_of_them_in_a_container(tmp_path):
    from bedrock.runs.executors.docker import DockerExecutor

    seen = _own_variables_seen(DockerExecutor(), tmp_path)

    assert seen == ["bdrkrun_the-real-one", "7", "/app", "1"]
    assert _containers(990_100) == []


@pytest.mark.parametrize("executor", ["local", pytest.param("docker", marks=_docker_skip())])
@pytest.mark.django_db(transaction=True)
def test_a_parameter_named_bedrock_api_token_does_not_replace_the_run_token(
    tmp_path, settings, executor
):
    from django.db import transaction

    from bedrock.runs.models import Run, RunStatus
    from tests.repos import step
    from tests.runflow import wait_for, wait_until_done

    settings.BEDROCK_EXECUTOR = executor
    forged = {"BEDROCK_API_TOKEN": "forged-by-a-parameter", "BEDROCK_PIPELINE_RUN_ID": "666"}
    steps = step(
        "s",
        "python3 token_hash.py > $BEDROCK_ARTEFACT_DIR/token-hash",
        "echo $BEDROCK_PIPELINE_RUN_ID > $BEDROCK_ARTEFACT_DIR/number",
        "sleep 2",
    )
    digest = "import hashlib, os\ntoken = os.environ['BEDROCK_API_TOKEN']\n"
    digest += "print(hashlib.sha256(token.encode()).hexdigest())\n"
    # Stored on the run directly, past the checks a request meets: the plan and the executor
    # alone must keep the run's own values.
    with transaction.atomic():
        run = _start(tmp_path, steps, {"token_hash.py": digest})
        Run.objects.filter(pk=run.pk).update(parameters={**run.parameters, **forged})
    token_hash = wait_for(
        lambda: Run.objects.filter(pk=run.pk).values_list("token_hash", flat=True).first(),
        what="the run's token",
    )

    run = wait_until_done(run)

    assert run.status == RunStatus.SUCCEEDED, (run.failure_reason, _log(run, "s"))
    assert run.parameters["BEDROCK_API_TOKEN"] == "forged-by-a-parameter"
    assert _published(run, "token-hash") == token_hash
    assert _published(run, "number") == str(run.number)
