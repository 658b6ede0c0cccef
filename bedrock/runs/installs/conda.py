"""Conda steps on the local executor: refused when the run is created, with what to do instead.

The images that real pipelines name for conda (continuumio/miniconda3, an image with conda on its
PATH) bring conda and its channels' reach; the local executor runs steps on the host, where there
is no conda, and conda's channels are not a registry that every Bedrock server reaches. No tool
from PyPI or Debian installs conda packages without those channels, so rather than fail each such
step with "conda: command not found" after the run has started, the run is rejected at once.
"""

from __future__ import annotations

import re

from django.conf import settings

from bedrock.pipelines.spec import Stanza, Step

_CONDA = frozenset({"conda", "mamba", "micromamba"})
# Where a new command starts in a shell line: after a separator or a grouping character.
_SEPARATORS = re.compile(r"&&|\|\||[;&|(){}\n`]|\$\(")
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=\S*")
_PREFIXES = frozenset({"then", "do", "else", "exec", "time", "sudo", "!", "command", "env"})


def _program(segment: str) -> str:
    """The program a shell command runs (its first word past assignments and ``sudo``)."""
    words = segment.split()
    while words and (words[0] in _PREFIXES or _ASSIGNMENT.fullmatch(words[0])):
        words = words[1:]
    if not words:
        return ""
    program = words[0].rsplit("/", 1)[-1]
    # ``source activate ENV``: conda's activation of old, which needs conda's scripts.
    if program in ("source", ".") and words[1:2] == ["activate"]:
        return "conda"
    return program


def conda_line(step: Step) -> str:
    """The first line of ``step`` that runs conda, or ""."""
    for line in (*step.install, *step.script):
        if any(_program(part) in _CONDA for part in _SEPARATORS.split(line)):
            return line.strip()
    return ""


def conda_refusal(stanza: Stanza, config_path: str) -> str:
    """Why the local executor cannot run ``stanza``, or "": a step of it runs conda."""
    if settings.BEDROCK_EXECUTOR != "local":
        return ""
    for step in stanza.steps:
        line = conda_line(step)
        if line:
            return (
                f"step {step.name} of {config_path} runs conda ({line!r}), which the local "
                "executor does not provide: run this pipeline on the Docker executor "
                f"(BEDROCK_EXECUTOR=docker), where the step's image {step.image or '(none)'} "
                "brings conda"
            )
    return ""
