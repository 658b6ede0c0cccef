"""spark-submit steps on the local executor: pyspark in the venv, Java, local mode, and the
cluster's settings left out."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bedrock.actors import SYSTEM
from bedrock.pipelines.spec import Resources
from bedrock.runs.executors import spark, spark_submit
from bedrock.runs.executors.base import ExecutorError
from bedrock.runs.models import RunStatus
from bedrock.runs.plan import StepPlan
from bedrock.runs.services import run_create
from tests.runflow import pipeline_for, repo_with, step_log, wait_until_done


def plan(command: str, resources: Resources | None = None) -> StepPlan:
    return StepPlan(
        name="train",
        image="basisai/workload-standard:v0.3.4",
        command=command,
        environment={},
        secret_names=(),
        resources=resources or Resources(),
        depends_on=(),
        retry_limit=0,
    )


# --------------------------------------------------------------------------------------------
# The arguments pyspark's spark-submit gets


def test_kubernetes_and_executor_settings_are_left_out_and_listed() -> None:
    args = [
        "--conf",
        "spark.executor.instances=2",
        "--conf=spark.kubernetes.container.image=asia.gcr.io/span-ai/pyspark:v1",
        "--conf",
        "spark.sql.parquet.compression.codec=gzip",
        "--executor-memory",
        "4g",
        "--master",
        "k8s://https://kubernetes",
        "--deploy-mode",
        "cluster",
        "--jars",
        "a.jar",
        "train.py",
    ]

    local, kept, ignored = spark_submit.rewrite(args, "local[2]", "1024m")

    assert local == ["--master", "local[2]", "--driver-memory", "1024m"]
    codec = "spark.sql.parquet.compression.codec=gzip"
    assert kept == ["--conf", codec, "--jars", "a.jar", "train.py"]
    assert ignored == [
        "spark.executor.instances",
        "spark.kubernetes.container.image",
        "--executor-memory",
        "--master",
        "--deploy-mode",
    ]


def test_the_applications_own_arguments_are_kept_even_when_they_look_like_options() -> None:
    args = ["--verbose", "train.py", "--master", "x", "--conf", "spark.executor.cores=9"]

    local, kept, ignored = spark_submit.rewrite(args, "local[1]", "")

    assert local == ["--master", "local[1]"]
    assert kept == args
    assert ignored == []


@pytest.mark.parametrize(
    "args",
    [["--conf", "spark.driver.memory=4g", "t.py"], ["--driver-memory", "4g", "t.py"]],
    ids=["conf", "option"],
)
def test_the_files_own_driver_memory_wins_over_the_steps(args: list[str]) -> None:
    local, kept, _ = spark_submit.rewrite(args, "local[1]", "1024m")

    assert local == ["--master", "local[1]"]
    assert kept == args


@pytest.mark.parametrize(
    ("cpu", "memory", "master", "driver"),
    [
        (None, None, "local[1]", ""),
        (500, 2**30, "local[1]", "1024m"),
        (1500, 3 * 2**30, "local[2]", "3072m"),
        (4000, 100 * 2**20, "local[4]", "512m"),
    ],
)
def test_the_steps_resources_size_local_mode(
    cpu: int | None, memory: int | None, master: str, driver: str
) -> None:
    resources = Resources(millicpu=cpu, memory_bytes=memory)

    assert spark.local_master(resources) == master
    assert spark.driver_memory(resources) == driver


@pytest.mark.parametrize(
    ("python", "requirement"),
    [
        ((3, 6), "pyspark>=3.2,<3.3"),
        ((3, 7), "pyspark>=3.3,<3.4"),
        ((3, 8), "pyspark>=3.5,<3.6"),
        ((3, 11), "pyspark>=3.5,<3.6"),
    ],
)
def test_the_venvs_python_chooses_the_pyspark(python: tuple[int, int], requirement: str) -> None:
    assert spark.pyspark_requirement(python) == requirement


def test_spark_before_3_3_gets_the_jdk_modules_java_17_closes(tmp_path: Path) -> None:
    (tmp_path / "version.py").write_text("__version__: str = '3.2.4'\n")
    old = spark_submit.pyspark_version([str(tmp_path)])

    assert old == (3, 2)
    assert spark_submit.java_options(old, "-Xss4m") == f"-Xss4m {spark_submit.JAVA_OPENS}"
    assert spark_submit.java_options((3, 5), "") == ""
    assert spark_submit.java_options(None, "") == ""
    assert "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED" in spark_submit.JAVA_OPENS


@pytest.mark.parametrize(
    ("command", "uses"),
    [
        ("{ spark-submit --conf a=b train.py; }", True),
        ("{ pip install x; } && { cd sub && spark-submit train.py; }", True),
        ("{ python train.py; }", False),
        ("{ ./my-spark-submit.sh; }", False),
        ("{ python spark-submit.py; }", False),
    ],
)
def test_only_a_command_running_spark_submit_gets_pyspark(command: str, uses: bool) -> None:
    assert spark.uses_spark_submit(plan(command)) is uses


def test_pyspark_is_installed_before_the_steps_own_install_lines(tmp_path: Path) -> None:
    (tmp_path / "pyvenv.cfg").write_text("home = /usr/bin\nversion = 3.7.16\n")
    step = plan("{ pip install -r requirements.txt; } && { spark-submit train.py; }")

    command = spark.command(step, tmp_path)

    install = "python -m pip install --quiet --progress-bar off 'pyspark>=3.3,<3.4';"
    assert command.index(install) < command.index("requirements.txt")
    assert command.endswith(step.command)
    assert spark.command(plan("{ python train.py; }"), tmp_path) == "{ python train.py; }"


def test_a_missing_java_fails_the_step_naming_debians_package(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))  # holds no bin/java
    monkeypatch.setattr(spark.shutil, "which", lambda *args, **kwargs: None)

    with pytest.raises(ExecutorError, match=r"apt-get install default-jre-headless"):
        spark.prepare(plan("{ spark-submit t.py; }"), tmp_path, str(tmp_path), None)
    # A step without spark-submit needs no Java, and its PATH is the executor's own.
    spark.prepare(plan("{ python t.py; }"), tmp_path, str(tmp_path), None)
    assert spark.variables(plan("{ python t.py; }"), str(tmp_path), None) == {}
    assert not (tmp_path / spark.SHIM_DIR).exists()


def test_a_java_the_sandbox_cannot_see_is_no_java(monkeypatch, tmp_path) -> None:
    (tmp_path / "bin").mkdir()
    java = tmp_path / "bin" / "java"
    java.write_text("#!/bin/sh\n")
    java.chmod(0o755)
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))
    monkeypatch.setattr(spark.shutil, "which", lambda *args, **kwargs: None)

    assert spark.find_java(None) == str(tmp_path)
    with pytest.raises(ExecutorError, match=r"that the sandbox sees"):
        spark.find_java(lambda path: path.startswith("/usr/"))


def test_the_shim_runs_pysparks_spark_submit_in_local_mode_and_says_what_it_left_out(
    tmp_path: Path,
) -> None:
    # A stand-in for pyspark's launcher beside the interpreter, as pip installs it in a venv.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    fake = venv / "bin" / "spark-submit"
    fake.write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
    fake.chmod(0o755)
    step = plan("{ spark-submit t.py; }", Resources(millicpu=2000, memory_bytes=2**31))
    spark.prepare(step, venv, str(venv), None)

    done = subprocess.run(
        [venv / spark.SHIM_DIR / "spark-submit", "--conf", "spark.executor.cores=2", "t.py", "x"],
        capture_output=True,
        text=True,
        check=True,
    )

    assert done.stdout.split() == ["--master", "local[2]", "--driver-memory", "2048m", "t.py", "x"]
    assert done.stderr == (
        "Bedrock: spark-submit runs in local mode on this machine: --master local[2] "
        "--driver-memory 2048m; ignored (cluster-only): spark.executor.cores\n"
    )


# --------------------------------------------------------------------------------------------
# A whole run


MAKE_DATA = """\
import os
from pyspark.sql import SparkSession

