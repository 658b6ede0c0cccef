"""Steps and users acting as attackers would: every case must end in a clear error, with nothing
half-written and no run left in a state that is not true.

The sections follow the threat they answer; each case names the behaviour it holds.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bedrock.actors import SYSTEM
from tests import lifecycle

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
@pytest.mark.slow
def test_a_sandboxed_step_can_neither_read_nor_write_the_servers_files(tmp_path, host_files):
    import os
    import sys
    from pathlib import Path

    places = host_files
    # A root-only file among the host's programs, which the sandbox binds read-only: seen there,
    # but unreadable to a step that is not root to the host (a user namespace alone would be).
    prefix = Path(os.path.realpath(sys.base_prefix))
    root_only = prefix / f"bedrock-hostile-root-only-{os.getpid()}"
    if os.geteuid() == 0:
        root_only.write_text("root's only\n")
        root_only.chmod(0o600)
    try:
        _probe_the_servers_files(tmp_path, places, root_only)
    finally:
        root_only.unlink(missing_ok=True)


def _probe_the_servers_files(tmp_path, places, root_only):
    import os
    from pathlib import Path
    from shlex import quote

    from bedrock.runs.models import RunStatus
    from bedrock.runs.services import run_create
    from tests.repos import hcl, step
    from tests.runflow import pipeline_for, repo_with, step_log, wait_until_done

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
        # Who the step is to the host: its uid through the namespace's map.
        "awk -v u=$(id -u) '$1 <= u && u < $1 + $3 { print \"outside=\" $2 + u - $1 }' "
        "/proc/self/uid_map\n"
        # Asked, never written: a failing sandbox must not change the host's kernel.
        "if [ -w /proc/sys/kernel/core_pattern ]; then echo WRITABLE core_pattern; fi\n"
        f"if [ -e {quote(str(root_only))} ]; then echo SEEN root-only; fi\n"
        f"if cat {quote(str(root_only))} > /dev/null 2>&1; then echo READ root-only; fi\n"
        "python -c 'import sys; print(\"prefix=\" + sys.prefix)'\n"
    )
    repo = repo_with(tmp_path, hcl("train", step("probe", "bash probe.sh")), **{"probe.sh": script})
    pipeline = pipeline_for(repo)

    run = wait_until_done(run_create(actor=SYSTEM, pipeline=pipeline))

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
    if os.geteuid() == 0:
        # The server's own uid otherwise. (Under a user namespace, a second one that bubblewrap
        # nests for /dev/pts makes the map's outside column its own, not the host's.)
        assert fields["outside"] != "0", log
    assert "WRITABLE core_pattern" not in log
    assert "READ root-only" not in log
    if os.geteuid() == 0:
        assert "SEEN root-only" in log, log  # the control: the probe does reach the file
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
@pytest.mark.slow
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


@_sandbox_skip()
@pytest.mark.django_db(transaction=True)
def test_handing_a_checkout_to_the_sandbox_uid_follows_no_link_out_of_it(tmp_path):
    from bedrock.pipelines.spec import Resources
    from bedrock.runs.executors.base import StepContext
    from bedrock.runs.executors.local import SANDBOX_UID, LocalExecutor
    from bedrock.runs.plan import StepPlan

    if os.geteuid() != 0:
        pytest.skip("the step is the server's own uid: nothing is handed over")
    # Root's files outside the run, reached from it by a symbolic and a hard link.
    outside = tmp_path / "outside"
    outside.mkdir()
    linked, hard = outside / "linked", outside / "hard"
    for path in (linked, hard):
        path.write_text("root's\n")
    app, artefact, step_dir = tmp_path / "app", tmp_path / "artefact", tmp_path / "step"
    for directory in (app, artefact, step_dir):
        directory.mkdir()
    (app / "train.py").write_text("print('mine')\n")
    (app / "link").symlink_to(linked)
    (app / "dir-link").symlink_to(outside, target_is_directory=True)
    os.link(hard, artefact / "hard")
    context = StepContext(990_500, app, artefact, step_dir, {}, {}, 1)
    limits = Resources(
        cpu=None, memory=None, gpu=None, millicpu=None, memory_bytes=None, gpu_count=0
    )
    command = "echo more >> /app/train.py && echo ok; echo x >> /artefact/hard && echo WROTE; true"

    handle = LocalExecutor().start(StepPlan("s", "", command, {}, (), limits, (), 0), context)
    output = b"".join(handle.output()).decode()

    assert handle.wait(60) == 0, output
    assert "ok\n" in output and "WROTE" not in output, output
    assert (app / "train.py").stat().st_uid == SANDBOX_UID  # the control: the checkout is its
    for path in (outside, linked, hard):
        assert path.stat().st_uid == 0, path
    assert hard.read_text() == "root's\n"


# --- 2. What a run may set in a step's environment --------------------------------------------


# Names a loader, shell or interpreter acts on, each with a word of its reason.
REFUSED_NAMES = {
    "LD_PRELOAD": "dynamic loader",
    "LD_LIBRARY_PATH": "dynamic loader",
    "GCONV_PATH": "dynamic loader",
    "GLIBC_TUNABLES": "dynamic loader",
    "PATH": "find programs",
    "BASH_ENV": "shell",
    "BASH_FUNC_ls": "shell",
    "ENV": "shell",
    "IFS": "shell",
    "PS4": "shell",
    "SHELLOPTS": "shell",
    "PROMPT_COMMAND": "shell",
    "PYTHONPATH": "interpreter",
    "PYTHONWARNINGS": "interpreter",
    "PYTHONSTARTUP": "interpreter",
    "PERL5OPT": "interpreter",
    "RUBYOPT": "interpreter",
    "NODE_OPTIONS": "interpreter",
    "JAVA_TOOL_OPTIONS": "interpreter",
    "OPENSSL_CONF": "interpreter",
    "BROWSER": "tools start",
    "GIT_SSH_COMMAND": "tools start",
    "GIT_CONFIG_GLOBAL": "tools start",
    "PAGER": "tools start",
    "HOME": "home directory",
    "BEDROCK_API_TOKEN": "set by Bedrock",
    "BEDROCK_PIPELINE_RUN_ID": "set by Bedrock",
    "BEDROCK_GIT_TOKEN": "Git credential",
    "BEDROCK_ANYTHING_NEW": "reserved",
}
# Ordinary settings real pipelines use; none runs code.
ALLOWED_NAMES = [
    "PIP_INDEX_URL",
    "TMPDIR",
    "PYTHONUNBUFFERED",
    "PYTHONHASHSEED",
    "SSL_CERT_FILE",
    "HTTPS_PROXY",
    "BEDROCK_SERVER",
    "LEARNING_RATE",
    "prometheus_multiproc_dir",
]


def _env_file(parameters: str = "", secrets: str = "") -> str:
    from tests.repos import hcl, step

    return hcl("train", step("s", "echo hi"), parameters=parameters, secrets=secrets)


def _env_pipeline(tmp_path, text: str):
    from tests.runflow import pipeline_for, repo_with

    return pipeline_for(repo_with(tmp_path, text))


def _env_graphql(user, query: str, **variables) -> dict:
    from django.test import Client

    client = Client()
    client.force_login(user)
    body = client.post(
        "/graphql", {"query": query, "variables": variables}, content_type="application/json"
    ).json()
    assert "errors" not in body, body
    return body["data"]


def _env_developer(pipeline):
    from bedrock.pipelines.models import Role
    from tests import factories

    developer = factories.user()
    factories.member(pipeline.project, developer, Role.DEVELOPER)
    return developer


def _env_api_refusal(query: str, pipeline, **variables) -> dict:
    """The one message a project developer's refused mutation came back with."""
    result = _env_graphql(_env_developer(pipeline), query, p=str(pipeline.pk), **variables)
    (message,) = next(iter(result.values()))["messages"]
    return message


_ENV_START = """mutation($p: ID!, $params: JSON, $ref: String, $key: String) {
  startRun(pipelineId: $p, parameters: $params, ref: $ref, idempotencyKey: $key) {
    ... on Run { id status failureReason }
    ... on OperationInfo { messages { kind field message } } } }"""
_ENV_SET_SECRET = """mutation($p: ID!, $name: String!, $value: String!) {
  setSecret(pipelineId: $p, name: $name, value: $value) {
    ... on Secret { name }
    ... on OperationInfo { messages { kind field message } } } }"""
_ENV_VALIDATE = """mutation($text: String!) { validateConfig(text: $text) {
  ... on ConfigCheck { valid problems { path message line column severity } } } }"""


def test_the_reason_for_path_says_what_reads_it_and_who_cannot_set_it():
    from bedrock.pipelines.environment import refused_environment_name

    assert refused_environment_name("PATH") == (
        "PATH is read by the shell to find programs: a parameter cannot set it"
    )
    assert refused_environment_name("PATH", kind="secret").endswith("a secret cannot set it")
    assert refused_environment_name("LEARNING_RATE") is None


@pytest.mark.parametrize(("name", "why"), REFUSED_NAMES.items())
def test_a_refused_name_is_refused_with_its_reason(name, why):
    from bedrock.pipelines.environment import refused_environment_name

    reason = refused_environment_name(name)
    assert reason is not None and reason.startswith(name) and why in reason


@pytest.mark.parametrize("name", ALLOWED_NAMES)
def test_ordinary_names_are_allowed(name):
    from bedrock.pipelines.environment import refused_environment_name

    assert refused_environment_name(name) is None
    assert refused_environment_name(name, kind="secret") is None


def test_a_run_may_override_the_ordinary_names_real_files_set():
    from bedrock.runs.services import merge_parameters

    # The UI's run form sends every default of the file back, and real files set BEDROCK_SERVER.
    merged = merge_parameters(
        {"BEDROCK_SERVER": "https://old", "EPOCHS": "1"},
        {"BEDROCK_SERVER": "https://new", "PIP_INDEX_URL": "https://pypi.internal/simple"},
    )
    assert merged == {
        "BEDROCK_SERVER": "https://new",
        "EPOCHS": "1",
        "PIP_INDEX_URL": "https://pypi.internal/simple",
    }


@pytest.mark.parametrize("name", ["LD_PRELOAD", "BASH_ENV", "PATH", "PYTHONWARNINGS", "BROWSER"])
def test_a_file_default_with_a_refused_name_is_a_located_error_in_validate(name, tmp_path):
    import io

    from django.core.management import call_command

    from bedrock.pipelines import spec

    text = _env_file(parameters=f'{name} = "x"')
    (error,) = [p for p in spec.check(text) if p.is_error]
    assert error.path == f"train.parameters.{name}"
    assert (error.line, error.column) == (9, 1)
    assert "a parameter cannot set it" in error.message

    path = tmp_path / "bedrock.hcl"
    path.write_text(text)
    out = io.StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("validate", str(path), stdout=out)
    assert exited.value.code == 1
    assert f"{path}:9:1: train.parameters.{name}: {name} " in out.getvalue()


@pytest.mark.parametrize(
    ("parameters", "secrets", "path"),
    [
        ('"PATH=/tmp/evil:/usr/bin" = "1"', "", "train.parameters.PATH=/tmp/evil:/usr/bin"),
        ("", '"LD_PRELOAD=/tmp/x.so"', "train.secrets"),
        ('"9LIVES" = "1"', "", "train.parameters.9LIVES"),
    ],
    ids=["parameter", "secret", "leading-digit"],
)
def test_a_name_that_is_no_environment_variable_name_is_an_error_not_a_warning(
    parameters, secrets, path
):
    from bedrock.pipelines import spec
    from tests.repos import hcl, step

    source = hcl("train", step("s", "echo hi"), parameters=parameters, secrets=secrets)
    errors = [problem for problem in spec.check(source) if problem.is_error]
    # Docker and Nomad would pass "PATH=x" = "1" on as PATH=x=1, which sets PATH.
    [error] = [e for e in errors if "is not a valid environment variable name" in e.message]
    assert error.path == path


@pytest.mark.django_db
def test_validate_config_shows_a_refused_parameter_and_secret_with_line_and_reason():
    from tests import factories

    text = _env_file(parameters='LD_PRELOAD = "/tmp/evil.so"', secrets='"DB", "BASH_ENV"')
    result = _env_graphql(factories.user(), _ENV_VALIDATE, text=text)["validateConfig"]

    assert result["valid"] is False
    errors = {p["path"]: p for p in result["problems"] if p["severity"] == "ERROR"}
    assert set(errors) == {"train.parameters.LD_PRELOAD", "train.secrets[1]"}
    assert "dynamic loader" in errors["train.parameters.LD_PRELOAD"]["message"]
    assert errors["train.secrets[1]"]["message"].endswith("a secret cannot set it")
    assert errors["train.secrets[1]"]["line"] == 11


