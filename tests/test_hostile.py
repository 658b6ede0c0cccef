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

    from bedrock.runs.models import RunStatus
    from bedrock.runs.services import run_create
    from tests.repos import hcl, step
    from tests.runflow import pipeline_for, repo_with, step_log, wait_until_done

    places = host_files
    # The database changes as the run goes: its probe says whether the step could open it.
    before = {name: path.read_bytes() for name, path in places.items() if name != "database"}
    probes = "".join(
        f"if cat '{path}' > /dev/null 2>&1; then echo 'READ {name}'; fi\n"
        f"if [ -e '{path}' ]; then echo 'SEEN {name}'; fi\n"
        # Opened for writing, nothing written: a failing sandbox must not damage the real files.
        f"if (: >> '{path}') 2> /dev/null; then echo 'WROTE {name}'; fi\n"
        for name, path in places.items()
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
        assert f"SEEN {name}" not in log, log
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

    with pytest.raises(ExecutorError, match=r"BEDROCK_LOCAL_SANDBOX is off\): only site"):
        LocalExecutor().start(None, context)
    assert not (tmp_path / "step").exists()


# --- 2. What a run may set in a step's environment --------------------------------------------


# --- 3. Bounded work ---------------------------------------------------------------------------


# --- 4. Every run ends in a true state ---------------------------------------------------------


# --- 4b. Followers, the worker, archives, idempotency, addresses, repositories ------------------


# --- 5. Masking --------------------------------------------------------------------------------


# --- 6. Deployment -----------------------------------------------------------------------------


# --- 7. The Docker executor --------------------------------------------------------------------
