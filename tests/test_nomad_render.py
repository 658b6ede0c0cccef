"""Nomad job bodies: what `bedrock nomad render` prints and the executor registers.

Nomad drops unknown keys without a word, so every body is walked against the API field map of
Nomad v2.0.5 (tests/nomad_fields.py); the rest checks what the bodies mean.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
from datetime import timedelta
from io import StringIO
from pathlib import Path

import nomad
import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from bedrock.nomad.images import UnsuitableImage, image_problem
from bedrock.nomad.jobs import (
    FETCH_TASK,
    MAIN_TASK,
    MAX_RUN_DURATION_GRACE,
    SECOND,
    UPLOAD_TASK,
    item_reference,
    job_id_for,
    main_wrapper,
    render_step,
    variable_path_for,
)
from bedrock.pipelines import spec
from bedrock.runs.plan import build_plan
from tests.fakenomad import FakeNomad
from tests.nomad_fields import walk

ROOT = Path(__file__).resolve().parents[1]

GPU_AND_MULTI_STEP = """
version = "1.0"
train {
  step prepare {
    image = "python:3.11"
    install = ["pip install -r requirements.txt"]
    script = [{sh = ["python prepare.py"]}]
    resources { cpu = "0.5"  memory = "500M" }
  }
  step fit {
    image = "nvidia/cuda:12.4.1-runtime-ubuntu22.04"
    script = [{sh = ["python fit.py --epochs $EPOCHS"]}]
    resources { cpu = "2"  memory = "2Gi"  gpu = "2" }
    depends_on = ["prepare"]
  }
  step report {
    image = "python:3.11"
    script = [{sh = ["python report.py"]}]
    resources { cpu = "1"  memory = "1G" }
    depends_on = ["fit"]
    retry { limit = 2 }
  }
  parameters { EPOCHS = "20" }
  secrets = ["WANDB_API_KEY", "DB_PASSWORD"]
}
"""


def render(text: str, *args: str) -> list[dict]:
    path = Path(settings.BEDROCK_HOME) / "render-bedrock.hcl"
    path.write_text(text)
    out = StringIO()
    call_command("nomad", "render", str(path), *args, stdout=out)
    return json.loads(out.getvalue())


def tasks_of(body: dict) -> dict[str, dict]:
    (group,) = body["Job"]["TaskGroups"]
    return {task["Name"]: task for task in group["Tasks"]}


def corpus_bodies(shared_dir: Path):
    for path in sorted((shared_dir / "bedrock-hcl-corpus").glob("*.hcl")):
        loaded = spec.load(path.read_text(encoding="utf-8-sig"), filename=path.name)
        for name in ("train", "batch_score"):
            if loaded.stanza(name):
                out = StringIO()
                call_command("nomad", "render", str(path), "--stanza", name, stdout=out)
                for body in json.loads(out.getvalue()):
                    yield f"{path.name}:{name}:{body['Job']['ID']}", body


def test_every_corpus_body_walks_clean_against_nomad_2_0_5(shared_dir):
    seen = 0
    for label, body in corpus_bodies(shared_dir):
        assert walk(body, version="v2.0.5") == [], label
        seen += 1
    assert seen >= 40  # 34 files, training and batch scoring, some with several steps


def test_on_nomad_1_10_only_max_run_duration_would_be_dropped(shared_dir):
    findings = {
        finding
        for _, body in corpus_bodies(shared_dir)
        for finding in walk(body, version="v1.10.5")
    }
    assert findings == {"Job.TaskGroups[0].MaxRunDuration: unknown key (Nomad drops it)"}


def test_gpu_multi_step_and_spark_bodies_walk_clean(shared_dir):
    bodies = render(GPU_AND_MULTI_STEP)
    spark = (shared_dir / "bedrock-hcl-corpus" / "02-churn-prediction-bedrock-hcl.hcl").read_text()
    bodies += render(spark, "--stanza", "train")
    assert any("spark-submit" in json.dumps(body) for body in bodies)
    for body in bodies:
        assert walk(body) == [], body["Job"]["ID"]


def test_one_job_per_step_with_the_run_in_its_id_and_meta():
    bodies = render(GPU_AND_MULTI_STEP, "--run-id", "42")
    assert [body["Job"]["ID"] for body in bodies] == [
        "bedrock-42-prepare-1",
        "bedrock-42-fit-1",
        "bedrock-42-report-1",
    ]
    for body in bodies:
        job = body["Job"]
        assert body["EnforceIndex"] is True and body["JobModifyIndex"] == 0  # create-only
        assert job["Type"] == "batch" and job["Name"] == job["ID"]
        assert job["Meta"]["bedrock_run_id"] == "42"
        assert job["Meta"]["bedrock_step"] == job["ID"].split("-")[2]
        assert job["TaskGroups"][0]["Meta"] == job["Meta"]


def test_a_retry_is_a_job_of_its_own_naming_its_attempt_and_the_runs_key():
    stanza = spec.load(GPU_AND_MULTI_STEP).stanza("train")
    plan = build_plan(
        stanza,
        run_id=7,
        run_number=3,
        pipeline_id=2,
        project_id=1,
        parameters={"EPOCHS": "5"},
        input_model_version_id=None,
        time_limit=timedelta(hours=2),
        publishes_model=True,
        run_key="0123456789abcdef",
    )
    body = render_step(plan, plan.steps[1], attempt=2, time_left=timedelta(hours=1)).body
    job = body["Job"]
    assert job["ID"] == "bedrock-7-fit-2"
    assert job["Meta"]["bedrock_attempt"] == "2"
    assert job["Meta"]["bedrock_run_key"] == "0123456789abcdef"  # adoption checks it too
    for task in (FETCH_TASK, UPLOAD_TASK):
        assert tasks_of(body)[task]["Env"]["BEDROCK_RUN_STEP_ATTEMPT"] == "2"


def test_resources_become_mhz_mib_and_gpu_devices_on_that_step_only():
    prepare, fit, report = (tasks_of(body)[MAIN_TASK] for body in render(GPU_AND_MULTI_STEP))
    assert prepare["Resources"] == {"CPU": 500, "MemoryMB": 477}  # 500M = 500,000,000 bytes
    assert fit["Resources"] == {
        "CPU": 2000,
        "MemoryMB": 2048,
        "Devices": [{"Name": "nvidia/gpu", "Count": 2}],
    }
    assert report["Resources"] == {"CPU": 1000, "MemoryMB": 954}  # 1G
    for body in render(GPU_AND_MULTI_STEP):
        hooks = [tasks_of(body)[FETCH_TASK], tasks_of(body)[UPLOAD_TASK]]
        assert all("Devices" not in hook["Resources"] for hook in hooks)


def test_main_task_runs_bash_c_in_app_under_timeout_at_the_run_limit():
    (body, *_) = render(GPU_AND_MULTI_STEP)
    main = tasks_of(body)[MAIN_TASK]
    config = main["Config"]
    assert main["Driver"] == "docker" and config["image"] == "python:3.11"
    assert config["entrypoint"] == ["bash"]
    assert config["args"][0] == "-c"
    assert config["args"][3] == "{ pip install -r requirements.txt; } && { python prepare.py; }"
    limit = int(timedelta(hours=72).total_seconds())
    assert f'timeout -s TERM -k 60 {limit} bash -c "$1"' in config["args"][1]
    assert config["work_dir"] == "/app"
    assert config["volumes"] == ["../alloc/data/app:/app", "../alloc/data/artefact:/artefact"]
    group = body["Job"]["TaskGroups"][0]
    expected = (timedelta(seconds=limit) + MAX_RUN_DURATION_GRACE).total_seconds()
    assert group["MaxRunDuration"] == int(expected) * SECOND
    assert main["KillTimeout"] == 30 * SECOND


def test_the_wrapper_runs_the_command_and_records_its_exit_code(tmp_path):
    """The main task's program, run here by bash with /alloc/data and /secrets swapped out."""
    (body, *_) = render(GPU_AND_MULTI_STEP)
    program = tasks_of(body)[MAIN_TASK]["Config"]["args"][1]
    secrets = tmp_path / "secrets" / "bedrock"
    secrets.mkdir(parents=True)
    for name in ("BEDROCK_API_TOKEN", "WANDB_API_KEY"):
        (secrets / name).write_text("value")
    (secrets / "DB_PASSWORD").write_text("line one\nline two")
    program = program.replace("/secrets/", f"{tmp_path}/secrets/").replace(
        "/alloc/data", str(tmp_path)
    )
    command = 'printf "%s|" "$DB_PASSWORD"; exit 3'
    result = subprocess.run(
        ["bash", "-c", program, "bedrock-step", command], capture_output=True, text=True
    )
    assert result.returncode == 3
    assert result.stdout == "line one\nline two|"
    assert (tmp_path / "main.exit").read_text().strip() == "3"


