"""The ``spark-submit`` a local step runs: pyspark's own, in local mode on this machine.

Bedrock's images supplied Spark and a Kubernetes cluster to run it on; the local executor has
neither. This file is copied as it is into the step's virtual environment as a script, so it runs
on that environment's Python, which may be as old as 3.6: no ``from __future__ import
annotations``, no imports from Bedrock, and annotations in quotes. The executor appends the call
of :func:`main` with the step's master and driver memory.
"""

import importlib.util
import os
import re
import sys

# Options of spark-submit that choose or size a cluster: in local mode the master is this
# machine and the step's own resources size the driver.
CLUSTER_OPTIONS = (
    "--master",
    "--deploy-mode",
    "--num-executors",
    "--executor-memory",
    "--executor-cores",
    "--total-executor-cores",
    "--driver-cores",
    "--queue",
    "--kill",
    "--status",
)
CLUSTER_CONF = (
    "spark.master",
    "spark.submit.deployMode",
    "spark.executor.instances",
    "spark.executor.memory",
    "spark.executor.memoryOverhead",
    "spark.executor.cores",
    "spark.driver.cores",
    "spark.cores.max",
)
CLUSTER_CONF_PREFIXES = ("spark.kubernetes.", "spark.yarn.", "spark.mesos.")
DRIVER_MEMORY_CONF = "spark.driver.memory"
# Spark before 3.3 reaches into the JDK's internals, which Java 17 closes unless they are opened
# (Spark 3.3's launcher opens them itself). Java 8 does not read JDK_JAVA_OPTIONS at all.
_OPENED_PACKAGES = ("java.lang", "java.lang.invoke", "java.nio", "java.util", "sun.nio.ch")
JAVA_OPENS = " ".join("--add-opens=java.base/" + name + "=ALL-UNNAMED" for name in _OPENED_PACKAGES)


def is_cluster_conf(key: "str") -> "bool":
    return key in CLUSTER_CONF or key.startswith(CLUSTER_CONF_PREFIXES)


def rewrite(
    args: "list[str]", master: "str", driver_memory: "str"
) -> "tuple[list[str], list[str], list[str]]":
    """Bedrock's local-mode options, ``args`` without the cluster's, and the settings left out.

    Only the options before the application (the first argument that is not an option or an
    option's value) are spark-submit's; what follows is the application's own, kept as it is.
    The file's own driver memory wins over the step's, as Bedrock merged ``{**system, **user}``.
    """
    kept = []  # type: list[str]
    ignored = []  # type: list[str]
    own_memory = False
    index = 0
    while index < len(args):
        arg = args[index]
        if not arg.startswith("-"):
            break
        name, has_value, value = arg.partition("=")
        if not has_value and index + 1 < len(args) and _takes_value(name):
            value = args[index + 1]
            index += 1
        index += 1
        if name == "--conf":
            key = value.partition("=")[0]
            if is_cluster_conf(key):
                ignored.append(key)
                continue
            own_memory = own_memory or key == DRIVER_MEMORY_CONF
            kept += ["--conf", value]
        elif name in CLUSTER_OPTIONS:
            ignored.append(name)
        else:
            own_memory = own_memory or name == "--driver-memory"
            kept += [name, value] if _takes_value(name) else [name]
    local = ["--master", master]
    if driver_memory and not own_memory:
        local += ["--driver-memory", driver_memory]
    return local, kept + args[index:], ignored


# spark-submit's options that stand alone; every other takes a value.
_FLAGS = ("--verbose", "-v", "--supervise", "--help", "-h", "--version")


def _takes_value(name: "str") -> "bool":
    return name not in _FLAGS


def pyspark_version(search: "list[str] | None" = None) -> "tuple[int, int] | None":
    """The installed pyspark's version, read from its ``version.py`` without importing it."""
    if search is None:
        found = importlib.util.find_spec("pyspark")
        search = list(found.submodule_search_locations or []) if found else []
    for directory in search:
        try:
            with open(os.path.join(directory, "version.py")) as handle:
                text = handle.read()
        except OSError:
            continue
        match = re.search(r"__version__[^=]*=\s*['\"](\d+)\.(\d+)", text)
        if match:
            return int(match.group(1)), int(match.group(2))
    return None


def java_options(version: "tuple[int, int] | None", current: "str") -> "str":
    """``JDK_JAVA_OPTIONS`` for a pyspark of ``version``: Spark before 3.3 needs modules opened."""
    if version is None or version >= (3, 3) or JAVA_OPENS in current:
        return current
    return (current + " " + JAVA_OPENS).strip()


def main(master: "str", driver_memory: "str") -> None:
    pyspark = os.path.join(os.path.dirname(sys.executable), "spark-submit")
    if not os.access(pyspark, os.X_OK):
        sys.stderr.write(
            "Bedrock: pyspark is not installed in the step's virtual environment, so there is "
            "no spark-submit to run; install it in the step (pip install pyspark)\n"
        )
        sys.exit(127)
    local, args, ignored = rewrite(sys.argv[1:], master, driver_memory)
    note = "Bedrock: spark-submit runs in local mode on this machine: " + " ".join(local)
    if ignored:
        note += "; ignored (cluster-only): " + ", ".join(dict.fromkeys(ignored))
    sys.stderr.write(note + "\n")
    sys.stderr.flush()
    # The sandbox's host name is in no /etc/hosts, and Spark looks up its own address by it:
    # a driver and executors of one machine talk over the loopback.
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("SPARK_LOCAL_HOSTNAME", "localhost")
    options = java_options(pyspark_version(), os.environ.get("JDK_JAVA_OPTIONS", ""))
    if options:
        os.environ["JDK_JAVA_OPTIONS"] = options
    os.execv(pyspark, [pyspark, *local, *args])  # noqa: S606 (pyspark's own launcher, by path)