spark = SparkSession.builder.getOrCreate()
path = os.path.join(os.environ["BEDROCK_ARTEFACT_DIR"], "numbers.parquet")
spark.range(42).write.parquet(path)
print("wrote", path)
"""

TRAIN = """\
import os
from pyspark.sql import SparkSession

spark = SparkSession.builder.getOrCreate()
conf = spark.sparkContext.getConf()
print("master", spark.sparkContext.master)
print("image", conf.get("spark.kubernetes.container.image", "absent"))
print("codec", conf.get("spark.sql.parquet.compression.codec"))
path = os.path.join(os.environ["BEDROCK_ARTEFACT_DIR"], "numbers.parquet")
print("count", spark.read.parquet(path).count())
"""

SPARK_HCL = """\
version = "1.0"
train {
  step "data" {
    image = "basisai/workload-standard:v0.3.4"
    install = []
    script = [{spark-submit {
      script = "make_data.py"
      conf {
        spark.executor.instances = "2"
        spark.kubernetes.container.image = "basisai/workload-standard:v0.3.4"
      }
    }}]
    resources {
      cpu = "1"
      memory = "1G"
    }
  }
  step "train" {
    image = "basisai/workload-standard:v0.3.4"
    install = ["echo own install line"]
    script = [{sh = ["spark-submit --conf spark.sql.parquet.compression.codec=gzip """ + (
    '--conf spark.kubernetes.container.image=x train.py"]}]\n'
    """    depends_on = ["data"]
    resources {
      cpu = "2"
      memory = "1G"
    }
  }
}
"""
)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_spark_step_reads_a_local_parquet_file_in_local_mode(tmp_path: Path, step_api) -> None:
    repo = repo_with(tmp_path, SPARK_HCL, **{"make_data.py": MAKE_DATA, "train.py": TRAIN})

    run = wait_until_done(run_create(actor=SYSTEM, pipeline=pipeline_for(repo)), timeout=900)

    data = step_log(run, "data")
    assert run.status == RunStatus.SUCCEEDED, (run.failure_reason, data[-3000:])
    data, train = step_log(run, "data"), step_log(run, "train")
    assert "ignored (cluster-only): spark.executor.instances, spark.kubernetes" in data
    assert "--master local[1] --driver-memory 953m" in data
    assert train.index("installing pyspark") < train.index("own install line")
    assert "master local[2]\n" in train
    assert "image absent\n" in train and "codec gzip\n" in train
    assert "count 42\n" in train