def wrapper_for_here(
    tmp_path: Path, limit_seconds: int, *, grace: int = 1, names: tuple[str, ...] = ()
) -> str:
    """The main task's program with /alloc/data and /secrets swapped for tmp_path, and the
    grace between TERM and KILL cut to ``grace`` seconds (a command that handles TERM needs a
    few on a loaded machine)."""
    program = main_wrapper(limit_seconds, names)
    assert "-k 60 " in program
    return (
        program.replace("-k 60 ", f"-k {grace} ")
        .replace("/secrets/", f"{tmp_path}/secrets/")
        .replace("/alloc/data", str(tmp_path))
    )


def test_a_stop_signal_reaches_the_steps_command_through_the_wrapper(tmp_path):
    """bash is PID 1 in the container and would ignore Nomad's SIGTERM: the trap passes it on."""
    program = wrapper_for_here(tmp_path, 3600, grace=10)
    # One process, as a training script is: a bash command's own children would get the group's
    # TERM too, and bash may end on a child's 143 before it runs its trap.
    saver = (
        "import signal, sys, time\n"
        "def save(*_):\n"
        f"    open({str(tmp_path / 'saved')!r}, 'w').write('saved\\n')\n"
        "    sys.exit(143)\n"
        "signal.signal(signal.SIGTERM, save)\n"
        "print('started', flush=True)\n"
        "time.sleep(60)\n"
    )
    command = f"{shlex.quote(sys.executable)} -c {shlex.quote(saver)}"
    wrapper = subprocess.Popen(
        ["bash", "-c", program, "bedrock-step", command], stdout=subprocess.PIPE, text=True
    )
    assert wrapper.stdout.readline() == "started\n"
    wrapper.send_signal(signal.SIGTERM)
    assert wrapper.wait(timeout=20) == 143
    assert (tmp_path / "saved").read_text() == "saved\n"  # the command's own handler ran
    assert (tmp_path / "main.exit").read_text().strip() == "143"


