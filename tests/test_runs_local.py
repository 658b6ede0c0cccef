"""Runs end to end on the local executor: real Git repositories, real processes, real archives."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from datetime import timedelta

import pytest
from django.core.files.storage import default_storage

from bedrock.actors import SYSTEM
from bedrock.models.models import ModelVersion
from bedrock.pipelines.models import PipelineKind
from bedrock.runs.executors.local import bubblewrap
from bedrock.runs.models import Run, RunStatus
from bedrock.runs.services import run_create, run_stop
from bedrock.secrets.services import secret_set
from tests import factories
from tests.repos import EXAMPLE, hcl, make_repo, step
from tests.runflow import pipeline_for, repo_with, step_log, wait_for, wait_until_done

pytestmark = pytest.mark.django_db(transaction=True)


def start(pipeline, **kwargs) -> Run:
    return run_create(actor=SYSTEM, pipeline=pipeline, **kwargs)


@pytest.mark.slow
def test_the_example_trains_publishes_version_1_and_batch_scores_with_it(tmp_path, step_api):
    repo = make_repo(tmp_path / "churn", copy=EXAMPLE)
    training = pipeline_for(repo, name="churn-train")
    scoring = pipeline_for(repo, kind=PipelineKind.BATCH_SCORING, project=training.project)

    run = wait_until_done(start(training, parameters={"EPOCHS": "100"}))

    assert run.status == RunStatus.SUCCEEDED, run.failure_reason
    assert [s.status for s in run.steps.order_by("position")] == [RunStatus.SUCCEEDED] * 2
    assert run.parameters["EPOCHS"] == "100" and run.parameters["LEARNING_RATE"] == "0.5"
    assert "validation accuracy" in step_log(run, "train")
    logged = set(run.metrics.values_list("name", flat=True))
    assert logged == {"train_log_loss", "validation_accuracy", "validation_auc"}
    assert run.metrics.get(name="train_log_loss").count == 10  # every 10th of 100 epochs
    chart = run.charts.get().data  # at threshold 0 every customer is predicted to churn
    assert chart["tn"][0] == chart["fn"][0] == 0 and chart["tp"][0] > 0 and chart["fp"][0] > 0
    version = ModelVersion.objects.get(run=run)
    assert version.number == 1
    with default_storage.open(version.storage_key) as handle, zipfile.ZipFile(handle) as archive:
        assert sorted(archive.namelist()) == ["metrics.json", "model.json", "scaling.json"]
        assert version.file_count == 3

    scored = wait_until_done(start(scoring, model_version_id=version.pk))

    assert scored.status == RunStatus.SUCCEEDED, scored.failure_reason
    assert "scored 200 customers" in step_log(scored, "score")
    assert scored.input_model_version == version

    second = wait_until_done(start(training))
    assert ModelVersion.objects.get(run=second).number == 2


@pytest.mark.slow
def test_a_failing_step_fails_the_run_and_its_dependants_never_start(tmp_path):
    steps = step("a", "echo before; exit 3") + "\n" + step("b", "echo b", depends_on='"a"')
    run = wait_until_done(start(pipeline_for(repo_with(tmp_path, hcl("train", steps)))))

    assert run.status == RunStatus.FAILED
    assert run.failure_reason == "step 'a' failed with exit code 3"
    assert run.exit_code == 3
    assert run.steps.get(name="a").status == RunStatus.FAILED
    assert run.steps.get(name="b").status == RunStatus.STOPPED
    assert "before" in step_log(run, "a")
    assert not ModelVersion.objects.exists()


def test_a_step_that_fails_once_succeeds_on_its_retry(tmp_path):
    flaky = step(
        "flaky",
        "if [ -f $BEDROCK_ARTEFACT_DIR/tried ]; then echo ok > $BEDROCK_ARTEFACT_DIR/model; "
        "else touch $BEDROCK_ARTEFACT_DIR/tried; exit 1; fi",
        extra="retry { limit = 2 }",
    )
    run = wait_until_done(start(pipeline_for(repo_with(tmp_path, hcl("train", flaky)))))

    assert run.status == RunStatus.SUCCEEDED, run.failure_reason
    flaky_step = run.steps.get(name="flaky")
    assert flaky_step.attempts == 2
    assert "--- attempt 2 of 3 ---" in step_log(run, "flaky")


def test_a_step_that_keeps_failing_is_tried_one_more_time_than_its_retry_limit(tmp_path):
    always = step("always", "echo attempt; exit 2", extra="retry { limit = 1 }")
    run = wait_until_done(start(pipeline_for(repo_with(tmp_path, hcl("train", always)))))

    assert run.status == RunStatus.FAILED
    assert run.failure_reason == "step 'always' failed with exit code 2 after 2 attempts"
    assert step_log(run, "always").count("attempt\n") == 2


@pytest.mark.slow
def test_stopping_a_running_run_kills_its_step_and_ends_it_stopped(tmp_path):
    marker = "sleep 73.5"
    run = start(pipeline_for(repo_with(tmp_path, hcl("train", step("wait", marker)))))
    wait_for(
        lambda: run.steps.filter(status=RunStatus.RUNNING).exists(),
        what="the step to start",
    )
    wait_for(lambda: _processes(marker), what="the step's process")

    run_stop(actor=SYSTEM, run=run)

    run = wait_until_done(run, timeout=30)
    assert run.status == RunStatus.STOPPED
    assert run.steps.get(name="wait").status == RunStatus.STOPPED
    wait_for(lambda: not _processes(marker), timeout=10, what="the step's process to be gone")


@pytest.mark.slow
def test_a_run_past_its_maximum_run_time_fails_with_the_reason(tmp_path):
    marker = "sleep 74.5"
    pipeline = pipeline_for(
        repo_with(tmp_path, hcl("train", step("slow", marker))), max_run_time=timedelta(seconds=3)
    )
    run = wait_until_done(start(pipeline), timeout=60)

    assert run.status == RunStatus.FAILED
    assert run.failure_reason == "exceeded the maximum run time of 3s"
    assert not _processes(marker)


def test_a_run_whose_declared_secret_has_no_value_is_rejected_with_the_reason(tmp_path):
    repo = repo_with(tmp_path, hcl("train", step("s", "true"), secrets='"DB_PASSWORD", "API_KEY"'))
    pipeline = pipeline_for(repo)
    secret_set(actor=SYSTEM, pipeline=pipeline, name="API_KEY", value="present")

    run = start(pipeline)

    assert run.status == RunStatus.REJECTED
    assert "DB_PASSWORD" in run.failure_reason and "no value" in run.failure_reason
    assert "API_KEY" not in run.failure_reason
    assert run.commit_sha  # the commit was resolved before the check
    assert not run.steps.exists()


@pytest.mark.slow
def test_secret_values_are_masked_in_logs_and_reach_the_step_environment(tmp_path):
    value = "pa55-w0rd-for-the-db"
    steps = step(
        "s",
        "echo password is $DB_PASSWORD; test $DB_PASSWORD = pa55-w0rd-for-the-db "
        "&& echo match > $BEDROCK_ARTEFACT_DIR/ok",
    )
    pipeline = pipeline_for(repo_with(tmp_path, hcl("train", steps, secrets='"DB_PASSWORD"')))
    secret_set(actor=SYSTEM, pipeline=pipeline, name="DB_PASSWORD", value=value)

    run = wait_until_done(start(pipeline))

    assert run.status == RunStatus.SUCCEEDED, run.failure_reason
    log = step_log(run, "s")
    assert "password is ********" in log
    assert value not in log


@pytest.mark.slow
def test_a_step_gets_bedrock_variables_and_none_of_the_servers_own(tmp_path, monkeypatch):
    monkeypatch.setenv("DATABASE_URL_SHADOW", "postgres://server-only")
    steps = step(
        "env",
        "env | sort > $BEDROCK_ARTEFACT_DIR/env.txt",
        "python -c 'import sys; print(sys.prefix)' > $BEDROCK_ARTEFACT_DIR/prefix.txt",
    )
    pipeline = pipeline_for(repo_with(tmp_path, hcl("train", steps, parameters='ALPHA = "0.5"')))

    run = wait_until_done(start(pipeline, parameters={"ALPHA": "0.9"}))

    assert run.status == RunStatus.SUCCEEDED, run.failure_reason
    with default_storage.open(run.output_model_version.storage_key) as handle:
        archive = zipfile.ZipFile(handle)
        env = dict(
            line.split("=", 1)
            for line in archive.read("env.txt").decode().splitlines()
            if "=" in line
        )
        prefix = archive.read("prefix.txt").decode().strip()
    assert env["ALPHA"] == "0.9"
    assert env["BEDROCK_RUN_TRIGGER"] == "bedrock"
    assert env["BEDROCK_PIPELINE_ID"] == str(pipeline.pk)
    assert env["BEDROCK_PIPELINE_RUN_ID"] == "1"
    assert env["BEDROCK_RUN_STEP_NAME"] == "env"
    assert env["BEDROCK_API_TOKEN"].startswith("bdrkrun_")
    assert "BEDROCK_API_DOMAIN" in env
    assert "DATABASE_URL_SHADOW" not in env and "BEDROCK_SECRET_KEYS" not in env
    # A fresh virtual environment per step: installs never touch the host's Python.
    assert prefix != sys.prefix and prefix.endswith("/venv")


def test_an_empty_artefact_fails_a_training_run_and_publishes_nothing(tmp_path):
    run = wait_until_done(start(pipeline_for(repo_with(tmp_path, hcl("train", step("s", "true"))))))

    assert run.status == RunStatus.FAILED
    assert "left /artefact empty" in run.failure_reason
    assert not ModelVersion.objects.exists()


@pytest.mark.slow
def test_independent_steps_run_at_the_same_time(tmp_path):
    stamp = "date +%s.%N >> $BEDROCK_ARTEFACT_DIR/$BEDROCK_RUN_STEP_NAME"

    def record(other: str) -> str:
        # Each step waits (up to 60 s) to see the other one start: run one after the other,
        # the first would give up and fail, however slow the machine.
        seen = f"$BEDROCK_ARTEFACT_DIR/{other}"
        return f"{stamp}; for i in $(seq 600); do [ -e {seen} ] && break; sleep 0.1; done; " + (
            f"[ -e {seen} ] || exit 7; sleep 1; {stamp}"
        )

    steps = "\n".join(
        [
            step("left", record("right")),
            step("right", record("left")),
            step("join", "true", depends_on='"left", "right"'),
        ]
    )
    run = wait_until_done(start(pipeline_for(repo_with(tmp_path, hcl("train", steps)))))

    assert run.status == RunStatus.SUCCEEDED, run.failure_reason
    with default_storage.open(run.output_model_version.storage_key) as handle:
        archive = zipfile.ZipFile(handle)
        left = [float(t) for t in archive.read("left").split()]
        right = [float(t) for t in archive.read("right").split()]
    assert left[0] < right[1] and right[0] < left[1], "the two steps' windows overlap"
    join = run.steps.get(name="join")
    assert join.started_at >= max(
        run.steps.get(name="left").finished_at, run.steps.get(name="right").finished_at
    )


@pytest.mark.skipif(bubblewrap() is None, reason="bubblewrap is not installed")
@pytest.mark.slow
def test_with_bubblewrap_a_step_sees_its_checkout_at_app_and_the_artefact_at_slash_artefact(
    tmp_path,
):
    steps = step("s", "pwd > /artefact/pwd", "cat marker.txt > /artefact/marker")
    repo = repo_with(tmp_path, hcl("train", steps), **{"marker.txt": "from the commit"})

    run = wait_until_done(start(pipeline_for(repo)))

    assert run.status == RunStatus.SUCCEEDED, run.failure_reason
    with default_storage.open(run.output_model_version.storage_key) as handle:
        archive = zipfile.ZipFile(handle)
        assert archive.read("pwd").decode().strip() == "/app"
        assert archive.read("marker").decode().strip() == "from the commit"
    assert not __import__("os").path.exists("/artefact/marker")


def test_a_batch_scoring_run_with_another_projects_model_version_is_rejected(tmp_path):
    repo = make_repo(tmp_path / "churn", copy=EXAMPLE)
    theirs = pipeline_for(repo, name="theirs")
    version = ModelVersion.objects.create(
        model=theirs.model,
        number=1,
        run=Run.objects.create(pipeline=theirs, number=1, ref="main", status=RunStatus.SUCCEEDED),
        storage_key="models/x.zip",
        size=1,
        sha256="0" * 64,
        file_count=1,
    )
    ours = pipeline_for(
        repo, kind=PipelineKind.BATCH_SCORING, project=factories.project(), name="s"
    )

    run = start(ours, model_version_id=version.pk)

    assert run.status == RunStatus.REJECTED
    assert run.failure_reason == (
        f"model version {version.pk} does not belong to the project {ours.project}"
    )


def test_a_batch_scoring_run_without_a_model_version_is_rejected(tmp_path):
    repo = make_repo(tmp_path / "churn", copy=EXAMPLE)
    run = start(pipeline_for(repo, kind=PipelineKind.BATCH_SCORING))
    assert run.status == RunStatus.REJECTED
    assert run.failure_reason == "a batch scoring run needs a model version"


def test_an_unknown_ref_is_rejected_with_the_reason(tmp_path):
    repo = make_repo(tmp_path / "churn", copy=EXAMPLE)
    run = start(pipeline_for(repo), ref="no-such-branch")
    assert run.status == RunStatus.REJECTED
    assert "no-such-branch" in run.failure_reason


def test_an_invalid_config_is_rejected_naming_the_file_and_line(tmp_path):
    repo = repo_with(tmp_path, hcl("train", step("a", "true", depends_on='"ghost"')))
    run = start(pipeline_for(repo))
    assert run.status == RunStatus.REJECTED
    assert "bedrock.hcl:" in run.failure_reason and "ghost" in run.failure_reason


@pytest.mark.slow
def test_the_same_idempotency_key_returns_the_same_run(tmp_path):
    repo = repo_with(tmp_path, hcl("train", step("s", "echo x > $BEDROCK_ARTEFACT_DIR/x")))
    pipeline = pipeline_for(repo)
    first = start(pipeline, idempotency_key="nightly-2026-11-25")
    second = start(pipeline, idempotency_key="nightly-2026-11-25")
    assert first.pk == second.pk
    wait_until_done(first)
    assert Run.objects.filter(pipeline=pipeline).count() == 1


def _processes(fragment: str) -> bool:
    result = subprocess.run(["pgrep", "-f", fragment], capture_output=True)
    return result.returncode == 0


def test_a_batch_scoring_run_refuses_a_zip_slip_model_version_and_writes_nothing_outside(tmp_path):
    import hashlib
    import io

    from django.core.files.base import ContentFile

    repo = make_repo(tmp_path / "churn", copy=EXAMPLE)
    training = pipeline_for(repo, name="t")
    scoring = pipeline_for(repo, kind=PipelineKind.BATCH_SCORING, project=training.project)
    target = tmp_path / "escaped.txt"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("model.json", "{}")
        archive.writestr("../../../../../../../.." + str(target), "pwned")
    data = buffer.getvalue()
    key = default_storage.save("models/evil.zip", ContentFile(data))
    version = ModelVersion.objects.create(
        model=training.model,
        number=1,
        run=Run.objects.create(pipeline=training, number=1, ref="main", status="Succeeded"),
        storage_key=key,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        file_count=2,
    )

    run = wait_until_done(start(scoring, model_version_id=version.pk))

    assert run.status == RunStatus.FAILED
    assert ".." in run.failure_reason
    assert not target.exists()
    assert set(run.steps.values_list("status", flat=True)) == {RunStatus.STOPPED}


def test_a_too_long_ref_or_idempotency_key_is_refused_naming_the_field(tmp_path):
    from django.core.exceptions import ValidationError

    pipeline = pipeline_for(repo_with(tmp_path, hcl("train", step("s", "true"))))
    for field, kwargs in (
        ("ref", {"ref": "r" * 256}),
        ("idempotency_key", {"idempotency_key": "k" * 201}),
    ):
        with pytest.raises(ValidationError) as excinfo:
            start(pipeline, **kwargs)
        assert excinfo.value.message_dict == {
            field: [f"At most {255 if field == 'ref' else 200} characters."]
        }
    assert not Run.objects.exists()


@pytest.mark.slow
def test_a_rerun_uses_the_same_commit_and_parameters_after_the_branch_moved(tmp_path):
    from bedrock.runs.services import run_rerun
    from tests.repos import commit

    writes = step("s", "echo $ALPHA > $BEDROCK_ARTEFACT_DIR/alpha")
    repo = repo_with(tmp_path, hcl("train", writes, parameters='ALPHA = "1"'))
    pipeline = pipeline_for(repo)
    first = wait_until_done(start(pipeline, parameters={"ALPHA": "7"}))
    commit(repo, {"other.txt": "moved on"})

    again = wait_until_done(run_rerun(actor=SYSTEM, run=first))

    assert again.pk != first.pk and again.status == RunStatus.SUCCEEDED, again.failure_reason
    assert again.commit_sha == first.commit_sha
    assert again.parameters == first.parameters == {"ALPHA": "7"}


@pytest.mark.parametrize(
    ("command", "grace", "sentence"),
    [
        (
            "trap 'echo saved; exit 0' TERM; while :; do sleep 60 & wait; done",
            20,
            "ended on SIGTERM",
        ),
        ("trap '' TERM; sleep 60 & wait; sleep 60", 2, "killed with SIGKILL after the 2 s grace"),
    ],
)
@pytest.mark.slow
def test_a_local_step_gets_sigterm_before_sigkill_in_its_sandbox_too(
    tmp_path, command, grace, sentence
):
    import threading
    import time

    from bedrock.pipelines.spec import Resources
    from bedrock.runs.executors.base import StepContext
    from bedrock.runs.executors.local import LocalExecutor
    from bedrock.runs.plan import StepPlan

    for name in ("app", "artefact", "step"):
        (tmp_path / name).mkdir()
    context = StepContext(
        990_200, tmp_path / "app", tmp_path / "artefact", tmp_path / "step", {}, {}, 1
    )
    limits = Resources(
        cpu=None, memory=None, gpu=None, millicpu=None, memory_bytes=None, gpu_count=0
    )
    handle = LocalExecutor().start(StepPlan("s", "", command, {}, (), limits, (), 0), context)
    lines: list[bytes] = []
    pump = threading.Thread(target=lambda: lines.extend(handle.output()), daemon=True)
    pump.start()
    time.sleep(1.5)  # the trap is set

    said = handle.kill(grace=grace)

    pump.join(10)
    assert said.startswith(sentence)
    assert (b"saved\n" in lines) == (grace == 20)
    assert handle.wait(1) is not None
    assert not _processes("sleep 60") and not _processes("do sleep 60 & wait; done")


@pytest.mark.skipif(bubblewrap() is None, reason="bubblewrap is not installed")
@pytest.mark.slow
def test_a_sandboxed_step_installs_packages_into_its_venv_with_its_projects_pip_cache(tmp_path):
    from pathlib import Path

    from django.conf import settings

    steps = step(
        "s",
        "python make_wheel.py && pip install --no-index /tmp/tinypkg-1-py3-none-any.whl",
        "python -c 'import tinypkg; print(tinypkg.GREETING)' > /artefact/installed",
        "echo $PIP_CACHE_DIR $HOME $TMPDIR > /artefact/paths",
        "touch $PIP_CACHE_DIR/marker",
    )
    # A wheel is a zip: made in the step, as no build backend may be at hand offline.
    make_wheel = """import zipfile