@pytest.mark.django_db
def test_creating_a_pipeline_shows_a_refused_default_with_its_line_and_creates_nothing(
    client, tmp_path
):
    from bedrock.pipelines.models import Pipeline, Role
    from tests import factories
    from tests.repos import make_repo

    repo = make_repo(tmp_path / "evil", {"bedrock.hcl": _env_file(parameters='BASH_ENV = "x"')})
    project = factories.project()
    admin = factories.user()
    factories.member(project, admin, Role.ADMIN)
    client.force_login(admin)
    fields = {"project": project.pk, "name": "evil", "kind": "training", "git_url": str(repo)}
    fields |= {"branch": "main", "config_path": "bedrock.hcl", "max_run_time": "72h"}

    response = client.post("/pipelines/new", {**fields, "model": factories.model(project).pk})

    page = response.content.decode()
    assert response.status_code == 200
    assert "line 9, column 1" in page and "BASH_ENV is read by the shell" in page
    assert not Pipeline.objects.filter(name="evil").exists()


@pytest.mark.django_db(transaction=True)
def test_a_run_of_a_file_with_a_refused_default_is_rejected_with_the_reason_and_runs_nothing(
    tmp_path,
):
    from bedrock.runs.models import RunStatus
    from bedrock.runs.services import run_create

    pipeline = _env_pipeline(tmp_path, _env_file(parameters='PATH = "/tmp/evil"'))
    run = run_create(actor=SYSTEM, pipeline=pipeline)

    assert run.status == RunStatus.REJECTED
    assert "train.parameters.PATH: PATH is read by the shell" in run.failure_reason
    assert not run.steps.exists() and run.started_at is None


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["LD_PRELOAD", "BASH_ENV", "PYTHONPATH", "BEDROCK_API_TOKEN"])
def test_a_run_override_with_a_refused_name_is_refused_and_creates_no_run(name):
    from django.core.exceptions import ValidationError

    from bedrock.runs.models import Run
    from bedrock.runs.services import run_create
    from tests import factories

    pipeline = factories.pipeline(factories.project())
    with pytest.raises(ValidationError) as refused:
        run_create(actor=SYSTEM, pipeline=pipeline, parameters={"EPOCHS": "1", name: "x"})

    (message,) = refused.value.message_dict["parameters"]
    assert message.startswith(name)
    assert "a parameter cannot set it" in message
    assert not Run.objects.exists()


@pytest.mark.django_db
def test_start_run_refuses_a_refused_parameter_naming_the_field_and_the_reason():
    from bedrock.runs.models import Run
    from tests import factories

    pipeline = factories.pipeline(factories.project())
    message = _env_api_refusal(
        _ENV_START,
        pipeline,
        params={"PYTHONWARNINGS": "all:0:antigravity.x:0:0", "BROWSER": "/bin/sh -c id #%s"},
    )

    assert message["kind"] == "VALIDATION" and message["field"] == "parameters"
    assert "PYTHONWARNINGS is read by an interpreter" in message["message"]
    assert not Run.objects.exists()


@pytest.mark.django_db
def test_the_ui_run_form_refuses_a_refused_parameter_and_starts_nothing(client, tmp_path):
    from bedrock.runs.models import Run

    pipeline = _env_pipeline(tmp_path, _env_file(parameters='EPOCHS = "1"'))
    client.force_login(_env_developer(pipeline))

    response = client.post(
        f"/pipelines/{pipeline.pk}/run",
        {"ref": "main", "param-EPOCHS": "1", "extra_parameters": "LD_PRELOAD=/tmp/evil.so"},
    )

    assert response.status_code == 200
    assert "LD_PRELOAD is read by the dynamic loader" in response.content.decode()
    assert not Run.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["LD_PRELOAD", "PATH", "BEDROCK_API_TOKEN", "NODE_OPTIONS"])
def test_set_secret_refuses_a_refused_name_with_the_reason_and_stores_nothing(name):
    from django.core.exceptions import ValidationError

    from bedrock.secrets.models import Secret
    from bedrock.secrets.services import secret_set
    from tests import factories

    pipeline = factories.pipeline(factories.project())
    with pytest.raises(ValidationError) as refused:
        secret_set(actor=SYSTEM, pipeline=pipeline, name=name, value="a-long-value")
    (message,) = refused.value.message_dict["name"]
    assert message.startswith(name) and "a secret cannot set it" in message
    assert not Secret.objects.exists()

    error = _env_api_refusal(_ENV_SET_SECRET, pipeline, name=name, value="a-value")
    assert error["field"] == "name" and "a secret cannot set it" in error["message"]
    assert not Secret.objects.exists()


@pytest.mark.django_db
def test_the_git_credential_secrets_may_be_set_but_no_file_may_hand_them_to_a_step():
    from bedrock.pipelines import spec
    from bedrock.secrets.services import secret_set
    from tests import factories

    pipeline = factories.pipeline(factories.project())
    secret_set(actor=SYSTEM, pipeline=pipeline, name="BEDROCK_GIT_TOKEN", value="ghp_token")

    (error,) = [p for p in spec.check(_env_file(secrets='"BEDROCK_GIT_TOKEN"')) if p.is_error]
    assert "Git credential" in error.message and error.path == "train.secrets[0]"


@pytest.mark.django_db
def test_the_ui_secret_form_refuses_a_refused_name_with_the_reason(client):
    from bedrock.secrets.models import Secret
    from tests import factories

    pipeline = factories.pipeline(factories.project())
    client.force_login(_env_developer(pipeline))

    response = client.post(
        f"/pipelines/{pipeline.pk}/secrets", {"name": "BASH_ENV", "value": "/tmp/evil.sh"}
    )

    assert response.status_code == 200
    assert "BASH_ENV is read by the shell" in response.content.decode()
    assert not Secret.objects.exists()


@pytest.mark.django_db
def test_the_admin_refuses_a_refused_secret_name_and_a_short_value_as_the_service_does(
    admin_client,
):
    from bedrock.secrets.models import Secret
    from bedrock.secrets.services import secret_set
    from tests import factories

    pipeline = factories.pipeline(factories.project())
    response = admin_client.post(
        "/admin/secrets/secret/add/",
        {"pipeline": pipeline.pk, "name": "LD_PRELOAD", "new_value": "/tmp/evil.so"},
    )
    assert response.status_code == 200
    assert "LD_PRELOAD is read by the dynamic loader" in response.content.decode()
    assert not Secret.objects.exists()

    secret = secret_set(actor=SYSTEM, pipeline=pipeline, name="TOKEN", value="long-enough")
    response = admin_client.post(f"/admin/secrets/secret/{secret.pk}/change/", {"new_value": "abc"})
    assert response.status_code == 200
    assert "at least 4 characters" in response.content.decode()
    assert Secret.objects.get(pk=secret.pk).value == "long-enough"


@pytest.mark.slow
def test_no_real_file_sets_a_refused_name(shared_dir):
    from bedrock.pipelines import spec
    from bedrock.pipelines.environment import refused_environment_name

    files = sorted(shared_dir.glob("bedrock-hcl-corpus*/*.hcl"))
    assert len(files) == 139
    names = set()
    for path in files:
        problems = spec.check(path.read_text(encoding="utf-8-sig"), filename=str(path))
        assert not [p for p in problems if "cannot set it" in p.message or "NUL" in p.message]
        try:
            loaded = spec.load_file(path)
        except spec.SpecError:
            continue  # invalid for reasons of its own; the names were still checked above
        for stanza in loaded.stanzas.values():
            names |= set(stanza.parameters)
            names |= {(name, "secret") for name in stanza.secrets}
    assert names, "the corpus held no parameter"
    refused = [
        name
        for name in names
        if (
            refused_environment_name(name[0], kind="secret")
            if isinstance(name, tuple)
            else refused_environment_name(name)
        )
    ]
    assert refused == []


# NUL bytes -----------------------------------------------------------------------------------
@pytest.mark.django_db
@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"parameters": {"EPOCHS": "1\x002"}}, "parameters"),
        ({"parameters": {"EPO\x00CHS": "1"}}, "parameters"),
        ({"ref": "main\x00"}, "ref"),
        ({"idempotency_key": "nightly\x00-1"}, "idempotency_key"),
    ],
)
def test_a_nul_byte_in_a_run_is_refused_at_creation_naming_the_field(arguments, field):
    from django.core.exceptions import ValidationError

    from bedrock.runs.models import Run
    from bedrock.runs.services import run_create
    from tests import factories

    pipeline = factories.pipeline(factories.project())
    with pytest.raises(ValidationError) as refused:
        run_create(actor=SYSTEM, pipeline=pipeline, **arguments)

    assert list(refused.value.message_dict) == [field]
    assert not Run.objects.exists()


def test_a_nul_byte_in_the_file_is_a_located_error():
    from bedrock.pipelines import spec

    text = _env_file(parameters='EPOCHS = "1\x002"')
    errors = [p for p in spec.check(text) if p.is_error]

    assert {(p.path, p.line) for p in errors} == {("", 9), ("train.parameters.EPOCHS", 9)}
    assert all("NUL byte" in p.message for p in errors)
    script = _env_file().replace("echo hi", "echo \x00hi")
    (error,) = [p for p in spec.check(script) if p.is_error]
    assert (error.line, error.column) == (5, 24) and "NUL byte" in error.message


@pytest.mark.django_db
def test_a_nul_byte_in_a_secret_value_is_refused_and_nothing_stored():
    from django.core.exceptions import ValidationError

    from bedrock.secrets.models import Secret
    from bedrock.secrets.services import secret_set
    from tests import factories

    pipeline = factories.pipeline(factories.project())
    with pytest.raises(ValidationError) as refused:
        secret_set(actor=SYSTEM, pipeline=pipeline, name="TOKEN", value="abc\x00def")

    assert "NUL byte" in refused.value.message_dict["value"][0]
    assert not Secret.objects.exists()


# The environment's size ------------------------------------------------------------------------
@pytest.mark.django_db
def test_parameters_over_the_environment_limit_are_refused_before_any_run_exists():
    from django.core.exceptions import ValidationError

    from bedrock.runs.models import Run
    from bedrock.runs.services import run_create
    from tests import factories

    pipeline = factories.pipeline(factories.project())
    # 200 KiB: over Linux's 128 KiB per string, which failed at execution with
    # "Argument list too long".
    with pytest.raises(ValidationError) as refused:
        run_create(actor=SYSTEM, pipeline=pipeline, parameters={"BLOB": "x" * 200 * 1024})

    (message,) = refused.value.message_dict["parameters"]
    assert "over the limit of 65536 bytes (BEDROCK_MAX_ENVIRONMENT_BYTES)" in message
    assert "the largest is BLOB (204800 bytes)" in message
    assert not Run.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_defaults_and_secrets_over_the_limit_together_reject_the_run_with_the_reason(
    tmp_path, settings
):
    from bedrock.runs.models import RunStatus
    from bedrock.runs.services import run_create
    from bedrock.secrets.services import secret_set

    settings.BEDROCK_MAX_ENVIRONMENT_BYTES = 1000
    text = _env_file(parameters=f'NOTES = "{"n" * 600}"', secrets='"KEY"')
    pipeline = _env_pipeline(tmp_path, text)
    secret_set(actor=SYSTEM, pipeline=pipeline, name="KEY", value="k" * 500)

    run = run_create(actor=SYSTEM, pipeline=pipeline, parameters={"EPOCHS": "3"})

    assert run.status == RunStatus.REJECTED
    assert "over the limit of 1000 bytes" in run.failure_reason
    assert "the largest is NOTES" in run.failure_reason
    assert "k" * 20 not in run.failure_reason  # the reason names, never shows, a secret
    assert not run.steps.exists() and run.started_at is None


@pytest.mark.parametrize(
    ("limit", "ids"), [(65536, []), (0, ["bedrock.E040"]), (200_000, ["bedrock.E040"])]
)
def test_an_environment_limit_linux_cannot_honour_fails_the_checks(settings, limit, ids):
    from bedrock.checks import check_environment_limit

    settings.BEDROCK_MAX_ENVIRONMENT_BYTES = limit
    assert [error.id for error in check_environment_limit(None)] == ids