def test_a_stop_signal_that_comes_before_the_command_has_started_is_passed_on_to_it(tmp_path):
    """Nomad may stop the task while the wrapper still reads its secrets: the command then gets
    the signal as soon as it starts, instead of running until the kill timeout."""
    program = wrapper_for_here(tmp_path, 3600, grace=10, names=("DB_PASSWORD",))
    secrets = tmp_path / "secrets" / "bedrock"
    secrets.mkdir(parents=True)
    (secrets / "DB_PASSWORD").write_text("value")
    # A cat that holds the wrapper in its secrets loop until told to go on.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    go = tmp_path / "go"
    (bin_dir / "cat").write_text(
        f'#!/bin/sh\nwhile [ ! -e {go} ]; do sleep 0.05; done\nexec /bin/cat "$@"\n'
    )
    (bin_dir / "cat").chmod(0o755)
    environment = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    wrapper = subprocess.Popen(["bash", "-c", program, "bedrock-step", "sleep 60"], env=environment)
    try:
        _wait_for_child(wrapper.pid, "cat")
        wrapper.send_signal(signal.SIGTERM)
        go.touch()
        assert wrapper.wait(timeout=20) == 143
    finally:
        wrapper.kill()
    assert (tmp_path / "main.exit").read_text().strip() == "143"


def _wait_for_child(pid: int, name: str) -> None:
    import time

    for _ in range(200):
        children = subprocess.run(["pgrep", "-P", str(pid), "-x", name], capture_output=True)
        if children.returncode == 0:
            return
        time.sleep(0.05)
    raise AssertionError(f"process {pid} never started {name}")


@pytest.mark.parametrize(
    "command",
    ["sleep 30", "trap '' TERM; sleep 30"],
    ids=["ends on TERM", "ignores TERM and is killed"],
)
def test_a_command_past_the_time_limit_ends_with_124(tmp_path, command):
    result = subprocess.run(
        ["bash", "-c", wrapper_for_here(tmp_path, 1), "bedrock-step", command], timeout=20
    )
    assert result.returncode == 124
    assert (tmp_path / "main.exit").read_text().strip() == "124"


