#!/usr/bin/env python3
"""``pip`` in a step's virtual environment whose installs resolve as of a date.

``pip install …`` becomes ``uv pip install --exclude-newer DATE …`` into the same environment;
every other command, and an install with an option this does not know, is the environment's own
pip. Bedrock writes this file over the environment's ``pip`` scripts with the constants below
filled in and its host Python in the first line: it runs outside the step's interpreter, which
may be far older than the syntax here. It imports nothing but the standard library.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Mapping

# Filled in when the shim is written into a virtual environment.
DATE = ""
UV = "uv"
# Packages whose indexes give no upload times (Bedrock's own index, serving its client): uv
# leaves out every file without one once a date is set, so these are outside the bound.
UNDATED = ("bdrk",)
# The client's model-monitoring extra requires boxkite in place of the monitoring the old bdrk
# carried itself, and boxkite 0.0.5 pins fluent-logger and prometheus-client of 2021 (and that
# fluent-logger a msgpack of 2021): a run of a 2020 repository pinning
# bdrk[model-monitoring]==0.3.2 would find no solution. These resolve as of the day after
# boxkite 0.0.5's upload at the earliest; boxkite's own pins bound them.
CLIENT_NEEDS = ("boxkite", "fluent-logger", "msgpack", "prometheus-client")
CLIENT_NEEDS_FLOOR = "2021-07-07T00:00:00Z"
MARKER = "bedrock-dated-pip-shim"

# pip's options without a value, and what uv calls them; None: nothing to pass on.
FLAGS: dict[str, str | None] = {
    "-U": "--upgrade",
    "--upgrade": "--upgrade",
    "--no-deps": "--no-deps",
    "--pre": "--prerelease=allow",
    "--force-reinstall": "--reinstall",
    "-I": "--reinstall",
    "--ignore-installed": "--reinstall",
    "--no-cache-dir": "--no-cache",
    "--no-index": "--no-index",
    "--no-build-isolation": "--no-build-isolation",
    "--require-hashes": "--require-hashes",
    "-q": "--quiet",
    "-qq": "--quiet",
    "-qqq": "--quiet",
    "--quiet": "--quiet",
    "-v": "--verbose",
    "--verbose": "--verbose",
    "--no-warn-script-location": None,
    "--disable-pip-version-check": None,
    "--no-python-version-warning": None,
    "--no-color": None,
    "--no-input": None,
    "--prefer-binary": None,
    "--compile": "--compile-bytecode",
    "--no-compile": None,
    "--break-system-packages": None,
    "--isolated": None,
}
# pip's options with a value (``-r FILE``, ``-rFILE``, ``--requirement=FILE``), and uv's names.
VALUED: dict[str, str | None] = {
    "-r": "--requirement",
    "--requirement": "--requirement",
    "-c": "--constraint",
    "--constraint": "--constraint",
    "-e": "--editable",
    "--editable": "--editable",
    "-i": "--index-url",
    "--index-url": "--index-url",
    "--extra-index-url": "--extra-index-url",
    "-f": "--find-links",
    "--find-links": "--find-links",
    "--trusted-host": "--allow-insecure-host",
    "--no-binary": "--no-binary",
    "--only-binary": "--only-binary",
    "-t": "--target",
    "--target": "--target",
    "--prefix": "--prefix",
    "--upgrade-strategy": None,
    "--progress-bar": None,
    "--timeout": None,
    "--retries": None,
    "--root-user-action": None,
    "--cache-dir": None,
    "--exists-action": None,
    "--log": None,
    "--src": None,
}
# What pip reads from the environment, as uv options: Bedrock gives steps PIP_EXTRA_INDEX_URL
# for its client, and uv reads only its own UV_* variables.
ENVIRONMENT = (
    ("PIP_INDEX_URL", "--index-url"),
    ("PIP_EXTRA_INDEX_URL", "--extra-index-url"),
    ("PIP_FIND_LINKS", "--find-links"),
    ("PIP_TRUSTED_HOST", "--allow-insecure-host"),
)


class Unknown(Exception):
    """An argument this shim cannot hand to uv faithfully: real pip runs the command."""


def _option(args: list[str], index: int) -> tuple[list[str], int]:
    """uv's form of the option at ``args[index]`` and the index of the argument after it."""
    arg = args[index]
    name, equals, value = arg.partition("=")
    if name in FLAGS and not equals:
        uv = FLAGS[name]
        return ([uv] if uv else []), index + 1
    if name.startswith("--") and name in VALUED:
        if not equals:
            if index + 1 >= len(args):
                raise Unknown(f"{name} needs a value")
            value, index = args[index + 1], index + 1
    elif arg[:2] in VALUED and not arg.startswith("--"):
        name, value = arg[:2], arg[2:]
        if not value:
            if index + 1 >= len(args):
                raise Unknown(f"{name} needs a value")
            value, index = args[index + 1], index + 1
    else:
        raise Unknown(f"the option {arg}")
    uv = VALUED[name]
    return ([uv, value] if uv else []), index + 1


