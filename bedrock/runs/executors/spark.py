"""spark-submit on the local executor: pyspark in the step's venv, Java, and local mode.

Bedrock's images supplied Spark (``basisai/workload-standard``, ``span-ai/pyspark``) and a
Kubernetes cluster ran it. On the local executor a step whose commands use ``spark-submit`` gets
pyspark installed in its venv before its own install lines, and a ``spark-submit`` first on
PATH (:mod:`bedrock.runs.executors.spark_submit`) that runs pyspark's with ``--master local[N]``
and the driver sized by the step's resources, leaving out the cluster's settings. The Docker and
Nomad executors run the image's own Spark, untouched.
"""

from __future__ import annotations

import math
import os
import re
import shlex
import shutil
from collections.abc import Callable
from pathlib import Path

from bedrock.pipelines.spec import Resources
from bedrock.runs.executors import spark_submit
from bedrock.runs.executors.base import ExecutorError
from bedrock.runs.plan import StepPlan

# A command word, not part of another name or path (spark-submit.sh, my-spark-submit).
_SPARK_SUBMIT = re.compile(r"(?<![\w./-])spark-submit(?![\w.-])")
# The newest pyspark line that runs on each Python (their releases' requires-python), oldest
# Python first; Spark before 3.3 does not run on Java 17 without extra JVM options.
_PYSPARK_FOR_PYTHON = (
    ((3, 6), "pyspark>=3.2,<3.3"),
    ((3, 7), "pyspark>=3.3,<3.4"),
    ((3, 8), "pyspark>=3.5,<3.6"),
)
# Spark refuses to start a driver of less than 450 MiB ("System memory … must be at least").
MIN_DRIVER_MEBIBYTES = 512
SHIM_DIR = "spark-bin"  # inside the venv: pip never writes there, whatever the step installs
JAVA_PACKAGE = "default-jre-headless"
_SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"


def uses_spark_submit(step: StepPlan) -> bool:
    return bool(_SPARK_SUBMIT.search(step.command))


def pyspark_requirement(python: tuple[int, int]) -> str:
    """The pyspark a venv of this Python version gets."""
    chosen = _PYSPARK_FOR_PYTHON[0][1]
    for version, requirement in _PYSPARK_FOR_PYTHON:
        if python >= version:
            chosen = requirement
    return chosen


def venv_python(venv: Path) -> tuple[int, int]:
    """The Python version a venv was made from, from its ``pyvenv.cfg``."""
    for line in (venv / "pyvenv.cfg").read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() in ("version", "version_info"):
            major, minor = value.strip().split(".")[:2]
            return int(major), int(minor)
    raise ExecutorError(f"{venv / 'pyvenv.cfg'} does not say which Python the venv is made from")


def local_master(resources: Resources) -> str:
    """``local[N]``, N the step's cpu rounded up; one core when the step declares none."""
    cores = math.ceil(resources.millicpu / 1000) if resources.millicpu else 1
    return f"local[{max(1, cores)}]"


def driver_memory(resources: Resources) -> str:
    """The driver's heap: the step's memory, or Spark's own default when it declares none."""
    if not resources.memory_bytes:
        return ""
    return f"{max(MIN_DRIVER_MEBIBYTES, resources.memory_bytes // 2**20)}m"


def find_java(visible: Callable[[str], bool] | None = None) -> str:
    """The ``JAVA_HOME`` a step uses: the server's, when its ``bin/java`` runs and the step can
    see it (``visible``: the sandbox binds only the system directories), else the one of the
    ``java`` on the step's PATH. ExecutorError, naming Debian's package, when there is none."""
    candidates = []
    home = os.environ.get("JAVA_HOME", "")
    if home and os.access(Path(home) / "bin" / "java", os.X_OK):
        candidates.append(os.path.realpath(home))
    on_path = shutil.which("java", path=_SYSTEM_PATH)
    if on_path:
        candidates.append(os.path.dirname(os.path.dirname(os.path.realpath(on_path))))
    for candidate in candidates:
        if visible is None or visible(candidate):
            return candidate
    raise ExecutorError(
        "spark-submit needs a Java runtime and this machine has none on PATH or in JAVA_HOME"
        + (" that the sandbox sees (under /usr)" if candidates else "")
        + f": install Debian's (apt-get install {JAVA_PACKAGE}), or run the pipeline on the "
        "Docker executor, whose image supplies Spark"
    )


def prepare(step: StepPlan, venv: Path, inside: str, visible: Callable[[str], bool] | None) -> None:
    """Check Java and write the ``spark-submit`` shim into the venv, for a spark-submit step.

    ``venv`` is the venv's path here, ``inside`` the one the step sees (``/venv`` in the
    sandbox); ``visible`` tells whether the step sees a host path, None when it sees them all.
    """
    if not uses_spark_submit(step):
        return
    find_java(visible)
    shim_dir = venv / SHIM_DIR
    shim_dir.mkdir(exist_ok=True)
    source = Path(spark_submit.__file__).read_text()
    call = (
        f"main(master={local_master(step.resources)!r}, "
        f"driver_memory={driver_memory(step.resources)!r})"
    )
    (shim_dir / "spark_submit.py").write_text(
        f"{source}\n\nif __name__ == '__main__':\n    {call}\n"
    )
    # A shell script, not a #! line naming the venv's Python: the kernel cuts #! lines short,
    # and a venv's path holds the step's name, up to 512 characters.
    python = shlex.quote(f"{inside}/bin/python")
    script = shlex.quote(f"{inside}/{SHIM_DIR}/spark_submit.py")
    shim = shim_dir / "spark-submit"
    shim.write_text(f'#!/bin/sh\nexec {python} {script} "$@"\n')
    shim.chmod(0o755)


def variables(step: StepPlan, inside: str, visible: Callable[[str], bool] | None) -> dict[str, str]:
    """PATH with the shim first, and JAVA_HOME, for a spark-submit step; nothing otherwise."""
    if not uses_spark_submit(step):
        return {}
    path = f"{inside}/{SHIM_DIR}:{inside}/bin:{_SYSTEM_PATH}"
    return {"PATH": path, "JAVA_HOME": find_java(visible)}


def command(step: StepPlan, venv: Path) -> str:
    """The step's command, after an install of pyspark when it uses spark-submit."""
    if not uses_spark_submit(step):
        return step.command
    requirement = pyspark_requirement(venv_python(venv))
    install = (
        f"echo 'Bedrock: installing {requirement} for spark-submit (the image supplied Spark; "
        f"this machine runs it in local mode)'; "
        # The venv's own pip, whatever stands in for ``pip`` on PATH: pyspark matches the
        # machine's Java and the venv's Python, not the date of the step's other packages.
        f"python -m pip install --quiet --progress-bar off {shlex.quote(requirement)};"
    )
    return f"{{ {install} }} && {step.command}"