def test_hooks_fetch_before_and_upload_after_with_the_run_token_from_a_variable():
    prepare, fit, _ = render(GPU_AND_MULTI_STEP)
    tasks = tasks_of(fit)
    assert tasks[FETCH_TASK]["Lifecycle"] == {"Hook": "prestart", "Sidecar": False}
    assert tasks[UPLOAD_TASK]["Lifecycle"] == {"Hook": "poststop", "Sidecar": False}
    assert tasks[FETCH_TASK]["Config"]["args"][-3:] == ["bedrock", "hook", "fetch"]
    assert tasks[UPLOAD_TASK]["Config"]["args"][-3:] == ["bedrock", "hook", "upload"]
    assert tasks[FETCH_TASK]["Env"]["BEDROCK_HOOK_DEPENDENCIES"] == "prepare"
    assert tasks_of(prepare)[FETCH_TASK]["Env"]["BEDROCK_HOOK_DEPENDENCIES"] == ""
    (template,) = tasks[FETCH_TASK]["Templates"]
    assert 'nomadVar "nomad/jobs/bedrock-1-fit-1"' in template["EmbeddedTmpl"]
    assert template["Envvars"] is True and template["ChangeMode"] == "noop"


def test_secrets_reach_the_main_task_by_name_through_templates_never_env():
    for body in render(GPU_AND_MULTI_STEP):
        main = tasks_of(body)[MAIN_TASK]
        names = [template["DestPath"] for template in main["Templates"]]
        assert names == [
            "secrets/bedrock/BEDROCK_API_TOKEN",
            "secrets/bedrock/WANDB_API_KEY",
            "secrets/bedrock/DB_PASSWORD",
        ]
        for task in tasks_of(body).values():
            assert not {"WANDB_API_KEY", "DB_PASSWORD", "BEDROCK_API_TOKEN"} & set(task["Env"])
        assert main["Env"]["EPOCHS"] == "20"


def test_batch_scoring_fetches_the_model_version_in_its_first_steps_only(shared_dir):
    text = (
        shared_dir / "bedrock-hcl-corpus" / "27-credit-scoring-bedrock-multi-hcl.hcl"
    ).read_text()
    loaded = spec.load(text)
    stanza = next(loaded.stanza(n) for n in ("batch_score", "train") if loaded.stanza(n))
    plan = build_plan(
        stanza,
        run_id=5,
        run_number=1,
        pipeline_id=1,
        project_id=1,
        parameters={},
        input_model_version_id=9,
        time_limit=timedelta(hours=1),
        publishes_model=False,
    )
    for step in plan.steps:
        env = tasks_of(render_step(plan, step, attempt=1, time_left=timedelta(hours=1)).body)[
            FETCH_TASK
        ]["Env"]
        if step.depends_on:
            assert "BEDROCK_MODEL_VERSION_ID" not in env
        else:
            assert env["BEDROCK_MODEL_VERSION_ID"] == "9"


def test_restart_and_reschedule_never_run_a_training_twice():
    (body, *_) = render(GPU_AND_MULTI_STEP)
    group = body["Job"]["TaskGroups"][0]
    assert group["RestartPolicy"]["Attempts"] == 0 and group["RestartPolicy"]["Mode"] == "fail"
    reschedule = group["ReschedulePolicy"]
    assert reschedule["Attempts"] == 0 and reschedule["Unlimited"] is False
    assert group["Disconnect"] == {"Replace": False}


def test_max_run_duration_can_be_left_out_for_older_clusters(settings):
    settings.BEDROCK_NOMAD_MAX_RUN_DURATION = False
    (body, *_) = render(GPU_AND_MULTI_STEP)
    assert "MaxRunDuration" not in body["Job"]["TaskGroups"][0]
    assert walk(body, version="v1.10.5") == []


def test_long_step_names_give_short_unique_job_ids():
    first = job_id_for(1, "a" * 60, 1)
    second = job_id_for(1, "a" * 59 + "b", 1)
    assert first != second and len(first) < 60
    assert job_id_for(12, "train_x-2", 3) == "bedrock-12-train_x-2-3"


def test_job_ids_and_variable_paths_keep_to_what_nomad_accepts(settings):
    """Nomad refuses a variable path outside [a-zA-Z0-9-_~/]{1,128}: a step named train.v2
    could never start. A name that had to change carries a hash, so no two steps share a job."""
    dotted, dashed = job_id_for(12, "train.v2", 1), job_id_for(12, "train-v2", 1)
    assert dashed == "bedrock-12-train-v2-1"
    assert dotted.startswith("bedrock-12-train-v2-") and dotted != dashed
    settings.BEDROCK_NOMAD_JOB_PREFIX = "p" * 40  # the longest bedrock.E026 allows
    for name in ("train.v2", "a" * 512, "a.b" * 170, "x"):
        job_id = job_id_for(2**63 - 1, name, 11)
        assert re.fullmatch(r"[a-zA-Z0-9\-_~/]{1,128}", variable_path_for(job_id)), job_id