@pytest.mark.django_db
def test_set_secret_refuses_a_value_over_the_environment_limit():
    from bedrock.secrets.models import Secret
    from tests import factories

    pipeline = factories.pipeline(factories.project())
    error = _env_api_refusal(_ENV_SET_SECRET, pipeline, name="BIG", value="v" * (64 * 1024))

    assert error["field"] == "value" and "over the limit of 65536 bytes" in error["message"]
    assert not Secret.objects.exists()


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
    # What a ${…} holds is parsed as an expression, so it nests and counts too.
    if kind == "nested lists in ${}":
        return 'a = "${' + "[" * 100_000 + "]" * 100_000 + '}"\n'
    if kind == "many tokens in ${}":
        return 'a = "${[' + ",".join(["1"] * 100_000) + ']}"\n'
    return "# " + "x" * 300_000 + "\n"  # oversized, though only a comment


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("kind", "setting", "where"),
    [
        ("nested lists", "BEDROCK_MAX_CONFIG_DEPTH", (1, 37)),
        ("deep braces", "BEDROCK_MAX_CONFIG_DEPTH", (1, 101)),
        ("many tokens", "BEDROCK_MAX_CONFIG_TOKENS", (1, 10_003)),
        ("nested lists in ${}", "BEDROCK_MAX_CONFIG_DEPTH", (1, 5)),
        ("many tokens in ${}", "BEDROCK_MAX_CONFIG_TOKENS", (1, 5)),
        ("oversized", "BEDROCK_MAX_CONFIG_BYTES", (None, None)),
    ],
)
def test_validate_config_refuses_a_hostile_document_before_any_parser_sees_it(
    kind, setting, where, monkeypatch
):
    from bedrock.pipelines.spec import parse
    from tests import factories

    # Each parser takes seconds of CPU on these documents (bench/hostile_config.py measures
    # it): the refusal must come from the linear scan, before either is called.
    def never(*args, **kwargs):
        raise AssertionError("a parser was called on a document over the limits")

    monkeypatch.setattr(parse.hcl2, "loads", never)
    monkeypatch.setattr(parse.hcl, "loads", never)
    outsider = factories.user("limits-outsider")  # a member of no project may call it
    text = _hostile_hcl(kind)
    assert len(text) >= 200_000
    response = _limits_gql(outsider, _VALIDATE, text=text)
    assert response.status_code == 200
    check = response.json()["data"]["validateConfig"]
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
    run = run_create(actor=SYSTEM, pipeline=pipeline_for(repo_with(tmp_path, text)))
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

    from bedrock.models.archive.records import crc32_combine

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

    from bedrock.accounts.models import hash_token
    from bedrock.runs.models import Run, RunStatus, RunStep
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

    from bedrock.models.archive import ArchiveError, unpack

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

    from bedrock.models.archive import ArchiveLimitError, ArchiveLimits, unpack

    lying = _many_entries(count, declared=5)
    with pytest.raises(ArchiveLimitError, match=wanted):
        unpack(io.BytesIO(lying), tmp_path / "out", limits=ArchiveLimits(entries=10))
    assert not (tmp_path / "out").exists()


def test_a_stream_longer_than_any_archive_within_the_limits_is_cut_off_while_it_is_read(
    tmp_path,
):
    from bedrock.models.archive import ArchiveLimitError, ArchiveLimits, unpack

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
    from bedrock.models.archive import ArchiveLimitError, ArchiveLimits
    from bedrock.models.archive.unpacking import _Budget

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

    from bedrock.models.archive import ArchiveLimitError, ArchiveLimits, pack

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


@pytest.mark.slow
def test_sizing_s3_parts_for_an_artefact_thousands_of_levels_deep_does_not_recurse(tmp_path):
    import os
    from types import SimpleNamespace

    from bedrock.filetrees import remove_tree
    from bedrock.models.artefacts import _with_part_size_for

    top = tmp_path / "artefact"
    top.mkdir()
    here = os.getcwd()
    try:
        os.chdir(top)
        for _ in range(3000):
            os.mkdir("d")
            os.chdir("d")
        with open("weights", "w") as handle:
            handle.write("x")
    finally:
        os.chdir(here)
    storage = SimpleNamespace(transfer_config=SimpleNamespace(multipart_chunksize=8 << 20))
    try:
        assert _with_part_size_for(top, storage) is storage  # sized, no RecursionError
    finally:
        remove_tree(top)


@pytest.mark.django_db
def test_a_step_whose_commands_exceed_one_argument_is_refused_at_validation_naming_it(tmp_path):
    from bedrock.pipelines import spec
    from bedrock.runs.models import RunStatus
    from tests.repos import hcl, step
    from tests.runflow import pipeline_for, repo_with

    long_script = "echo " + "x" * 140_000  # passes the file limit, but not Linux's per argument
    text = hcl("train", step("long", long_script))
    [error] = [problem for problem in spec.check(text) if problem.is_error]
    assert error.path == "train.step.long.script"
    assert "step 'long' runs" in error.message and "one argument Linux passes" in error.message

    run = lifecycle.start(pipeline_for(repo_with(tmp_path, text)))
    assert run.status == RunStatus.REJECTED
    assert "one argument Linux passes to bash" in run.failure_reason
    assert not run.steps.exists()


# --- 4. Every run ends in a true state ---------------------------------------------------------
def _pipeline(tmp_path, *steps: str, **fields):
    from tests.repos import hcl
    from tests.runflow import pipeline_for, repo_with

    return pipeline_for(repo_with(tmp_path, hcl("train", "\n".join(steps))), **fields)


def _write(name: str) -> str:
    return f"echo {name} > $BEDROCK_ARTEFACT_DIR/{name}"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("extra", "said"),
    [
        ({"BAD": "a\0b"}, "embedded null byte"),
        ({"HUGE": "x" * 300_000}, "Argument list too long"),
    ],
    ids=["nul-byte", "argument-list-too-long"],
)
@pytest.mark.slow
def test_a_step_that_cannot_be_spawned_fails_with_the_reason_and_so_does_its_run(
    tmp_path, monkeypatch, extra, said
):
    """Whatever slipped past the checks at creation, the OS refusing the process ends the step."""
    import dataclasses

    from bedrock.runs.executors.local import LocalExecutor
    from bedrock.runs.models import RunStatus
    from tests.repos import step
    from tests.runflow import wait_until_done

    real_start = LocalExecutor.start

    def start(self, plan, context):
        environment = {**context.environment, **extra}
        return real_start(self, plan, dataclasses.replace(context, environment=environment))

    monkeypatch.setattr(LocalExecutor, "start", start)
    pipeline = _pipeline(tmp_path, step("a", _write("a")), step("b", "true", depends_on='"a"'))

    run = wait_until_done(lifecycle.start(pipeline), timeout=120)

    assert run.status == RunStatus.FAILED
    assert run.failure_reason.startswith("step 'a' could not start: ")
    assert said in run.failure_reason
    steps = lifecycle.steps_of(run)
    assert steps["a"][0] == RunStatus.FAILED and said in steps["a"][1]
    assert steps["b"] == (RunStatus.STOPPED, f"not run: {run.failure_reason}")
    lifecycle.assert_ended_true(run)


@pytest.mark.django_db
def test_a_run_whose_supervisor_died_ends_with_every_step_it_had(tmp_path):
    import socket
    import subprocess
    from datetime import timedelta

    from django.utils import timezone

    from bedrock.runs.models import Run, RunStatus, RunStep
    from bedrock.runs.services import runs_reconcile
    from tests import factories

    gone = subprocess.Popen(["true"])
    gone.wait()  # a pid of this host that is no longer alive
    now = timezone.now()
    run = Run.objects.create(
        pipeline=factories.pipeline(factories.project()),
        number=1,
        ref="main",
        status=RunStatus.RUNNING,
        started_at=now - timedelta(minutes=5),
        heartbeat_at=now - timedelta(seconds=5),
        runner=f"{socket.gethostname()}:{gone.pid}",
        token_hash="f" * 64,
    )
    RunStep.objects.create(run=run, name="a", position=0, status=RunStatus.RUNNING, attempts=1)
    RunStep.objects.create(run=run, name="b", position=1, status=RunStatus.ACCEPTED)

    assert runs_reconcile()["ended"] == 1

    run.refresh_from_db()
    reason = "the run's supervisor stopped unexpectedly (the machine or process died)"
    assert (run.status, run.failure_reason) == (RunStatus.FAILED, reason)
    assert lifecycle.steps_of(run) == {
        "a": (RunStatus.FAILED, reason),
        "b": (RunStatus.STOPPED, f"not run: {reason}"),
    }
    lifecycle.assert_ended_true(run)
    assert runs_reconcile()["ended"] == 0  # the second pass finds nothing to do


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_once_a_run_is_stopping_no_new_step_starts_and_every_step_ends_stopped(tmp_path, settings):
    from bedrock.runs.models import RunStatus
    from bedrock.runs.services import run_stop
    from tests.repos import step
    from tests.runflow import wait_for, wait_until_done

    settings.BEDROCK_MAX_PARALLEL_STEPS = 2
    marker = "sleep 81.25"
    pipeline = _pipeline(tmp_path, *(step(f"s{i}", f"echo started; {marker}") for i in range(12)))
    run = lifecycle.start(pipeline)
    # Both commands started, not merely begun: a step still being prepared would not start.
    wait_for(
        lambda: sum("started" in _log_or_empty(run, f"s{i}") for i in range(12)) == 2,
        what="two steps running",
    )

    run_stop(actor=SYSTEM, run=run)

    run = wait_until_done(run, timeout=60)
    assert (run.status, run.failure_reason) == (RunStatus.STOPPED, "stopped on request")
    begun = run.steps.filter(attempts__gt=0)
    assert begun.count() == 2, "no step started after the stop"
    for name, (status, reason) in lifecycle.steps_of(run).items():
        if begun.filter(name=name).exists():
            assert (status, reason) == (RunStatus.STOPPED, "stopped on request")
            assert "--- stopped on request: ended on SIGTERM ---" in lifecycle.log_of(run, name)
        else:
            assert (status, reason) == (RunStatus.STOPPED, "not run: stopped on request")
    lifecycle.assert_ended_true(run)
    wait_for(lambda: not lifecycle.processes(marker), timeout=30, what="no step process left")


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_a_step_that_traps_sigterm_cleans_up_on_stop_and_its_log_says_it_ended_on_sigterm(
    tmp_path,
):
    from bedrock.runs.models import RunStatus
    from bedrock.runs.services import run_stop
    from tests.repos import step
    from tests.runflow import wait_for, wait_until_done

    script = "trap 'echo cleaning up; exit 0' TERM; echo ready; while true; do sleep 0.2; done"
    run = lifecycle.start(_pipeline(tmp_path, step("trap", script)))
    wait_for(lambda: "ready" in _log_or_empty(run, "trap"), what="the step to be ready")

    run_stop(actor=SYSTEM, run=run)

    run = wait_until_done(run, timeout=90)
    assert run.status == RunStatus.STOPPED
    # It exited 0, but it was stopped: it did not succeed.
    assert lifecycle.steps_of(run)["trap"] == (RunStatus.STOPPED, "stopped on request")
    log = lifecycle.log_of(run, "trap")
    assert log.index("cleaning up") < log.index("--- stopped on request: ended on SIGTERM ---")
    lifecycle.assert_ended_true(run)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "sandbox",
    [False, True],
    ids=["unsandboxed", "bubblewrap"],
)
@pytest.mark.slow
def test_a_step_that_ignores_sigterm_is_killed_after_the_grace_period_and_its_log_says_so(
    tmp_path, settings, sandbox
):
    import time
    from datetime import timedelta

    from bedrock.runs.executors.local import bubblewrap
    from bedrock.runs.models import RunStatus
    from bedrock.runs.services import run_stop
    from tests.repos import step
    from tests.runflow import wait_for, wait_until_done

    settings.BEDROCK_LOCAL_SANDBOX = sandbox
    if sandbox and bubblewrap() is None:
        pytest.skip("bubblewrap is not installed")
    settings.BEDROCK_STOP_GRACE = timedelta(seconds=1)
    marker = "sleep 0.23"
    script = f"trap '' TERM; echo ready; while true; do {marker}; done"
    run = lifecycle.start(_pipeline(tmp_path, step("stubborn", script)))
    wait_for(lambda: "ready" in _log_or_empty(run, "stubborn"), what="the step to be ready")

    asked = time.monotonic()
    run_stop(actor=SYSTEM, run=run)

    run = wait_until_done(run, timeout=90)
    assert time.monotonic() - asked >= 1, "the grace period was given"
    assert lifecycle.steps_of(run)["stubborn"] == (RunStatus.STOPPED, "stopped on request")
    assert (
        "--- stopped on request: killed with SIGKILL after the 1 s grace period ---"
        in lifecycle.log_of(run, "stubborn")
    )
    lifecycle.assert_ended_true(run)
    wait_for(lambda: not lifecycle.processes(marker), timeout=30, what="no step process left")


@pytest.mark.django_db(transaction=True)
def test_a_stop_while_a_step_is_being_prepared_keeps_its_command_from_starting(
    tmp_path, monkeypatch
):
    """Executors that prepare a step apart from starting it (a venv, an image) are asked
    whether to start once preparing is over."""
    from bedrock.runs import supervisor
    from bedrock.runs.executors.local import LocalExecutor
    from bedrock.runs.models import Run, RunStatus
    from bedrock.runs.services import run_stop
    from tests.repos import step
    from tests.runflow import wait_for, wait_until_done

    class Preparing(LocalExecutor):
        def prepare(self, plan, context):
            preparing.append(plan.name)
            wait_for(lambda: stopping(), what="the stop to arrive while preparing")

    preparing: list[str] = []
    monkeypatch.setattr(supervisor, "get_executor", Preparing)
    run = lifecycle.start(_pipeline(tmp_path, step("s", "echo started")))

    def stopping() -> bool:
        return Run.objects.filter(pk=run.pk, status=RunStatus.STOPPING).exists()

    wait_for(lambda: preparing, what="the step to be prepared")
    run_stop(actor=SYSTEM, run=run)

    run = wait_until_done(run, timeout=60)
    assert run.status == RunStatus.STOPPED
    assert lifecycle.steps_of(run)["s"] == (RunStatus.STOPPED, "stopped on request")
    assert lifecycle.log_of(run, "s") == "--- stopped on request: not started ---\n"
    lifecycle.assert_ended_true(run)


