"""What the steps' installs get: packages as of the run's commit date, and no conda locally.

``dated`` (the date a run's installs resolve as of, and the ``pip`` that applies it),
``pipshim`` (that ``pip``, a script of its own) and ``conda`` (conda steps on the local
executor).
"""

from __future__ import annotations

from bedrock.runs.installs.conda import conda_refusal
from bedrock.runs.installs.dated import (
    dated_installs_on,
    installs_as_of,
    notice,
    prepare_venv,
    run_date,
    sandbox_mounts,
)

__all__ = [
    "conda_refusal",
    "dated_installs_on",
    "installs_as_of",
    "notice",
    "prepare_venv",
    "run_date",
    "sandbox_mounts",
]