def test_render_names_a_missing_stanza_and_bad_params():
    text = GPU_AND_MULTI_STEP
    with pytest.raises(CommandError, match="no batch_score stanza"):
        render(text, "--stanza", "batch_score")
    with pytest.raises(CommandError, match="NAME=VALUE"):
        render(text, "--param", "EPOCHS")
    with pytest.raises(CommandError, match="reserved"):
        render(text, "--param", "BEDROCK_X=1")


def test_render_reports_an_invalid_file_with_line_and_exits_1(tmp_path):
    path = tmp_path / "bedrock.hcl"
    path.write_text('version = "1.0"\ntrain {\n  step a {\n    image = 3\n  }\n}\n')
    result = subprocess.run(
        [sys.executable, "manage.py", "nomad", "render", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "BEDROCK_HOME": str(tmp_path)},
    )
    assert result.returncode == 1
    assert f"{path}:" in result.stderr and "train.step" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("env", "check_id", "fragment"),
    [
        ({"NOMAD_ADDR": "nomad.internal:4646"}, "bedrock.E020", "is not an http"),
        (
            {"NOMAD_ADDR": "https://n:4646", "NOMAD_CACERT": "/nonexistent/ca.pem"},
            "bedrock.E021",
            "NOMAD_CACERT='/nonexistent/ca.pem' is not a readable file",
        ),
        (
            {"NOMAD_ADDR": "https://n:4646", "NOMAD_CLIENT_CERT": "/etc/hostname"},
            "bedrock.E021",
            "go together",
        ),
        (
            {"NOMAD_ADDR": "https://n:4646", "BEDROCK_NOMAD_HOOK_IMAGE": ""},
            "bedrock.E022",
            "BEDROCK_NOMAD_HOOK_IMAGE is empty",
        ),
    ],
)
@pytest.mark.slow
def test_nomad_misconfiguration_fails_the_check(tmp_path, env, check_id, fragment):
    from tests.test_checks import bedrock_check

    result = bedrock_check(tmp_path, BEDROCK_EXECUTOR="nomad", **env)
    assert result.returncode != 0
    assert check_id in result.stderr and fragment in result.stderr


@pytest.mark.slow
def test_a_loopback_api_domain_warns_that_jobs_cannot_reach_it(tmp_path):
    from tests.test_checks import bedrock_check

    result = bedrock_check(tmp_path, BEDROCK_EXECUTOR="nomad", NOMAD_ADDR="https://n:4646")
    assert result.returncode == 0
    assert "bedrock.W020" in result.stderr + result.stdout
    result = bedrock_check(
        tmp_path,
        BEDROCK_EXECUTOR="nomad",
        NOMAD_ADDR="https://n:4646",
        BEDROCK_API_DOMAIN="https://bedrock.internal",
    )
    assert result.returncode == 0 and "W020" not in result.stderr + result.stdout


def train_plan(text: str = GPU_AND_MULTI_STEP):
    return build_plan(
        spec.load(text).stanza("train"),
        run_id=1,
        run_number=1,
        pipeline_id=1,
        project_id=1,
        parameters={},
        input_model_version_id=None,
        time_limit=timedelta(hours=1),
        publishes_model=True,
    )


def test_a_secret_named_as_bedrocks_own_variables_gets_no_file_to_replace_them():
    from dataclasses import replace

    plan = train_plan()
    step = replace(
        plan.steps[0], secret_names=("BEDROCK_API_TOKEN", "BEDROCK_PIPELINE_RUN_ID", "DB_PASSWORD")
    )

    job = render_step(plan, step, attempt=1, time_left=timedelta(hours=1))

    (group,) = job.body["Job"]["TaskGroups"]
    main = next(task for task in group["Tasks"] if task["Name"] == MAIN_TASK)
    assert [template["DestPath"] for template in main["Templates"]] == [
        "secrets/bedrock/BEDROCK_API_TOKEN",
        "secrets/bedrock/DB_PASSWORD",
    ]
    assert main["Env"]["BEDROCK_PIPELINE_RUN_ID"] == "1"


# ---------------------------------------------------------------- bodies the fake Nomad plays