def _log_or_empty(run, step: str) -> str:
    from bedrock.runs.models import RunStep

    if not RunStep.objects.filter(run=run, name=step).exists():
        return ""
    try:
        return lifecycle.log_of(run, step)
    except FileNotFoundError:
        return ""


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_a_run_past_its_time_limit_ends_every_step_with_the_reason(tmp_path, monkeypatch):
    from datetime import timedelta

    from django.utils import timezone

    from bedrock.runs.models import RunStatus
    from bedrock.runs.supervisor import Supervisor
    from tests.repos import step
    from tests.runflow import wait_for, wait_until_done

    supervisors: list[Supervisor] = []
    real_init = Supervisor.__init__

    def init(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        supervisors.append(self)

    monkeypatch.setattr(Supervisor, "__init__", init)
    marker = "sleep 82.5"
    pipeline = _pipeline(
        tmp_path,
        step("slow", "echo started", marker),
        step("after", "true", depends_on='"slow"'),
        max_run_time=timedelta(minutes=10),
    )
    run = lifecycle.start(pipeline)
    # The time runs out once the step's command runs, however long a loaded machine took to
    # make its venv: a fixed short limit would sometimes pass before the command started.
    wait_for(lambda: "started" in _log_or_empty(run, "slow"), what="the step's command")
    (supervisor,) = supervisors
    supervisor.deadline = timezone.now()

    run = wait_until_done(run, timeout=60)

    reason = "exceeded the maximum run time of 10m"
    assert (run.status, run.failure_reason) == (RunStatus.FAILED, reason)
    assert lifecycle.steps_of(run) == {
        "slow": (RunStatus.FAILED, "killed at the run's time limit"),
        "after": (RunStatus.STOPPED, f"not run: {reason}"),
    }
    assert "--- killed at the run's time limit: ended on SIGTERM ---" in lifecycle.log_of(
        run, "slow"
    )
    lifecycle.assert_ended_true(run)
    assert not lifecycle.processes(marker)


@pytest.mark.django_db(transaction=True)
def test_a_run_whose_model_version_cannot_be_published_fails_with_every_step_ended(
    tmp_path, monkeypatch
):
    from bedrock.models import services as model_services
    from bedrock.models.models import ModelVersion
    from bedrock.runs.models import RunStatus
    from tests.repos import step
    from tests.runflow import wait_until_done

    def publish(**kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(model_services, "model_version_publish", publish)
    pipeline = _pipeline(tmp_path, step("train", _write("model")))

    run = wait_until_done(lifecycle.start(pipeline), timeout=120)

    assert run.status == RunStatus.FAILED
    assert "No space left on device" in run.failure_reason
    assert lifecycle.steps_of(run) == {"train": (RunStatus.SUCCEEDED, "")}
    assert not ModelVersion.objects.exists()
    lifecycle.assert_ended_true(run)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("left", "said"),
    [
        (
            "cd $BEDROCK_ARTEFACT_DIR && mkdir -p a/b/c/d/e && echo x > a/b/c/d/e/f",
            "'a/b/c/d/e/f': 6 levels deep; at most 5 are packed (BEDROCK_MAX_ARCHIVE_DEPTH)",
        ),
        (
            f"{_write('model')} && mkfifo $BEDROCK_ARTEFACT_DIR/pipe",
            "pipe: is not a regular file or directory (a FIFO, socket or device)",
        ),
        (
            f"{_write('model')} && ln -s /etc/hostname $BEDROCK_ARTEFACT_DIR/host",
            "host: is a symbolic link to '/etc/hostname', outside the directory being packed",
        ),
    ],
    ids=["too-deep", "fifo", "link-outside"],
)
@pytest.mark.slow
def test_an_artefact_that_cannot_be_packed_fails_the_run_with_the_reason_and_publishes_nothing(
    tmp_path, settings, caplog, left, said
):
    import logging

    from bedrock.models.models import ArchiveUpload, ModelVersion
    from bedrock.runs.models import RunStatus
    from tests.repos import step
    from tests.runflow import wait_until_done

    settings.BEDROCK_MAX_ARCHIVE_DEPTH = 5
    caplog.set_level(logging.WARNING)
    pipeline = _pipeline(tmp_path, step("train", left))

    run = wait_until_done(lifecycle.start(pipeline), timeout=120)

    assert run.status == RunStatus.FAILED
    assert run.failure_reason.startswith("/artefact could not be published: "), run.failure_reason
    assert said in run.failure_reason
    assert lifecycle.steps_of(run) == {"train": (RunStatus.SUCCEEDED, "")}
    assert not ModelVersion.objects.exists()
    assert not ArchiveUpload.objects.exists()
    assert _stored_keys(f"models/{pipeline.model_id}") == []
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], "the user's content is no failure of Bedrock's: no traceback logged"
    lifecycle.assert_ended_true(run)


@pytest.mark.django_db
def test_a_supervisor_that_cannot_start_is_retried_with_backoff_then_its_run_fails_saying_why(
    monkeypatch, settings
):
    import sys
    from datetime import timedelta

    from django.utils import timezone

    from bedrock.runs import services
    from bedrock.runs.models import Run, RunStatus
    from tests import factories
    from tests.runflow import wait_for

    settings.BEDROCK_SUPERVISOR = "process"
    settings.BEDROCK_SUPERVISOR_START_ATTEMPTS = 3
    settings.BEDROCK_SUPERVISOR_START_BACKOFF = timedelta(seconds=30)
    crash = (
        "import sys; print('Traceback (most recent call last):'); "
        "print('django.db.utils.OperationalError: database is locked'); sys.exit(1)"
    )
    monkeypatch.setattr(
        services, "supervisor_command", lambda run_id: [sys.executable, "-c", crash]
    )
    run = Run.objects.create(
        pipeline=factories.pipeline(factories.project()),
        number=1,
        ref="main",
        status=RunStatus.ACCEPTED,
        created_at=timezone.now() - timedelta(minutes=10),
    )
    log = services.supervisor_log(run.pk)

    def started(count: int) -> None:
        run.refresh_from_db()
        assert (run.status, run.supervisor_attempts) == (RunStatus.QUEUED, count)
        wait_for(lambda: log.read_text().count("database is locked") == count, what="its log")

    def waited(seconds: float) -> None:
        Run.objects.filter(pk=run.pk).update(
            supervisor_started_at=timezone.now() - timedelta(seconds=seconds)
        )

    assert services.run_submit(run_id=run.pk)
    started(1)
    assert services.runs_reconcile()["restarted"] == 0  # within the first 30 s: no new start
    # Each wait is 5 s to either side of the backoff, so a slow machine between setting the
    # time and reconciling (a second, say) cannot cross it.
    waited(35)
    assert services.runs_reconcile()["restarted"] == 1
    started(2)
    waited(55)  # the backoff doubled
    assert services.runs_reconcile()["restarted"] == 0
    waited(65)
    assert services.runs_reconcile()["restarted"] == 1
    started(3)
    waited(115)
    assert services.runs_reconcile() == {
        "resubmitted": 0,
        "restarted": 0,
        "ended": 0,
        "cleaned": 0,
        "archives": 0,
        "retained": 0,
    }
    started(3)
    waited(125)

    assert services.runs_reconcile()["ended"] == 1

    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert run.failure_reason == (
        "the run's supervisor could not start (3 attempts): Traceback (most recent call last): "
        "| django.db.utils.OperationalError: database is locked"
    )
    assert run.supervisor_attempts == 3
    lifecycle.assert_ended_true(run)
    assert services.runs_reconcile()["restarted"] == 0  # never started again


def _twenty_step_intervals(runs) -> list:
    from bedrock.runs.models import RunStep

    rows = RunStep.objects.filter(run__in=runs).values_list("started_at", "finished_at")
    assert all(start and end for start, end in rows)
    return list(rows)


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_a_run_never_has_more_steps_running_at_once_than_its_limit(tmp_path, settings):
    from bedrock.runs.models import RunStatus
    from tests.repos import step
    from tests.runflow import wait_until_done

    settings.BEDROCK_MAX_PARALLEL_STEPS = 4
    settings.BEDROCK_MACHINE_MAX_STEPS = 20
    steps = [step(f"s{i:02}", f"{_write(f's{i:02}')}; sleep 1") for i in range(20)]

    run = wait_until_done(lifecycle.start(_pipeline(tmp_path, *steps)), timeout=400)

    assert run.status == RunStatus.SUCCEEDED, run.failure_reason
    assert 2 <= lifecycle.most_at_once(_twenty_step_intervals([run])) <= 4


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_the_steps_of_every_run_on_the_machine_share_its_limit(tmp_path, settings):
    from bedrock.runs.models import RunStatus
    from tests.repos import step
    from tests.runflow import wait_until_done

    settings.BEDROCK_MAX_PARALLEL_STEPS = 8
    settings.BEDROCK_MACHINE_MAX_STEPS = 3
    steps = [step(f"s{i}", f"{_write(f's{i}')}; sleep 1") for i in range(6)]
    first = lifecycle.start(_pipeline(tmp_path / "one", *steps, name="one"))
    second = lifecycle.start(_pipeline(tmp_path / "two", *steps, name="two"))

    for run in (first, second):
        wait_until_done(run, timeout=400)
        assert run.status == RunStatus.SUCCEEDED, run.failure_reason
    assert 2 <= lifecycle.most_at_once(_twenty_step_intervals([first, second])) <= 3


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_a_step_is_recorded_ended_before_it_gives_up_its_place_on_the_machine(
    tmp_path, settings, monkeypatch
):
    """Otherwise a step of another run may begin in the gap, and the record shows more steps
    running at once than the machine allows."""
    import dataclasses

    from bedrock.runs import transitions
    from bedrock.runs.executors.local import LocalExecutor
    from bedrock.runs.models import RunStatus
    from bedrock.runs.slots import machine_slot
    from tests.repos import step
    from tests.runflow import wait_until_done

    settings.BEDROCK_MACHINE_MAX_STEPS = 1
    real_finish, real_start = transitions.step_finish, LocalExecutor.start
    ended: list[tuple[str, bool]] = []

    def finish(step_id, **kwargs):
        with machine_slot(give_up=lambda: True) as free:
            ended.append((kwargs["to"], free))
        return real_finish(step_id, **kwargs)

    def start(self, plan, context):
        if plan.name == "unspawnable":
            context = dataclasses.replace(context, environment={**context.environment, "X": "\0"})
        return real_start(self, plan, context)

    monkeypatch.setattr(transitions, "step_finish", finish)
    monkeypatch.setattr(LocalExecutor, "start", start)
    pipeline = _pipeline(
        tmp_path,
        step("ok", _write("ok")),
        step("fails", "exit 3", extra="retry { limit = 1 }"),
        step("unspawnable", "true"),
    )

    run = wait_until_done(lifecycle.start(pipeline), timeout=120)

    assert run.status == RunStatus.FAILED
    steps = lifecycle.steps_of(run)
    assert steps["ok"][0] == RunStatus.SUCCEEDED
    assert steps["fails"] == (
        RunStatus.FAILED,
        "step 'fails' failed with exit code 3 after 2 attempts",
    )
    assert steps["unspawnable"][0] == RunStatus.FAILED
    assert sorted(ended) == [
        (RunStatus.FAILED, False),
        (RunStatus.FAILED, False),
        (RunStatus.SUCCEEDED, False),
    ], "each step was recorded ended while it still held the machine's one place"
    lifecycle.assert_ended_true(run)


def test_a_place_for_a_step_is_freed_when_the_process_holding_it_dies(settings):
    import subprocess
    import sys

    from bedrock.runs.slots import machine_slot, slots_dir

    settings.BEDROCK_MACHINE_MAX_STEPS = 1
    hold = (
        "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); "
        "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", hold, str(slots_dir() / "slot-0")], stdout=subprocess.PIPE
    )
    try:
        assert holder.stdout.readline() == b"held\n"
        with machine_slot(give_up=lambda: True) as placed:
            assert placed is False
    finally:
        holder.kill()
        holder.wait()
    with machine_slot(give_up=lambda: True) as placed:
        assert placed is True


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_a_tree_thousands_of_levels_deep_left_by_a_step_is_deleted_with_its_run(tmp_path):
    from bedrock.runs.models import RunStatus
    from bedrock.runs.workspace import Workspace
    from tests.repos import step
    from tests.runflow import wait_for, wait_until_done

    # No double quotes: the command sits in a bedrock.hcl string.
    deep = "python -c 'import os;[(os.mkdir(chr(100)), os.chdir(chr(100))) for _ in range(3000)]'"
    deep = f"{deep} && cd $TMPDIR && {deep}"
    run = lifecycle.start(_pipeline(tmp_path, step("deep", f"{deep} && echo made")))
    root = Workspace(run.pk).root

    run = wait_until_done(run, timeout=120)
    assert run.status == RunStatus.FAILED  # a training run that left /artefact empty
    assert "made" in lifecycle.log_of(run, "deep")
    # The supervisor removes the workspace right after it has ended the run.
    wait_for(lambda: not root.exists(), timeout=30, what="the 3000-level workspace to go")
    lifecycle.assert_ended_true(run)


