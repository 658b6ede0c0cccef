"""What a step's own command asks of memory, against what its Nomad task is given.

Bedrock's Spark files size the driver in their ``spark-submit`` line (``--driver-memory 4g`` or
``--conf spark.driver.memory=4g``) for a driver pod of its own on Kubernetes, beside
``resources { memory = "1G" }``. On Nomad the driver runs inside the step's main task, so a driver
larger than the task's ``MemoryMB`` is killed once it grows past it (exit code 137, which Docker
on cgroup v2 does not even call an OOM kill). That is said when the job is rendered: by ``bedrock
nomad render`` on stderr, and in the step's log when a run submits it.
"""

from __future__ import annotations

import re

# The driver's memory as spark-submit takes it; spark-submit's own flag wins over --conf.
_FLAG = re.compile(r"--driver-memory(?:=|\s+)['\"]?(\d+[A-Za-z]*)")
_CONF = re.compile(r"spark\.driver\.memory=['\"]?(\d+[A-Za-z]*)")
# JVM memory strings as Spark reads them (JavaUtils.byteStringAs); no suffix means MiB here.
_MIB: dict[str, float] = {
    "": 1,
    "m": 1,
    "mb": 1,
    "g": 2**10,
    "gb": 2**10,
    "t": 2**20,
    "tb": 2**20,
    "p": 2**30,
}
_MIB |= {"pb": 2**30, "k": 2**-10, "kb": 2**-10, "b": 2**-20}


def driver_memory(command: str) -> tuple[float, str] | None:
    """The most driver memory the command's spark-submit asks for, in MiB, and as written."""
    if "spark-submit" not in command:
        return None
    found = list(_FLAG.finditer(command)) or list(_CONF.finditer(command))
    asked = []
    for match in found:
        text = match.group(1)
        digits = re.match(r"\d+", text)
        assert digits is not None
        unit = _MIB.get(text[digits.end() :].lower())
        if unit is not None:
            asked.append(
                (int(digits.group()) * unit, match.group(0).replace('"', "").replace("'", ""))
            )
    return max(asked, default=None)


def driver_memory_problem(command: str, task_mb: int) -> str:
    """Why the step's Spark driver cannot fit in its task, or ''."""
    asked = driver_memory(command)
    if asked is None or asked[0] <= task_mb:
        return ""
    mib, written = asked
    return (
        f"spark-submit asks for a {mib:.0f} MiB driver ({written}) but the step's Nomad task has "
        f"{task_mb} MiB (resources.memory): the driver is killed once it grows past that (exit "
        f"code 137); raise resources.memory above {mib:.0f} MiB, or ask for a smaller driver"
    )