info = "tinypkg-1.dist-info"
with zipfile.ZipFile("/tmp/tinypkg-1-py3-none-any.whl", "w") as wheel:
    wheel.writestr("tinypkg.py", "GREETING = 'installed'")
    wheel.writestr(info + "/METADATA", "Metadata-Version: 2.1\\nName: tinypkg\\nVersion: 1\\n")
    tags = "Wheel-Version: 1.0\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"
    wheel.writestr(info + "/WHEEL", tags)
    wheel.writestr(info + "/RECORD", "")
"""
    files = {"make_wheel.py": make_wheel}
    pipeline = pipeline_for(repo_with(tmp_path, hcl("train", steps), **files))

    run = wait_until_done(start(pipeline))

    assert run.status == RunStatus.SUCCEEDED, (run.failure_reason, step_log(run, "s"))
    with default_storage.open(run.output_model_version.storage_key) as handle:
        archive = zipfile.ZipFile(handle)
        assert archive.read("installed").decode().strip() == "installed"
        assert archive.read("paths").decode().split() == ["/cache/pip", "/home/step", "/tmp"]
    cache = Path(settings.BEDROCK_HOME) / "cache" / "pip" / f"project-{pipeline.project_id}"
    assert (cache / "marker").exists()


def _sandboxed(tmp_path, command: str, environment=None, secrets=None) -> tuple[int, str]:
    """Run ``command`` as a step of the local executor (no run), and its exit code and output."""
    from bedrock.pipelines.spec import Resources
    from bedrock.runs.executors.base import StepContext
    from bedrock.runs.executors.local import LocalExecutor
    from bedrock.runs.plan import StepPlan

    for name in ("app", "artefact", "step"):
        (tmp_path / name).mkdir(parents=True, exist_ok=True)
    context = StepContext(
        990_300,
        tmp_path / "app",
        tmp_path / "artefact",
        tmp_path / "step",
        dict(environment or {}),
        dict(secrets or {}),
        1,
    )
    limits = Resources(
        cpu=None, memory=None, gpu=None, millicpu=None, memory_bytes=None, gpu_count=0
    )
    handle = LocalExecutor().start(StepPlan("s", "", command, {}, (), limits, (), 0), context)
    output = b"".join(handle.output()).decode()
    return handle.wait(60), output


@pytest.mark.skipif(bubblewrap() is None, reason="bubblewrap is not installed")
def test_bedrocks_own_directories_under_a_bound_path_are_an_empty_tmpfs_after_the_binds(
    tmp_path, settings
):
    import os
    from pathlib import Path

    from bedrock.runs.executors.base import StepContext
    from bedrock.runs.executors.local import _sandbox_args

    prefix = os.path.realpath(sys.base_prefix)
    settings.BEDROCK_HOME = Path(prefix) / "lib"  # as a non-editable install's var would be
    context = StepContext(1, tmp_path / "a", tmp_path / "b", tmp_path / "c", {}, {}, 1)

    args = _sandbox_args(context)

    home = os.path.realpath(settings.BEDROCK_HOME)
    at = args.index(home)
    assert args[at - 1 : at + 3] == ["--tmpfs", home, "--remount-ro", home]
    # After the bind that holds it: bubblewrap mounts in order, a tmpfs first would be covered.
    bound = next(
        i for i, arg in enumerate(args) if arg == "--ro-bind" and home.startswith(args[i + 2])
    )
    assert bound < at - 1


@pytest.mark.skipif(bubblewrap() is None, reason="bubblewrap is not installed")
def test_a_bedrock_home_under_the_interpreters_prefix_is_empty_in_the_sandbox(tmp_path, settings):
    import os
    import shutil
    from pathlib import Path

    prefix = Path(os.path.realpath(sys.base_prefix))
    if not os.access(prefix, os.W_OK):
        pytest.skip(f"{prefix} is not writable here")
    home = prefix / f"bedrock-test-home-{os.getpid()}"
    home.mkdir()
    try:
        (home / "secret-keys").write_text("a-key-of-this-server\n")
        settings.BEDROCK_HOME = home

        code, output = _sandboxed(
            tmp_path,
            f"echo entries=$(ls -A {home} | wc -l); ls {prefix}/bin > /dev/null && echo ok",
        )
    finally:
        # The step's venv was made there too: its interpreter's template, under cache/.
        shutil.rmtree(home)
    assert code == 0, output
    assert "entries=0\nok\n" in output, output


@pytest.mark.skipif(bubblewrap() is None, reason="bubblewrap is not installed")
def test_a_sandboxed_java_step_finds_its_configuration_in_etc(tmp_path):
    import shutil

    if shutil.which("java") is None:
        pytest.skip("java is not installed here")

    # Reading the security properties loads java.security, which Debian links into /etc.
    code, output = _sandboxed(tmp_path, "java -XshowSettings:security:properties -version")

    assert code == 0, output
    assert "Error loading java.security" not in output
    assert "jdk.tls.disabledAlgorithms=" in output, output


@pytest.mark.skipif(bubblewrap() is None, reason="bubblewrap is not installed")
def test_the_sandbox_binds_the_hosts_certificates_but_not_its_tls_keys(tmp_path):
    probe = "[ -d /etc/ssl/certs ] && echo certs; [ -e /etc/ssl/private ] && echo private; true"
    code, output = _sandboxed(tmp_path, probe)

    assert code == 0, output
    assert "certs\n" in output and "private" not in output, output


@pytest.mark.slow
def test_a_parameter_or_secret_name_refused_since_the_run_was_accepted_never_reaches_a_step(
    tmp_path,
):
    from bedrock.runs.executors.base import StepContext, layered_environment, refused_names

    environment = {"LD_PRELOAD": "/app/evil.so", "EPOCHS": "3", "BEDROCK_RUN_ID": "7"}
    secrets = {"PYTHONPATH": "/app/evil", "TOKEN": "s3cret"}
    context = StepContext(1, tmp_path, tmp_path, tmp_path, environment, secrets, 1)

    layered = layered_environment(context, defaults={"LANG": "C.UTF-8"}, own={"HOME": "/h"})

    assert "LD_PRELOAD" not in layered and "PYTHONPATH" not in layered
    assert layered["EPOCHS"] == "3" and layered["TOKEN"] == "s3cret"
    assert layered["BEDROCK_RUN_ID"] == "7" and layered["HOME"] == "/h"
    assert refused_names(context) == ["LD_PRELOAD", "PYTHONPATH"]

    code, output = _sandboxed(tmp_path / "run", "echo preload=${LD_PRELOAD:-none}", environment)
    assert code == 0, output
    assert "preload=none" in output
    assert "parameter LD_PRELOAD" in output.splitlines()[0], output


def test_a_root_server_without_setpriv_has_no_sandbox_and_says_what_to_install(
    monkeypatch, settings
):
    from bedrock.runs.executors import local

    settings.BEDROCK_LOCAL_SANDBOX = True
    settings.BEDROCK_EXECUTOR = "local"
    settings.BEDROCK_ALLOW_UNSANDBOXED = False
    monkeypatch.setattr(local.shutil, "which", lambda name: "/usr/bin/bwrap")
    monkeypatch.setattr(local, "_as_root", lambda: True)
    monkeypatch.setattr(local, "_setpriv", lambda: None)

    assert local.sandbox_problem().startswith("setpriv (util-linux) is not installed")
    assert "install util-linux's setpriv or set" in local.unsandboxed_refusal(factories.user())
