"""What a run may put in a step's environment: the names refused, and the size allowed.

A parameter or a secret becomes an environment variable of the step by its own name. The step's
code is the repository author's, but its parameters are a project developer's: a name that the
dynamic loader, the shell or an interpreter acts on (``LD_PRELOAD``, ``BASH_ENV``, ``PATH``,
``PYTHONWARNINGS`` with ``BROWSER``…) would let whoever sets a parameter run code of their own, or
change what the step's code does, before the step's first line. So those names are refused for
parameters (the file's defaults and a run's overrides) and for secrets, with the reason.

This module is the one list. Each family below says why its names are refused; a family is a set
of exact names and of prefixes. Names are matched exactly as written (the loader and the
interpreters read them case-sensitively).

Allowed on purpose, because real pipelines set them and none runs code: ``TMPDIR``, ``PIP_*``
(a private package index is ordinary), ``SSL_CERT_FILE``/``SSL_CERT_DIR``/``REQUESTS_CA_BUNDLE``
(a company's CA), ``HTTP(S)_PROXY``, ``CLASSPATH``, ``JAVA_HOME``, ``SPARK_*``, and the harmless
Python switches in `PYTHON_ALLOWED`. Files written for Basis AI's Bedrock set ``BEDROCK_SERVER``
and ``BEDROCK_ACCESS_TOKEN`` for their own client; those two stay allowed (`LEGACY_BEDROCK_NAMES`),
every other ``BEDROCK_`` name is Bedrock's.

The size: the kernel refuses to start a program whose environment holds a string over 128 KiB
(``MAX_ARG_STRLEN``) or whose arguments and environment together pass ``ARG_MAX``, and the step
then fails with ``Argument list too long``. Parameters and secrets together are therefore held to
``BEDROCK_MAX_ENVIRONMENT_BYTES`` (64 KiB by default) when the run is created.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError

# A name a shell can read: `$NAME`. \Z, not $: `$` also matches before a final newline.
ENVIRONMENT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
ENVIRONMENT_NAME_RULE = (
    "letters, digits and '_', not starting with a digit"  # completes "a name is ..."
)


def is_environment_name(name: str) -> bool:
    """Whether ``name`` can be an environment variable: parameters, secrets, a step's env."""
    return ENVIRONMENT_NAME.match(name) is not None


def validate_environment_name(name: str) -> None:
    """The model field validator of a secret's name."""
    if not is_environment_name(name):
        raise ValidationError(
            f"A secret name is an environment variable name: {ENVIRONMENT_NAME_RULE}.",
            code="invalid",
        )


@dataclass(frozen=True)
class Family:
    why: str  # completes "NAME ..."
    names: frozenset[str] = frozenset()
    prefixes: tuple[str, ...] = ()

    def holds(self, name: str) -> bool:
        return name in self.names or name.startswith(self.prefixes)


# Bedrock sets these for every step; they are set last, and no one else may name them.
BEDROCK_OWN_NAMES = frozenset(
    {
        "BEDROCK_API_DOMAIN",
        "BEDROCK_API_TOKEN",
        "BEDROCK_APP_DIR",
        "BEDROCK_ARTEFACT_DIR",
        "BEDROCK_MODEL_VERSION_ID",
        "BEDROCK_PIPELINE_ID",
        "BEDROCK_PIPELINE_RUN_ID",
        "BEDROCK_PROJECT_ID",
        "BEDROCK_RUN_ID",
        "BEDROCK_RUN_STEP_ATTEMPT",
        "BEDROCK_RUN_STEP_NAME",
        "BEDROCK_RUN_TRIGGER",
    }
)
# The pipeline's Git credentials are secrets of these names: used to clone, never given to steps.
GIT_CREDENTIAL_NAMES = ("BEDROCK_GIT_TOKEN", "BEDROCK_GIT_SSH_KEY", "BEDROCK_GIT_KNOWN_HOSTS")
# Set by files written for Basis AI's Bedrock, for their own client; Bedrock sets neither.
LEGACY_BEDROCK_NAMES = frozenset({"BEDROCK_SERVER", "BEDROCK_ACCESS_TOKEN"})
# Python switches that change no code path a parameter could steer.
PYTHON_ALLOWED = frozenset(
    {
        "PYTHONDONTWRITEBYTECODE",
        "PYTHONFAULTHANDLER",
        "PYTHONHASHSEED",
        "PYTHONIOENCODING",
        "PYTHONUNBUFFERED",
        "PYTHONUTF8",
    }
)