@pytest.mark.django_db(transaction=True)
def test_a_step_that_begins_while_its_run_is_being_ended_does_not_begin():
    """The run's end holds its run's row, not yet its steps'; a step beginning then must wait
    for it and see the run ended, or its command would start in a run already over."""
    import threading

    from django.db import connection, transaction

    from bedrock.runs import transitions
    from bedrock.runs.models import Run, RunStatus, RunStep
    from tests import factories

    run = Run.objects.create(
        pipeline=factories.pipeline(factories.project()),
        number=1,
        ref="main",
        status=RunStatus.RUNNING,
    )
    step = RunStep.objects.create(run=run, name="a", position=0, status=RunStatus.ACCEPTED)
    ending, begun = threading.Event(), threading.Event()

    def end() -> None:
        try:
            with transaction.atomic():
                Run.objects.filter(pk=run.pk).update(status=RunStatus.FAILED, failure_reason="x")
                ending.set()
                begun.wait(1.0)  # the begin below has had its chance to slip in
                RunStep.objects.filter(pk=step.pk, status=RunStatus.ACCEPTED).update(
                    status=RunStatus.STOPPED, failure_reason="not run: x"
                )
        finally:
            connection.close()

    ender = threading.Thread(target=end)
    ender.start()
    assert ending.wait(30)
    began = transitions.step_begin(step.pk)
    begun.set()
    ender.join(30)

    assert began is False
    step.refresh_from_db()
    assert (step.status, step.attempts, step.started_at) == (RunStatus.STOPPED, 0, None)


def _locked_once(monkeypatch, name: str) -> list[int]:
    """The transition ``name`` fails once as a locked SQLite database does, before it writes."""
    from django.db import OperationalError

    from bedrock.runs import transitions

    real, failed = getattr(transitions, name), []

    def locked(run_id, **kwargs):
        if not failed:
            failed.append(run_id)
            raise OperationalError("database is locked")
        return real(run_id, **kwargs)

    monkeypatch.setattr(transitions, name, locked)
    return failed


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("via", ["service", "bedrock-run"])
@pytest.mark.slow
def test_a_submission_retried_after_it_queued_the_run_starts_its_supervisor_once(
    tmp_path, monkeypatch, via
):
    """Queued, then the database locked before the supervisor's start was counted: the retry
    must start it, or a `bedrock run --wait` without a worker follows a Queued run for ever."""
    from django.core.management import call_command

    from bedrock.runs import services
    from bedrock.runs.models import Run, RunStatus
    from bedrock.transient import retry_transient
    from tests.repos import step
    from tests.runflow import wait_until_done

    monkeypatch.setattr(services, "enqueue_submit", lambda run_id: None)  # no worker
    failed = _locked_once(monkeypatch, "run_supervisor_started")
    pipeline = _pipeline(tmp_path, step("a", _write("a")))

    if via == "service":
        run = lifecycle.start(pipeline)
        assert retry_transient(
            lambda: services.run_submit(run_id=run.pk), sleep=lambda seconds: None
        )
    else:
        call_command("run", str(pipeline.pk))
        run = Run.objects.get(pipeline=pipeline)

    assert failed == [run.pk], "the start did fail once, after the run was queued"
    run = wait_until_done(run, timeout=120)
    assert run.status == RunStatus.SUCCEEDED, run.failure_reason
    assert run.supervisor_attempts == 1
    # A late worker's submission of the same run starts nothing more.
    assert services.run_submit(run_id=run.pk) is False
    run.refresh_from_db()
    assert run.supervisor_attempts == 1
    lifecycle.assert_ended_true(run)


@pytest.mark.django_db
def test_two_submissions_of_a_queued_run_start_one_supervisor(monkeypatch):
    from bedrock.runs import services
    from bedrock.runs.models import Run, RunStatus
    from tests import factories
    from tests.runflow import wait_for

    started: list[int] = []
    monkeypatch.setattr(services, "_supervise_in_thread", started.append)
    run = Run.objects.create(
        pipeline=factories.pipeline(factories.project()),
        number=1,
        ref="main",
        status=RunStatus.QUEUED,  # queued by a submission that failed before the start
    )

    assert services.run_submit(run_id=run.pk) is True
    assert services.run_submit(run_id=run.pk) is False

    run.refresh_from_db()
    assert (run.status, run.supervisor_attempts) == (RunStatus.QUEUED, 1)
    wait_for(lambda: started, what="the supervisor's thread")
    assert started == [run.pk]


# --- 4b. Followers, the worker, archives, idempotency, addresses, repositories ------------------


# Case: a follower meets a database locked for a moment.
class _LockedFor:
    """Run.refresh_from_db, failing as a locked SQLite database does for its first ``n`` calls
    from the follower's thread (the supervisor's thread reads as usual)."""

    def __init__(self, n: int) -> None:
        import threading

        from bedrock.runs.models import Run

        self.left, self.failed = n, 0
        self.original = Run.refresh_from_db
        self.follower = threading.current_thread()

    def __call__(self, instance, *args, **kwargs):
        import threading

        from django.db import OperationalError

        if threading.current_thread() is self.follower and self.left:
            self.left -= 1
            self.failed += 1
            raise OperationalError("database is locked")
        return self.original(instance, *args, **kwargs)


@pytest.mark.django_db(transaction=True)
def test_run_wait_reports_the_real_outcome_when_the_database_is_locked_for_a_moment(
    tmp_path, monkeypatch
):
    from io import StringIO

    from django.core.management import call_command

    from bedrock.runs.models import ACTIVE_STATUSES, Run, RunStatus, RunStep
    from tests.repos import hcl, step
    from tests.runflow import pipeline_for, repo_with

    talk = step("talk", "echo hello from the step", "echo m > $BEDROCK_ARTEFACT_DIR/m")
    pipeline = pipeline_for(repo_with(tmp_path, hcl("train", talk)))
    locked = _LockedFor(3)
    monkeypatch.setattr(Run, "refresh_from_db", lambda run, *a, **kw: locked(run, *a, **kw))
    out, err = StringIO(), StringIO()

    with pytest.raises(SystemExit) as exited:
        call_command("run", str(pipeline.pk), "--wait", stdout=out, stderr=err)

    assert locked.failed == 3, "the follower's reads did fail"
    assert exited.value.code == 0, out.getvalue() + err.getvalue()
    assert "run 1: Succeeded" in out.getvalue()
    assert "[talk] hello from the step" in out.getvalue()
    assert out.getvalue().count("[talk] hello from the step") == 1, "a retry prints nothing twice"
    assert "Traceback" not in err.getvalue()
    run = Run.objects.get(pipeline=pipeline)
    assert run.status == RunStatus.SUCCEEDED
    assert not RunStep.objects.filter(run=run, status__in=list(ACTIVE_STATUSES)).exists()


@pytest.mark.django_db(transaction=True)
def test_run_wait_follows_on_when_postgresql_drops_its_connection(tmp_path, monkeypatch):
    import threading
    from io import StringIO

    from django.core.management import call_command
    from django.db import connection, connections

    from bedrock.runs.models import Run, RunStatus
    from tests.repos import hcl, step
    from tests.runflow import pipeline_for, repo_with

    if connection.vendor != "postgresql":
        pytest.skip("a dropped connection is PostgreSQL's; CI runs this on it (DATABASE_URL)")
    pipeline = pipeline_for(
        repo_with(tmp_path, hcl("train", step("s", "echo m > $BEDROCK_ARTEFACT_DIR/m")))
    )
    follower, original, dropped = threading.current_thread(), Run.refresh_from_db, []

    def refresh(run, *args, **kwargs):
        if threading.current_thread() is follower and len(dropped) < 2:
            connection.ensure_connection()
            pid = connection.connection.info.backend_pid
            # The server ends the follower's connection, as a restart or failover would.
            with connections.create_connection("default").cursor() as other:
                other.execute("SELECT pg_terminate_backend(%s)", [pid])
            dropped.append(pid)
        return original(run, *args, **kwargs)

    monkeypatch.setattr(Run, "refresh_from_db", refresh)
    out, err = StringIO(), StringIO()

    with pytest.raises(SystemExit) as exited:
        call_command("run", str(pipeline.pk), "--wait", stdout=out, stderr=err)

    assert len(dropped) == 2 and dropped[0] != dropped[1], "two connections were dropped"
    assert exited.value.code == 0, out.getvalue() + err.getvalue()
    assert "run 1: Succeeded" in out.getvalue()
    assert Run.objects.get(pipeline=pipeline).status == RunStatus.SUCCEEDED


def test_a_lock_that_outlasts_the_retries_is_raised_and_other_errors_at_once():
    from django.db import OperationalError

    from bedrock.transient import retry_transient

    calls, slept = [], []

    def locked():
        calls.append(1)
        raise OperationalError("database is locked")

    with pytest.raises(OperationalError, match="locked"):
        retry_transient(locked, sleep=slept.append)
    assert len(calls) == 8 and sum(slept) < 25, "bounded: eight tries, under 25 s of waiting"

    calls.clear()

    def broken():
        calls.append(1)
        raise OperationalError("no such table: runs_run")

    with pytest.raises(OperationalError, match="no such table"):
        retry_transient(broken, sleep=slept.append)
    assert len(calls) == 1


@pytest.mark.django_db(transaction=True)
def test_demo_follows_through_a_dropped_connection(tmp_path, monkeypatch):
    from django.db import InterfaceError

    from bedrock.runs.management.commands.run import follow
    from bedrock.runs.models import Run, RunStatus
    from bedrock.runs.services import run_create
    from tests.repos import hcl, step
    from tests.runflow import pipeline_for, repo_with

    pipeline = pipeline_for(
        repo_with(tmp_path, hcl("train", step("s", "echo m > $BEDROCK_ARTEFACT_DIR/m")))
    )
    run = run_create(actor=SYSTEM, pipeline=pipeline)
    dropped = _LockedFor(2)

    def drop(instance, *args, **kwargs):
        try:
            return dropped(instance, *args, **kwargs)
        except Exception as exc:
            raise InterfaceError("connection already closed") from exc

    monkeypatch.setattr(Run, "refresh_from_db", drop)
    lines: list[str] = []

    followed = follow(run, lines.append, poll=0.2)

    assert dropped.failed == 2
    assert followed.status == RunStatus.SUCCEEDED, followed.failure_reason
    assert lines[-1] == "run 1: Succeeded" or "run 1: Succeeded" in lines


# Case: `bedrock up` keeps its worker.
def _stop_up(up) -> None:
    import signal
    import subprocess

    up.send_signal(signal.SIGTERM)
    try:
        up.wait(timeout=60)
    except subprocess.TimeoutExpired:
        up.kill()
        up.wait()


def _group_alive(pgid: int) -> bool:
    import os

    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


# A pipeline whose one step prints the API address it was given; run through the worker alone.
_RUN_THROUGH_WORKER = """
import time
from bedrock.actors import SYSTEM
from bedrock.models.models import Model
from bedrock.pipelines.models import Project
from bedrock.pipelines.services import pipeline_create
from bedrock.runs.models import TERMINAL_STATUSES, Run
from bedrock.runs.services import run_create
from bedrock.runs.workspace import read_log
project = Project.objects.create(name="address")
model = Model.objects.create(project=project, name="m")
pipeline = pipeline_create(
    actor=SYSTEM, project=project, name="p", git_url=REPO, kind="training", model=model
)
run = run_create(actor=SYSTEM, pipeline=pipeline)
deadline = time.monotonic() + 180
while run.status not in TERMINAL_STATUSES and time.monotonic() < deadline:
    time.sleep(0.5)
    run.refresh_from_db()
print("STATUS", run.status, run.failure_reason)
print("LOG", read_log(run.steps.get(name="env").log_key)[0])
"""