def uv_arguments(args: list[str], environ: Mapping[str, str]) -> list[str] | None:
    """The arguments of ``uv pip install`` for pip's ``args``, or None when pip's are not an
    install this shim can hand to uv (then the environment's own pip runs them)."""
    translated: list[str] = []
    command = None
    index = 0
    try:
        while index < len(args):
            arg = args[index]
            if command is None and not arg.startswith("-"):
                command, index = arg, index + 1
                if command != "install":
                    return None
                continue
            if arg == "--" or not arg.startswith("-") or arg == "-":
                translated.append(arg)
                index += 1
                continue
            options, index = _option(args, index)
            translated += options
    except Unknown:
        return None
    if command != "install":
        return None
    for variable, uv in ENVIRONMENT:
        if uv == "--index-url" and uv in translated:
            continue  # pip's command line replaces the variable's one index
        for value in environ.get(variable, "").split():
            translated += [uv, value]
    if environ.get("PIP_NO_CACHE_DIR", "").lower() in ("1", "true", "yes", "on"):
        translated.append("--no-cache")
    return translated


def uv_command(args: list[str], environ: Mapping[str, str], *, python: str) -> list[str] | None:
    """The whole uv command line for pip's ``args``, into the environment of ``python``."""
    translated = uv_arguments(args, environ)
    if translated is None:
        return None
    bound = ["--exclude-newer", DATE]
    for name in UNDATED:
        bound += ["--exclude-newer-package", f"{name}=false"]
    if DATE < CLIENT_NEEDS_FLOOR:  # both RFC 3339 in UTC: the strings order as the dates
        for name in CLIENT_NEEDS:
            bound += ["--exclude-newer-package", f"{name}={CLIENT_NEEDS_FLOOR}"]
    # pip takes the best version across all its indexes; uv's default stops at the first index
    # that has the project, which would change what an old requirements file gets.
    strategy = ["--index-strategy", "unsafe-best-match"]
    return [UV, "pip", "install", "--python", python, *bound, *strategy, *translated]


def _restore(bin_dir: str, source: str) -> None:
    # ``pip install --upgrade pip`` writes pip's own scripts over this one: put it back, so that
    # the step's later installs stay dated.
    for name in os.listdir(bin_dir):
        if re.fullmatch(r"pip(\d+(\.\d+)?)?", name):
            path = os.path.join(bin_dir, name)
            with open(path, encoding="utf-8", errors="replace") as file:
                if MARKER in file.read():
                    continue
            with open(path, "w", encoding="utf-8") as file:
                file.write(source)
            os.chmod(path, 0o755)  # noqa: S103 (a script every step's user runs)


def main(argv: list[str]) -> int:
    bin_dir = os.path.dirname(os.path.abspath(__file__))
    python = os.path.join(bin_dir, "python")
    command = uv_command(argv, os.environ, python=python)
    if command is None:
        os.execv(python, [python, "-m", "pip", *argv])  # noqa: S606 (pip itself, no shell)
    with open(os.path.abspath(__file__), encoding="utf-8") as file:
        source = file.read()
    environ = dict(os.environ)
    if environ.get("PIP_CACHE_DIR"):
        environ.setdefault("UV_CACHE_DIR", os.path.join(environ["PIP_CACHE_DIR"], "uv"))
    # The cache and the environment are separate mounts in the sandbox: hard links fail there.
    environ.setdefault("UV_LINK_MODE", "copy")
    # pip trusts the system's certificate store (truststore since pip 24.2, or the cert of
    # /etc/pip.conf); uv only its bundled roots unless told, so behind a proxy whose CA only the
    # system knows, every dated install failed where pip's own succeeded.
    environ.setdefault("UV_SYSTEM_CERTS", "1")
    said = " ".join(argv)
    print(f"bedrock: pip {said}: resolved as of {DATE} by uv", file=sys.stderr, flush=True)
    code = subprocess.run(command, env=environ).returncode
    _restore(bin_dir, source)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