FAMILIES: tuple[Family, ...] = (
    Family(
        "is read by the shell to find programs",
        names=frozenset({"PATH"}),
    ),
    Family(
        "is read by the dynamic loader or the C library of every program, and can load code "
        "into it",
        names=frozenset(
            {
                "GCONV_PATH",
                "GETCONF_DIR",
                "GLIBC_TUNABLES",
                "HOSTALIASES",
                "LOCALDOMAIN",
                "LOCPATH",
                "NLSPATH",
                "RES_OPTIONS",
            }
        ),
        prefixes=("LD_", "DYLD_", "MALLOC_", "RESOLV_"),
    ),
    Family(
        "is read by the shell that runs the step's commands, and can make it run other code",
        names=frozenset(
            {
                "BASHOPTS",
                "CDPATH",
                "ENV",
                "GLOBIGNORE",
                "IFS",
                "PROMPT_COMMAND",
                "PS4",
                "SHELLOPTS",
                "ZDOTDIR",
            }
        ),
        prefixes=("BASH_",),
    ),
    Family(
        "is read by an interpreter when it starts, and can make it load or run other code",
        names=frozenset(
            {
                "JAVA_TOOL_OPTIONS",
                "JDK_JAVA_OPTIONS",
                "_JAVA_OPTIONS",
                "LUA_CPATH",
                "LUA_INIT",
                "LUA_PATH",
                "NODE_OPTIONS",
                "NODE_PATH",
                "NODE_REPL_EXTERNAL_MODULE",
                "OPENSSL_CONF",
                "OPENSSL_ENGINES",
                "OPENSSL_MODULES",
                "PERLIO",
                "PERLLIB",
                "R_ENVIRON",
                "R_ENVIRON_USER",
                "R_PROFILE",
                "R_PROFILE_USER",
                "VIRTUAL_ENV",
            }
        ),
        prefixes=("PYTHON", "PERL5", "PERL_", "PERLDB", "RUBY", "LUA_INIT_"),
    ),
    Family(
        "names a program or configuration that tools start or read on their own",
        names=frozenset(
            {
                "BROWSER",
                "EDITOR",
                "GIT_ASKPASS",
                "GIT_EDITOR",
                "GIT_EXEC_PATH",
                "GIT_EXTERNAL_DIFF",
                "GIT_PAGER",
                "GIT_PROXY_COMMAND",
                "GIT_SEQUENCE_EDITOR",
                "GIT_SSH",
                "GIT_SSH_COMMAND",
                "GIT_TEMPLATE_DIR",
                "LESSCLOSE",
                "LESSOPEN",
                "MANPAGER",
                "PAGER",
                "SSH_ASKPASS",
                "VISUAL",
            }
        ),
        prefixes=("GIT_CONFIG",),
    ),
    Family(
        "is the step's own home directory, which the executor sets",
        names=frozenset({"HOME"}),
    ),
)


def refused_environment_name(name: str, *, kind: str = "parameter") -> str | None:
    """Why ``name`` may not be set in a step's environment by a ``kind`` ("parameter" or
    "secret"), or None when it may. The reason is a sentence a user can act on."""
    if name in PYTHON_ALLOWED or name in LEGACY_BEDROCK_NAMES:
        return None
    cannot = f"a {kind} cannot set it"
    if name in BEDROCK_OWN_NAMES:
        return f"{name} is set by Bedrock for every step: {cannot}"
    if name in GIT_CREDENTIAL_NAMES:
        return (
            f"{name} is the pipeline's Git credential, used to clone and never given to steps: "
            f"{cannot}"
        )
    if name.startswith("BEDROCK_"):
        return f"{name}: names starting with BEDROCK_ are reserved for Bedrock's own variables"
    for family in FAMILIES:
        if family.holds(name):
            return f"{name} {family.why}: {cannot}"
    return None


def refused_secret_name(name: str) -> str | None:
    """`refused_environment_name` for a secret set on a pipeline, where the Git credentials'
    names are allowed: those secrets are Bedrock's, for cloning, and never reach a step."""
    if name in GIT_CREDENTIAL_NAMES:
        return None
    return refused_environment_name(name, kind="secret")


def nul_byte_problem(text: str, what: str) -> str | None:
    """A NUL byte ends a C string: no argv, environment variable or PostgreSQL text holds one."""
    if "\0" not in text:
        return None
    return (
        f"{what} holds a NUL byte (\\0), which cannot be passed to a program or stored as "
        "text; remove it"
    )


def max_environment_bytes() -> int:
    return settings.BEDROCK_MAX_ENVIRONMENT_BYTES


def environment_bytes(variables: Mapping[str, str]) -> int:
    """What the variables take in a process's environment block: `NAME=value\\0` each."""
    return sum(len(name.encode()) + len(value.encode()) + 2 for name, value in variables.items())


def environment_size_problem(variables: Mapping[str, str], what: str) -> str | None:
    """A sentence naming the size and the limit when ``variables`` are over it, else None."""
    size, limit = environment_bytes(variables), max_environment_bytes()
    if size <= limit:
        return None
    largest = max(variables, key=lambda name: len(variables[name].encode()))
    return (
        f"{what} would take {size} bytes of the step's environment, over the limit of "
        f"{limit} bytes (BEDROCK_MAX_ENVIRONMENT_BYTES); the largest is {largest} "
        f"({len(variables[largest].encode())} bytes). Pass large values as files in the "
        "repository or the artefact instead"
    )


def parameter_problem(name: str, value: str) -> str | None:
    """Why a run's parameter cannot reach a step's environment, or None when it can."""
    if not is_environment_name(name):
        return f"{name!r} is not a valid parameter (environment variable) name."
    if refused := refused_environment_name(name):
        return refused + "."
    if problem := nul_byte_problem(value, f"the value of parameter {name}"):
        return problem[0].upper() + problem[1:] + "."
    return None
