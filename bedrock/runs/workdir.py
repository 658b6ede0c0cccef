"""Where a step runs: the folder of its pipeline's config file, inside the checkout at /app.

Real Bedrock repositories keep several pipelines in sub-folders, each beside its own
requirements file and scripts, and write ``pip install -r requirements.txt`` and ``python
train.py`` relative to that folder. The checkout stays at /app, so files that ``cd /app/...`` or
use absolute paths keep working; ``BEDROCK_APP_DIR`` still names the checkout's root.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from bedrock.pipelines.git.validation import normalize_path

APP = "/app"


def step_workdir(config_path: str) -> str:
    """The folder a step starts in, as the step sees it: ``/app`` for a config at the root,
    ``/app/sub`` for ``sub/bedrock.hcl``."""
    # Tidied as the config file was read at the run's commit ("./sub//bedrock.hcl" is
    # "sub/bedrock.hcl"), so that the folder is the one the file came from.
    folder = PurePosixPath(normalize_path(config_path or "bedrock.hcl")).parent
    return str(PurePosixPath(APP, folder))


def relative_workdir(workdir: str) -> PurePosixPath:
    """``workdir`` relative to the checkout: ``sub`` for ``/app/sub``, ``.`` for ``/app``."""
    return PurePosixPath(workdir).relative_to(APP)


def host_workdir(app_dir: Path, workdir: str) -> Path | None:
    """The step's folder in the checkout ``app_dir`` on this machine, or None when the checkout
    has no such folder or it leads out of the checkout (a symbolic link to elsewhere)."""
    path = app_dir / relative_workdir(workdir)
    root = app_dir.resolve()
    resolved = path.resolve()
    if not resolved.is_dir() or not (resolved == root or root in resolved.parents):
        return None
    return path


def missing_workdir(workdir: str) -> str:
    """What to tell a user whose step's folder is not in the checkout."""
    return (
        f"the step runs in its config file's folder, {workdir}, which is not a folder of the "
        f"checkout at this commit"
    )