def first_step_job(text: str = GPU_AND_MULTI_STEP):
    plan = train_plan(text)
    return render_step(plan, plan.steps[0], attempt=1, time_left=timedelta(hours=1))


def played(fake: FakeNomad, job) -> dict:
    """Register the job on the fake and play it to its end; its one allocation."""
    api = nomad.Nomad(address=fake.address, namespace=settings.NOMAD_NAMESPACE)
    api.job.register_job(job.job_id, job.body)
    fake.settle(job.job_id, namespace=settings.NOMAD_NAMESPACE)
    (allocation,) = fake.allocations(job.job_id, namespace=settings.NOMAD_NAMESPACE)
    return allocation


def test_a_secret_missing_from_the_variable_fails_the_task_instead_of_rendering_empty():
    """error_on_missing_key has no effect with `index`: the step would run without the secret."""
    job = first_step_job()
    with FakeNomad() as fake:
        fake.put_variable(
            job.variable_path,
            {"BEDROCK_API_TOKEN": "bdrkrun_x", "WANDB_API_KEY": "w"},
            namespace=settings.NOMAD_NAMESPACE,
        )
        allocation = played(fake, job)
    main = allocation["TaskStates"][MAIN_TASK]
    assert main["Failed"] is True and main["StartedAt"] in (None, "0001-01-01T00:00:00Z")
    messages = [event["DisplayMessage"] for event in main["Events"]]
    assert any('map has no entry for key "DB_PASSWORD"' in m for m in messages), messages


def test_templates_read_secrets_by_field_except_names_of_the_items_methods():
    main = tasks_of(first_step_job().body)[MAIN_TASK]
    assert "{{ .DB_PASSWORD }}" in main["Templates"][-1]["EmbeddedTmpl"]
    assert item_reference("Keys") == 'index . "Keys"'  # `.Keys` would call NomadVarItems.Keys


def test_a_secret_file_the_steps_user_cannot_read_fails_the_step_naming_it():
    """Not an empty value: the step would run without its token or secrets."""
    job = first_step_job()
    main = tasks_of(job.body)[MAIN_TASK]
    for template in main["Templates"]:
        assert template["Perms"] == "0444" and "Uid" not in template
        if template["DestPath"].endswith("/DB_PASSWORD"):
            template["Perms"] = "0400"  # as a root-only file is to the image's USER 1000
    with FakeNomad() as fake:
        fake.image_users = {main["Config"]["image"]: "1000"}
        fake.put_variable(
            job.variable_path,
            {"BEDROCK_API_TOKEN": "t", "WANDB_API_KEY": "w", "DB_PASSWORD": "p"},
            namespace=settings.NOMAD_NAMESPACE,
        )
        body = {**job.body["Job"], "Namespace": settings.NOMAD_NAMESPACE}
        readable = {f.path: f.readable for f in fake.task_files(body, MAIN_TASK)}
        played = fake.run_main(body, "echo the command ran")
    assert readable["secrets/bedrock/DB_PASSWORD"] is False
    assert readable["secrets/bedrock/WANDB_API_KEY"] is True
    assert played.kind == "failure" and played.exit_code == 78
    assert "cannot read the secret DB_PASSWORD" in played.stderr
    assert "the command ran" not in played.stdout


@pytest.mark.parametrize(
    ("image", "known"),
    [
        ("alpine:3.20", "Alpine"),
        ("busybox", "BusyBox"),
        ("docker.io/library/python:3.11-alpine3.19", "Alpine"),
        ("mirror.internal:5000/alpine@sha256:" + "a" * 64, "Alpine"),
        ("gcr.io/distroless/python3-debian12", "distroless"),
        ("python:3.11-slim", ""),
        ("nvidia/cuda:12.4.1-runtime-ubuntu22.04", ""),
        ("registry.example.com:5000/ml/tools", ""),
        ("acme/trainer:alpine-but-with-bash", ""),  # not an official image: not known
    ],
)
def test_images_known_to_lack_bash_or_gnu_timeout_are_named(image, known):
    problem = image_problem(image)
    assert (known in problem) if known else problem == "", problem


def test_a_step_in_an_alpine_image_is_refused_at_render_time_saying_why():
    text = GPU_AND_MULTI_STEP.replace('image = "python:3.11"', 'image = "python:3.11-alpine"', 1)
    with pytest.raises(CommandError, match=r"step 'prepare': the image python:3.11-alpine is "):
        render(text)
    with pytest.raises(UnsuitableImage, match="without bash and GNU timeout"):
        first_step_job(text)