def _run_through_worker(env: dict, tmp_path) -> str:
    import subprocess
    import sys
    from pathlib import Path

    from tests.repos import hcl, make_repo, step

    repo = make_repo(
        tmp_path / "repo",
        {
            "bedrock.hcl": hcl(
                "train",
                step("env", "echo API=$BEDROCK_API_DOMAIN", "echo m > $BEDROCK_ARTEFACT_DIR/m"),
            )
        },
    )
    script = f"REPO = {str(repo)!r}\n" + _RUN_THROUGH_WORKER
    result = subprocess.run(
        [sys.executable, "-m", "bedrock.cli", "shell", "-c", script],
        cwd=Path(__file__).resolve().parents[1],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.mark.slow
def test_bedrock_up_starts_its_worker_again_when_it_dies(tmp_path):
    import os
    import signal
    import time

    from tests.test_commands import free_port, processes_of, scratch_env, up_serving

    env = scratch_env(tmp_path)
    up, lines = up_serving(env, free_port())
    home = env["BEDROCK_HOME"]
    try:
        assert "Serving Bedrock" in "".join(lines), "".join(lines)
        workers = processes_of(home, "qcluster", parent=up.pid)
        assert len(workers) == 1, workers
        first = workers[0]

        os.kill(first, signal.SIGKILL)

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            again = [p for p in processes_of(home, "qcluster", parent=up.pid) if p != first]
            if again:
                break
            time.sleep(0.2)
        output = "".join(lines)
        assert again, "no new worker: " + output[-3000:]
        assert f"The worker (pid {first}) was killed by SIGKILL; starting it again in 1 s" in output
        assert not _group_alive(first), "the dead worker's processes are gone"
        # The new worker does the work: a run queued only through it ends.
        result = _run_through_worker(env, tmp_path)
        assert "STATUS Succeeded" in result, result
    finally:
        _stop_up(up)
    assert up.returncode is not None


def test_a_worker_that_keeps_dying_is_started_again_at_a_bounded_rate(monkeypatch):
    import itertools
    import subprocess
    import time

    from bedrock.runs.management.commands import up

    monkeypatch.setattr(up.Worker, "POLL", 0.01)
    started: list[float] = []
    real_popen = subprocess.Popen

    def dying(args, **kwargs):
        started.append(time.monotonic())
        return real_popen(["false"], **kwargs)

    monkeypatch.setattr(up.subprocess, "Popen", dying)
    said: list[str] = []
    worker = up.Worker(said.append)
    worker.start()
    # Waited for by count, not by the clock: a loaded machine may take longer, never less.
    deadline = time.monotonic() + 30
    while len(started) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    worker.stop()

    assert len(started) >= 3, started
    # Each start waits at least its backoff (1 s, then 2 s...) after the one before, whatever
    # the load: never one per poll. Monotonic clocks; the margin is the timer's, not the load's.
    gaps = [later - earlier for earlier, later in itertools.pairwise(started)]
    for index, gap in enumerate(gaps):
        assert gap >= min(2**index, up.Worker.MAX_DELAY) - 0.02, (index, gaps)
    assert said[0].endswith("exited with code 1; starting it again in 1 s.")
    assert said[1].endswith("starting it again in 2 s.")
    count = len(started)
    time.sleep(0.5)
    assert len(started) == count, "nothing starts after stop()"


# Case: the API address steps see follows `bedrock up`'s.
@pytest.mark.parametrize(
    ("addrport", "address"),
    [
        ("127.0.0.1:8765", "http://127.0.0.1:8765"),
        ("8765", "http://127.0.0.1:8765"),
        ("0.0.0.0:9000", "http://127.0.0.1:9000"),
        ("0:9000", "http://127.0.0.1:9000"),
        ("10.1.2.3:80", "http://10.1.2.3:80"),
        ("[::1]:8765", "http://[::1]:8765"),
        ("[::]:8765", "http://[::1]:8765"),
    ],
)
def test_the_api_address_follows_the_address_up_serves_on(addrport, address):
    from bedrock.runs.management.commands.up import api_address

    assert api_address(addrport) == address


def test_a_set_api_domain_is_kept_whatever_up_serves_on(monkeypatch, settings):
    from io import StringIO

    from bedrock.runs.management.commands.up import Command

    monkeypatch.setenv("BEDROCK_API_DOMAIN", "https://bedrock.example.com")
    settings.BEDROCK_API_DOMAIN = "https://bedrock.example.com"
    Command(stdout=StringIO())._announce_api_address("127.0.0.1:8765")
    assert settings.BEDROCK_API_DOMAIN == "https://bedrock.example.com"

    import os

    monkeypatch.delenv("BEDROCK_API_DOMAIN")
    out = StringIO()
    Command(stdout=out)._announce_api_address("127.0.0.1:8765")
    assert settings.BEDROCK_API_DOMAIN == "http://127.0.0.1:8765"
    assert os.environ["BEDROCK_API_DOMAIN"] == "http://127.0.0.1:8765", "what the worker inherits"
    assert "Steps reach the API at http://127.0.0.1:8765" in out.getvalue()


@pytest.mark.slow
def test_a_step_of_bedrock_up_on_another_port_is_told_that_port(tmp_path):
    from tests.test_commands import free_port, scratch_env, up_serving

    env = scratch_env(tmp_path)
    port = free_port()
    up, lines = up_serving(env, port)
    try:
        assert "Serving Bedrock" in "".join(lines), "".join(lines)
        result = _run_through_worker(env, tmp_path)
    finally:
        _stop_up(up)
    assert "STATUS Succeeded" in result, result
    assert f"API=http://127.0.0.1:{port}\n" in result
    assert ":8000" not in result.split("LOG", 1)[1]


# Case: archives a killed packer left behind.
def _stored_keys(prefix: str) -> list[str]:
    from django.core.files.storage import default_storage

    try:
        return default_storage.listdir(prefix)[1]
    except FileNotFoundError:
        return []


def _storage_object(key: str, content: bytes = b"PK\x03\x04 partial") -> str:
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    assert default_storage.save(key, ContentFile(content)) == key
    return key


@pytest.mark.django_db
def test_the_reconciler_deletes_a_killed_packers_partial_archive_and_keeps_versions(tmp_path):
    import uuid

    from django.core.files.storage import default_storage

    from bedrock.models.models import ArchiveUpload, ModelVersion
    from bedrock.runs.models import Run, RunStatus, RunStep
    from bedrock.runs.services import runs_reconcile
    from tests import factories

    tag = uuid.uuid4().hex[:12]  # storage outlives each test's database
    pipeline = factories.pipeline(factories.project())
    ended = Run.objects.create(pipeline=pipeline, number=1, ref="main", status=RunStatus.FAILED)
    active = Run.objects.create(pipeline=pipeline, number=2, ref="main", status=RunStatus.QUEUED)
    published = Run.objects.create(
        pipeline=pipeline, number=3, ref="main", status=RunStatus.SUCCEEDED
    )
    # What a supervisor killed while packing leaves: the record, and part of the object.
    partial = _storage_object(f"models/{pipeline.model_id}/run-{ended.pk}-{tag}.zip")
    ArchiveUpload.objects.create(storage_key=partial, run=ended)
    stage = _storage_object(f"runs/{ended.pk}/steps/train-{tag}.zip")
    ArchiveUpload.objects.create(storage_key=stage, run=ended)
    # An upload still under way, of a run still active.
    going = _storage_object(f"models/{pipeline.model_id}/run-{active.pk}-{tag}.zip")
    ArchiveUpload.objects.create(storage_key=going, run=active)
    # A version's archive, with a record left beside it: the version's archive stays.
    kept = _storage_object(f"models/{pipeline.model_id}/run-{published.pk}-{tag}.zip")
    ModelVersion.objects.create(
        model=pipeline.model,
        number=1,
        run=published,
        storage_key=kept,
        size=18,
        sha256="0" * 64,
        file_count=1,
    )
    ArchiveUpload.objects.create(storage_key=kept, run=published)
    named_stage = _storage_object(f"runs/{published.pk}/steps/s-{tag}.zip")
    RunStep.objects.create(run=published, name="s", position=0, artefact_key=named_stage)
    ArchiveUpload.objects.create(storage_key=named_stage, run=published)

    repaired = runs_reconcile()

    assert repaired["archives"] == 2
    assert not default_storage.exists(partial) and not default_storage.exists(stage)
    assert default_storage.exists(kept) and default_storage.exists(named_stage)
    assert default_storage.exists(going)
    assert set(ArchiveUpload.objects.values_list("storage_key", flat=True)) == {going}
    assert runs_reconcile()["archives"] == 0, "safe to run twice"
    for key in (kept, named_stage, going):  # storage outlives the test's database
        default_storage.delete(key)


_KILLED_PACKER_SETUP = """
from django.core.management import call_command
call_command("migrate", verbosity=0)
from bedrock.models.models import Model
from bedrock.pipelines.models import Pipeline, Project
from bedrock.runs.models import Run
project = Project.objects.create(name="packing")
model = Model.objects.create(project=project, name="m")
pipeline = Pipeline.objects.create(
    project=project, name="p", git_url="https://git.example.com/a/b.git", kind="training",
    model=model,
)
run = Run.objects.create(pipeline=pipeline, number=1, ref="main", status="Running")
print(f"KEY models/{model.pk}/run-{run.pk}-0123456789ab.zip RUN {run.pk}")
"""


@pytest.mark.slow
def test_a_packer_killed_for_real_leaves_a_partial_archive_that_the_reconciler_deletes(tmp_path):
    import os
    import re
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from tests.test_commands import scratch_env

    env = scratch_env(tmp_path)
    root = Path(__file__).resolve().parents[1]

    def shell(script: str, **kwargs) -> subprocess.Popen:
        command = [sys.executable, "-m", "bedrock.cli", "shell", "-c", script]
        return subprocess.Popen(command, cwd=root, env=env, text=True, **kwargs)

    setup = shell(_KILLED_PACKER_SETUP, stdout=subprocess.PIPE)
    key, run_id = re.search(r"KEY (\S+) RUN (\d+)", setup.communicate(timeout=120)[0]).groups()
    big = tmp_path / "artefact"
    big.mkdir()
    for number in range(32):
        (big / f"part-{number}.bin").write_bytes(os.urandom(4 << 20))
    partial = Path(env["BEDROCK_HOME"]) / "artefacts" / key
    packer = shell(
        "from pathlib import Path\n"
        "from bedrock.models.services import archive_store\n"
        f"archive_store(Path({str(big)!r}), {key!r}, run_id={run_id})\n"
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and packer.poll() is None:
        if partial.exists() and partial.stat().st_size > 1 << 20:
            break
        time.sleep(0.02)
    packer.send_signal(signal.SIGKILL)
    packer.wait()
    left = partial.stat().st_size
    assert 0 < left < 128 << 20, "killed while packing"

    # The supervisor died with its packer: once the reconciler has ended the run, the partial goes.
    reconcile = shell(
        "from bedrock.models.models import ArchiveUpload\n"
        "from bedrock.runs.models import Run\n"
        "from bedrock.runs.services import runs_reconcile\n"
        "print('BEFORE', runs_reconcile()['archives'], ArchiveUpload.objects.count())\n"
        f"Run.objects.filter(pk={run_id}).update(status='Failed')\n"
        "print('AFTER', runs_reconcile()['archives'], ArchiveUpload.objects.count())\n",
        stdout=subprocess.PIPE,
    )
    said = reconcile.communicate(timeout=120)[0]

    assert "BEFORE 0 1" in said, "left alone while its run is active"
    assert "AFTER 1 0" in said, said
    assert not partial.exists(), f"{left} bytes left behind"


@pytest.mark.django_db(transaction=True)
def test_a_publish_records_its_upload_first_and_leaves_no_record_once_named(tmp_path, monkeypatch):
    from django.core.files.storage import default_storage

    from bedrock.models import services
    from bedrock.models.models import ArchiveUpload, ModelVersion
    from bedrock.runs.models import Run, RunStatus
    from tests import factories

    pipeline = factories.pipeline(factories.project())
    run = Run.objects.create(pipeline=pipeline, number=1, ref="main", status=RunStatus.RUNNING)
    directory = tmp_path / "artefact"
    directory.mkdir()
    (directory / "model.json").write_text("{}")
    seen_while_packing = []
    store = services.artefact_store

    def watched(source, key, **kwargs):
        seen_while_packing.append(ArchiveUpload.objects.filter(storage_key=key, run=run).exists())
        return store(source, key, **kwargs)

    monkeypatch.setattr(services, "artefact_store", watched)

    version = services.model_version_publish(run=run, directory=directory)

    assert seen_while_packing == [True], "recorded before the first byte"
    assert not ArchiveUpload.objects.exists()
    assert default_storage.exists(version.storage_key)

    # An upload the reconciler took for abandoned meanwhile is neither recorded nor kept.
    second = Run.objects.create(pipeline=pipeline, number=2, ref="main", status=RunStatus.RUNNING)
    stored_keys = []

    def abandoned(source, key, **kwargs):
        result = store(source, key, **kwargs)
        stored_keys.append(key)
        ArchiveUpload.objects.filter(storage_key=key).delete()  # what the reconciler does first
        return result

    monkeypatch.setattr(services, "artefact_store", abandoned)
    with pytest.raises(services.ArchiveAbandonedError, match="its run had ended"):
        services.model_version_publish(run=second, directory=directory)
    assert not ModelVersion.objects.filter(run=second).exists()
    assert not default_storage.exists(stored_keys[0])
    assert not ArchiveUpload.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_failed_or_stale_stage_upload_leaves_neither_object_nor_record(tmp_path):
    from django.core.files.storage import default_storage

    from bedrock.models.artefacts import EmptyArtefactError
    from bedrock.models.models import ArchiveUpload
    from bedrock.runs.models import Run, RunStatus, RunStep
    from bedrock.runs.stages import StaleAttemptError, stage_store
    from tests import factories

    pipeline = factories.pipeline(factories.project())
    run = Run.objects.create(pipeline=pipeline, number=1, ref="main", status=RunStatus.RUNNING)
    run_step = RunStep.objects.create(
        run=run, name="train", position=0, status=RunStatus.RUNNING, attempts=2
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(EmptyArtefactError):
        stage_store(run_step, empty)
    assert not ArchiveUpload.objects.exists()

    full = tmp_path / "full"
    full.mkdir()
    (full / "a").write_text("a")
    with pytest.raises(StaleAttemptError):
        stage_store(run_step, full, attempt=1)
    assert not ArchiveUpload.objects.exists()
    assert [name for name in _stored_keys(f"runs/{run.pk}/steps/") if "train-" in name] == []

    stored = stage_store(run_step, full, attempt=2)
    assert not ArchiveUpload.objects.exists()
    assert default_storage.exists(stored.key)


# Case: an idempotency key reused for a different request.
# validate_ref refuses these refs before any Git work, so every run here is Rejected at once.
_BAD_REF, _OTHER_BAD_REF = "bad..ref", "other..ref"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "different",
    [
        {"parameters": {"EPOCHS": "20"}},
        {"parameters": {"EPOCHS": "10", "EXTRA": "1"}},
        {"ref": _OTHER_BAD_REF},
        {"model_version_id": 7},
    ],
    ids=["another value", "another parameter", "another ref", "a model version"],
)
def test_an_idempotency_key_reused_for_a_different_request_is_a_conflict_naming_it(different):
    from django.core.exceptions import ValidationError

    from bedrock.runs.models import Run
    from bedrock.runs.services import run_create
    from tests import factories

    pipeline = factories.pipeline(factories.project())
    asked = {"ref": _BAD_REF, "parameters": {"EPOCHS": "10"}, "model_version_id": None}
    first = run_create(actor=SYSTEM, pipeline=pipeline, idempotency_key="nightly-1", **asked)

    with pytest.raises(ValidationError) as refused:
        run_create(
            actor=SYSTEM, pipeline=pipeline, idempotency_key="nightly-1", **{**asked, **different}
        )

    error = refused.value.error_dict["idempotency_key"][0]
    assert error.code == "conflict"
    assert "'nightly-1'" in error.message and f"run {first.number}" in error.message
    assert list(Run.objects.filter(pipeline=pipeline)) == [first]
    # The same request again is still the first run.
    again = run_create(actor=SYSTEM, pipeline=pipeline, idempotency_key="nightly-1", **asked)
    assert again.pk == first.pk
    assert (
        run_create(
            actor=SYSTEM,
            pipeline=pipeline,
            ref=_BAD_REF,
            parameters={"EPOCHS": 10},
            idempotency_key="nightly-1",
        ).pk
        == first.pk
    ), "10 and '10' are the same parameter value"


@pytest.mark.django_db
def test_start_run_returns_the_idempotency_conflict_as_its_typed_error():
    from django.test import Client

    from bedrock.pipelines.models import Role
    from bedrock.runs.models import Run
    from tests import factories

    pipeline = factories.pipeline(factories.project())
    developer = factories.user()
    factories.member(pipeline.project, developer, Role.DEVELOPER)
    client = Client()
    client.force_login(developer)
    query = """mutation($p: ID!, $ref: String, $params: JSON) { startRun(pipelineId: $p,
        ref: $ref, parameters: $params, idempotencyKey: "k-1") { ... on Run { id }
        ... on OperationInfo { messages { kind field code message } } } }"""

    def start(params: dict) -> dict:
        body = client.post(
            "/graphql",
            {
                "query": query,
                "variables": {"p": str(pipeline.pk), "ref": _BAD_REF, "params": params},
            },
            content_type="application/json",
        ).json()
        assert "errors" not in body, body
        return body["data"]["startRun"]

    first = start({"A": "1"})
    assert start({"A": "1"}) == first
    conflict = start({"A": "2"})

    [message] = conflict["messages"]
    assert message["field"] == "idempotencyKey" and message["code"] == "conflict"
    assert "'k-1'" in message["message"]
    assert Run.objects.filter(pipeline=pipeline).count() == 1


# Case: Bedrock's own directories as a pipeline's repository.
def _cache_of_another_pipeline(tmp_path):
    """A real pipeline whose run filled its Git cache; the cache's path."""
    from pathlib import Path

    from django.conf import settings

    from bedrock.pipelines import git
    from tests.repos import hcl, make_repo, step
    from tests.runflow import pipeline_for

    repo = make_repo(tmp_path / "victim", {"bedrock.hcl": hcl("train", step("s", "true"))})
    victim = pipeline_for(repo, name="victim")
    git.resolve_ref(str(repo), "main", cache_key=f"pipeline-{victim.pk}")
    cache = Path(settings.BEDROCK_GIT_CACHE) / f"pipeline-{victim.pk}"
    assert (cache / "HEAD").is_file()
    return cache


@pytest.mark.django_db
def test_bedrock_own_directories_are_refused_as_a_pipelines_repository(tmp_path, settings):
    import os

    from django.core.exceptions import ValidationError

    from bedrock.pipelines.models import Pipeline
    from bedrock.pipelines.services import pipeline_create
    from tests import factories

    cache = _cache_of_another_pipeline(tmp_path)
    (tmp_path / "link").symlink_to(cache.parent)
    ups = "/.." * len(tmp_path.parts)
    attacker = factories.project()
    candidates = {
        "the cache": str(cache),
        "a file:// URL": f"file://{cache}",
        "a %-escaped file:// URL": "file://" + str(cache).replace("/git/", "/%67it/"),
        "a symbolic link": str(tmp_path / "link" / cache.name),
        "a .. path": f"{tmp_path}{ups}{cache}",
        "BEDROCK_HOME": str(settings.BEDROCK_HOME),
        "a run's workspace": f"{settings.BEDROCK_HOME}/runs/1",
        "the artefact store": settings.STORAGES["default"]["OPTIONS"]["location"] + "/models",
    }
    for what, url in candidates.items():
        with pytest.raises(ValidationError) as refused:
            pipeline_create(
                actor=SYSTEM, project=attacker, name="thief", git_url=url, kind="training"
            )
        message = refused.value.message_dict["git_url"][0]
        assert "inside Bedrock's own directory" in message, what
        assert os.path.realpath(settings.BEDROCK_HOME) in message, what
    assert not Pipeline.objects.filter(project=attacker).exists()


@pytest.mark.django_db
def test_editing_a_pipeline_to_point_at_bedrocks_git_cache_is_refused(tmp_path):
    from django.core.exceptions import ValidationError
    from django.test import Client

    from bedrock.pipelines.models import Pipeline, Role
    from bedrock.pipelines.services import pipeline_update
    from tests import factories
    from tests.repos import hcl, make_repo, step

    cache = _cache_of_another_pipeline(tmp_path)
    project = factories.project()
    own = make_repo(tmp_path / "own", {"bedrock.hcl": hcl("train", step("s", "true"))})
    pipeline = factories.pipeline(project, git_url=str(own))

    with pytest.raises(ValidationError) as refused:
        pipeline_update(actor=SYSTEM, pipeline=pipeline, git_url=str(cache))
    assert "inside Bedrock's own directory" in refused.value.message_dict["git_url"][0]
    assert Pipeline.objects.get(pk=pipeline.pk).git_url == str(own)

    admin = factories.user()
    factories.member(project, admin, Role.ADMIN)
    client = Client()
    client.force_login(admin)
    body = client.post(
        "/graphql",
        {
            "query": """mutation($id: ID!, $url: String) { updatePipeline(id: $id,
                data: {gitUrl: $url}) { ... on Pipeline { gitUrl }
                ... on OperationInfo { messages { field message } } } }""",
            "variables": {
                "id": str(pipeline.pk),
                "url": f"{tmp_path}{'/..' * len(tmp_path.parts)}{cache}",
            },
        },
        content_type="application/json",
    ).json()
    [message] = body["data"]["updatePipeline"]["messages"]
    assert message["field"] == "gitUrl" and "inside Bedrock's own directory" in message["message"]
    assert Pipeline.objects.get(pk=pipeline.pk).git_url == str(own)


@pytest.mark.django_db(transaction=True)
def test_a_link_repointed_at_the_git_cache_after_creation_is_refused_at_run_and_checkout(tmp_path):
    from bedrock.pipelines import git
    from bedrock.runs.models import Run, RunStatus
    from bedrock.runs.services import run_create
    from tests.repos import hcl, make_repo, step
    from tests.runflow import pipeline_for

    cache = _cache_of_another_pipeline(tmp_path)
    own = make_repo(tmp_path / "own", {"bedrock.hcl": hcl("train", step("s", "true"))})
    link = tmp_path / "mine"
    link.symlink_to(own)
    pipeline = pipeline_for(
        link, name="mine"
    )  # accepted: the link leads to a repository of its own
    link.unlink()
    link.symlink_to(cache)

    run = run_create(actor=SYSTEM, pipeline=pipeline)

    assert run.status == RunStatus.REJECTED
    assert "inside Bedrock's own directory" in run.failure_reason
    assert not run.commit_sha and not run.config_text
    assert Run.objects.filter(pipeline=pipeline).count() == 1
    dest = tmp_path / "checkout"
    with pytest.raises(git.GitError, match="inside Bedrock's own directory"):
        git.checkout(str(link), "0" * 40, dest, cache_key=f"pipeline-{pipeline.pk}")
    assert not dest.exists()


@pytest.mark.django_db
def test_the_example_repository_bedrock_publishes_itself_is_still_accepted():
    from pathlib import Path

    from django.conf import settings

    from bedrock.runs.examples import example_load

    example = example_load()
    assert Path(example.training.git_url).is_relative_to(Path(settings.BEDROCK_HOME) / "examples")
    example.training.full_clean()
    example.scoring.full_clean()


# --- 5. Masking --------------------------------------------------------------------------------


MASK_SECRET = "pa55/w0rd+with spaces&ü"
PEM = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
    "QyNTUxOQAAACDXkq7ZaBd3QyZQ2lD4w1k0fN7m0aYcN0mO3Dq5m8JkqgAAAJgAAAAAAAAA\n"
    "-----END OPENSSH PRIVATE KEY-----"
)


def _mask_log(tmp_path, chunks, secrets=(MASK_SECRET,)) -> str:
    from bedrock.runs.logmask import LogWriter

    path = tmp_path / "step.log"
    path.unlink(missing_ok=True)
    writer = LogWriter(path, list(secrets))
    for chunk in chunks:
        writer.write(chunk)
    writer.close()
    return path.read_text()


def _mask_encodings(value: str) -> dict[str, str]:
    import base64
    import re
    from urllib.parse import quote, quote_plus

    raw = value.encode()
    return {
        "base64": base64.b64encode(raw).decode(),
        "base64 unpadded": base64.b64encode(raw).decode().rstrip("="),
        "base64 url-safe": base64.urlsafe_b64encode(raw).decode(),
        "base64 url-safe unpadded": base64.urlsafe_b64encode(raw).decode().rstrip("="),
        "quote": quote(value, safe=""),
        "quote keeping /": quote(value),
        "quote_plus": quote_plus(value),
        "quote, lower-case escapes": re.sub(
            "%[0-9A-F]{2}", lambda escape: escape.group().lower(), quote(value, safe="")
        ),
        "hex": raw.hex(),
        "HEX": raw.hex().upper(),
    }


@pytest.mark.django_db
@pytest.mark.parametrize("value", ["a", "ab", "abc"])
def test_a_secret_shorter_than_4_characters_is_refused_with_the_reason(value):
    from bedrock.secrets.models import Secret
    from tests import factories

    pipeline = factories.pipeline(factories.project())
    error = _env_api_refusal(_ENV_SET_SECRET, pipeline, name="PIN", value=value)

    assert error["field"] == "value"
    assert error["message"] == (
        "A secret needs at least 4 characters: a shorter value cannot be masked in logs "
        "without masking ordinary text."
    )
    assert not Secret.objects.exists()


@pytest.mark.parametrize("form", list(_mask_encodings(MASK_SECRET)))
def test_the_log_masks_a_secret_in_its_encoded_forms(tmp_path, form):
    encoded = _mask_encodings(MASK_SECRET)[form]
    assert encoded != MASK_SECRET

    log = _mask_log(tmp_path, [f"{form}: {encoded} end\n"])

    assert log == f"{form}: ******** end\n"


@pytest.mark.parametrize("prefix", ["", "x", "xy", "xyz"])
def test_base64_of_a_longer_text_holding_the_secret_hides_the_secret(tmp_path, prefix):
    import base64

    encoded = base64.b64encode(f"{prefix}{MASK_SECRET}!".encode()).decode()
    log = _mask_log(tmp_path, [encoded + "\n"])

    assert "********" in log
    # What is left is the few characters that also encode the text around the value.
    assert len(log.replace("********", "").strip()) <= 8


def test_base64_wrapped_at_76_columns_is_masked_line_by_line(tmp_path):
    import base64
    import textwrap

    value = "long-" * 30
    wrapped = textwrap.fill(base64.b64encode(value.encode()).decode(), 76)
    log = _mask_log(tmp_path, [wrapped + "\n"], secrets=[value])

    assert set(log.split()) == {"********"}


def test_a_secret_split_across_two_chunks_at_any_byte_is_masked(tmp_path):
    line = f"before {MASK_SECRET} after\n".encode()
    start = line.index(MASK_SECRET.encode())
    for cut in range(start, start + len(MASK_SECRET.encode()) + 1):
        log = _mask_log(tmp_path, [line[:cut], line[cut:]])
        assert log == "before ******** after\n", cut


def test_a_secret_in_one_byte_chunks_and_a_last_line_without_newline_is_masked(tmp_path):
    data = f"one {MASK_SECRET}\ntwo {MASK_SECRET}".encode()

    log = _mask_log(tmp_path, [data[i : i + 1] for i in range(len(data))])

    assert log == "one ********\ntwo ********"


def test_a_long_partial_line_is_written_at_the_bound_and_a_secret_across_it_is_masked(tmp_path):
    from bedrock.runs.logmask import MAX_PARTIAL_LINE, LogWriter

    path = tmp_path / "step.log"
    writer = LogWriter(path, [MASK_SECRET])
    filler = b"." * (MAX_PARTIAL_LINE - 5)
    secret = MASK_SECRET.encode()
    writer.write(filler + secret[:9])  # over the bound, the secret's start still held back
    written = path.read_bytes()
    writer.write(secret[9:] + b" and more")
    writer.close()

    assert 0 < len(written) <= len(filler)
    assert path.read_bytes() == filler + b"******** and more"


def test_a_multi_line_secret_is_masked_line_by_line_in_any_chunks(tmp_path):
    output = f"key:\n{PEM}\ndone\n"
    by_line = _mask_log(tmp_path, output.splitlines(keepends=True), secrets=[PEM])
    data = output.encode()
    in_chunks = _mask_log(tmp_path, [data[i : i + 7] for i in range(0, len(data), 7)], [PEM])

    for log in (by_line, in_chunks):
        assert "BEGIN OPENSSH" not in log and "b3BlbnNz" not in log and "QyNTUx" not in log
        assert log.startswith("key:\n") and log.endswith("done\n")


def test_a_secret_printed_inside_json_is_masked(tmp_path):
    import json

    value = 'pa"ss\\wörd'
    log = _mask_log(
        tmp_path,
        [json.dumps({"password": value}) + "\n", json.dumps([value], ensure_ascii=False) + "\n"],
        secrets=[value],
    )

    assert log == '{"password": "********"}\n["********"]\n'


def test_a_secret_containing_another_is_masked_whole(tmp_path):
    log = _mask_log(tmp_path, ["1 abcdefgh 2 abcd 3 abcdefg\n"], secrets=["abcd", "abcdefgh"])

    assert log == "1 ******** 2 ******** 3 ********efg\n"


def test_supervisor_log_writer_is_the_masking_writer():
    from bedrock.runs import logmask, supervisor

    assert supervisor.LogWriter is logmask.LogWriter


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_a_real_step_printing_encoded_and_split_secrets_leaves_none_in_its_log(tmp_path):
    from bedrock.runs.models import RunStatus
    from bedrock.runs.services import run_create
    from bedrock.secrets.services import secret_set
    from tests.repos import hcl, step
    from tests.runflow import pipeline_for, repo_with, step_log, wait_until_done

    value = "s3cr3t-v4lue-for/the db"
    script = (
        "import base64, binascii, os, sys, time, urllib.parse as u\n"
        "s = os.environ['DB_PASSWORD']\n"
        "for line in [s, base64.b64encode(s.encode()).decode(), u.quote(s), u.quote_plus(s),\n"
        "             binascii.hexlify(s.encode()).decode()]:\n"
        "    print('got', line, flush=True)\n"
        "sys.stdout.write('split ' + s[:6]); sys.stdout.flush(); time.sleep(0.3)\n"
        "print(s[6:] + ' end', flush=True)\n"
    )
    text = hcl(
        "train",
        step("leak", "python3 leak.py", "echo ok > $BEDROCK_ARTEFACT_DIR/ok"),
        secrets='"DB_PASSWORD"',
    )
    pipeline = pipeline_for(repo_with(tmp_path, text, **{"leak.py": script}))
    secret_set(actor=SYSTEM, pipeline=pipeline, name="DB_PASSWORD", value=value)

    run = wait_until_done(run_create(actor=SYSTEM, pipeline=pipeline))

    assert run.status == RunStatus.SUCCEEDED, run.failure_reason
    log = step_log(run, "leak")
    assert log.count("got ********") == 5, log
    assert "split ******** end" in log
    for form in [value, *_mask_encodings(value).values()]:
        assert form not in log


# --- 6. Deployment -----------------------------------------------------------------------------
DJANGO_HTTPS_WARNINGS = ("security.W004", "security.W008", "security.W012", "security.W016")


def test_django_https_deploy_warnings_are_fixed_by_bedrock_https(tmp_path):
    from tests.test_checks import bedrock_check

    plain = bedrock_check(tmp_path, "--deploy")
    assert all(check_id in plain.stderr for check_id in DJANGO_HTTPS_WARNINGS), plain.stderr

    served_over_https = bedrock_check(tmp_path, "--deploy", BEDROCK_HTTPS="on")
    assert served_over_https.returncode == 0, served_over_https.stderr
    assert not [c for c in DJANGO_HTTPS_WARNINGS if c in served_over_https.stderr]
    # HSTS on, Django asks about subdomains and preloading: the domain owner's two settings.
    assert "security.W005" in served_over_https.stderr
    assert "security.W021" in served_over_https.stderr

    every_hsts_choice = bedrock_check(
        tmp_path,
        "--deploy",
        BEDROCK_HTTPS="on",
        BEDROCK_HSTS_INCLUDE_SUBDOMAINS="on",
        BEDROCK_HSTS_PRELOAD="on",
        BEDROCK_LOCAL_SANDBOX="on",
    )
    assert "security.W005" not in every_hsts_choice.stderr
    assert "security.W021" not in every_hsts_choice.stderr
    if shutil.which("bwrap"):
        assert "no issues" in every_hsts_choice.stdout, every_hsts_choice.stderr


def test_https_settings_follow_the_switch(tmp_path):
    script = (
        "from django.conf import settings as s;"
        "print(s.SECURE_SSL_REDIRECT, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE,"
        " s.SECURE_HSTS_SECONDS, getattr(s, 'SECURE_PROXY_SSL_HEADER', None))"
    )
    shown = bedrock_shell(tmp_path, script, BEDROCK_HTTPS="on", BEDROCK_BEHIND_HTTPS_PROXY="on")
    assert shown == "True True True 3600 ('HTTP_X_FORWARDED_PROTO', 'https')"
    assert bedrock_shell(tmp_path, script) == "False False False 0 None"


def bedrock_shell(tmp_path, script: str, **env: str) -> str:
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("BEDROCK_", "DATABASE_", "NOMAD_"))
    }
    clean.pop("DJANGO_SETTINGS_MODULE", None)
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", script],
        cwd=Path(__file__).resolve().parents[1],
        env={**clean, "BEDROCK_HOME": str(tmp_path), **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize(
    ("env", "check_id", "fragment"),
    [
        (
            {"BEDROCK_LOCAL_SANDBOX": "off"},
            "bedrock.W030",
            "Only site administrators' runs will execute",
        ),
        (
            {"BEDROCK_LOCAL_SANDBOX": "off", "BEDROCK_ALLOW_UNSANDBOXED": "on"},
            "bedrock.W030",
            "can read its keys and database",
        ),
        ({"BEDROCK_DEBUG": "on"}, "bedrock.W031", "BEDROCK_DEBUG is on"),
        (
            {
                "DATABASE_URL": "postgres://bedrock@127.0.0.1:1/bedrock",
                "BEDROCK_ALLOW_LOCAL_REPOS": "on",
            },
            "bedrock.W032",
            "BEDROCK_ALLOW_LOCAL_REPOS is on with a shared database",
        ),
    ],
)
def test_check_warns_about_what_exposes_the_server(tmp_path, env, check_id, fragment):
    from tests.test_checks import bedrock_check

    result = bedrock_check(tmp_path, **env)
    assert result.returncode == 0, result.stderr
    assert check_id in result.stderr
    assert fragment in result.stderr


def test_the_sandbox_warning_is_absent_where_steps_are_sandboxed_or_elsewhere(tmp_path):
    from tests.test_checks import bedrock_check

    assert "bedrock.W030" not in bedrock_check(tmp_path, BEDROCK_EXECUTOR="docker").stderr
    if shutil.which("bwrap"):
        assert "bedrock.W030" not in bedrock_check(tmp_path).stderr


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


def _stanza_pipeline(tmp_path, steps: str, files: dict | None = None, secrets: str = "", **options):
    """A pipeline whose one stanza is made of ``steps``."""
    from tests.repos import hcl
    from tests.runflow import pipeline_for, repo_with

    repo = repo_with(tmp_path, hcl("train", steps, secrets=secrets), **(files or {}))
    return pipeline_for(repo, **options)


def _start(tmp_path, steps: str, files: dict | None = None, **options):
    """A run of :func:`_stanza_pipeline`, started on the command line."""
    from bedrock.runs.services import run_create

    return run_create(actor=SYSTEM, pipeline=_stanza_pipeline(tmp_path, steps, files, **options))


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
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_stopping_a_docker_run_ends_its_step_stopped_and_removes_the_container(tmp_path, on_docker):
    from bedrock.runs.models import ACTIVE_STATUSES, RunStatus
    from bedrock.runs.services import run_stop
    from tests.repos import step
    from tests.runflow import wait_until_done

    run = _start(tmp_path, step("s", "sleep 120"))
    _container_of(run)

    run_stop(actor=SYSTEM, run=run)

    run = wait_until_done(run, timeout=90)
    assert run.status == RunStatus.STOPPED
    assert run.steps.get().status == RunStatus.STOPPED
    assert not run.steps.filter(status__in=ACTIVE_STATUSES).exists()
    assert "No such container" not in run.failure_reason
    assert _containers(run.pk) == []


@_docker_skip()
@pytest.mark.slow
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
@pytest.mark.slow
@pytest.mark.parametrize(
    ("command", "grace", "sentence", "exit_code"),
    [
        (
            "trap 'echo saved; exit 0' TERM; while :; do sleep 60 & wait; done",
            20,
            "ended on SIGTERM",
            0,
        ),
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
@pytest.mark.slow
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
@pytest.mark.slow
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
@pytest.mark.slow
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

    pipeline = _stanza_pipeline(tmp_path, steps, secrets='"DB_PASSWORD"')
    Secret.objects.create(pipeline=pipeline, name="DB_PASSWORD", value="pa55-for-the-user")

    run = run_create(actor=SYSTEM, pipeline=pipeline)

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
@pytest.mark.slow
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
@pytest.mark.slow
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

    run = wait_until_done(run_create(actor=SYSTEM, pipeline=run.pipeline))

    assert run.status == RunStatus.FAILED
    assert "the Docker network 'bedrock-test-steps' (BEDROCK_DOCKER_NETWORK) does not exist" in (
        run.failure_reason
    )
    assert _containers(run.pk) == []


@_docker_skip()
@pytest.mark.slow
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
@pytest.mark.slow
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
    output = b"".join(lines).decode().splitlines()
    # Bedrock's own first line: the secrets were left out, as their names are Bedrock's.
    assert output[0].startswith("bedrock: left out of the step's environment (secret "), output
    assert all(f"secret {name}:" in output[0] for name in forged), output
    # The local executor's next line says which Python stands in for the image.
    printed = [line for line in output[1:] if not line.startswith("bedrock: ")]
    return " ".join(printed).split()


@pytest.mark.django_db(transaction=True)
def test_a_secret_named_as_bedrocks_own_variables_replaces_none_of_them_on_the_local_executor(
    tmp_path,
):
    from bedrock.runs.executors.local import LocalExecutor, sandbox_available

    seen = _own_variables_seen(LocalExecutor(), tmp_path)

    app = "/app" if sandbox_available() else str(tmp_path / "app")
    assert seen == ["bdrkrun_the-real-one", "7", app, "1"]


@_docker_skip()
@pytest.mark.slow
def test_a_secret_named_as_bedrocks_own_variables_replaces_none_of_them_in_a_container(tmp_path):
    from bedrock.runs.executors.docker import DockerExecutor

    seen = _own_variables_seen(DockerExecutor(), tmp_path)

    assert seen == ["bdrkrun_the-real-one", "7", "/app", "1"]
    assert _containers(990_100) == []


@pytest.mark.parametrize(
    "executor", ["local", pytest.param("docker", marks=[_docker_skip(), pytest.mark.slow])]
)
@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
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
