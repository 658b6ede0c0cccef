"""A pipeline's bedrock.hcl as the UI shows it: read at a ref, checked, laid out as a DAG.

Pages show the read kept by ``bedrock.pipelines.snapshots`` and how old it is; only the form that
saves a pipeline reads from Git while the user waits. Every failure a user can cause (an
unreachable repository, a missing file, an invalid config) becomes a message on the page, never an
exception.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace
from datetime import datetime

from bedrock.pipelines import git, snapshots
from bedrock.pipelines import spec as hcl
from bedrock.pipelines.models import Pipeline, PipelineKind
from bedrock.pipelines.spec import limits
from bedrock.runs.plan import stanza_for


@dataclass(frozen=True)
class SourceLine:
    number: int
    text: str


@dataclass(frozen=True)
class ShownProblem:
    """A problem with the lines of the file around it, to show where it is."""

    problem: hcl.Problem
    lines: tuple[SourceLine, ...] = ()

    @property
    def is_error(self) -> bool:
        return self.problem.is_error


@dataclass(frozen=True)
class ConfigAtRef:
    ref: str
    path: str
    sha: str = ""
    text: str = ""
    stanza: hcl.Stanza | None = None
    git_error: str = ""
    problems: tuple[ShownProblem, ...] = ()
    levels: tuple[tuple[hcl.Step, ...], ...] = field(default=())
    # How old what is shown is: when it was read, whether a newer read is queued, whether nothing
    # is kept yet, and the last read's error when it failed after the one shown.
    read_at: datetime | None = None
    refreshing: bool = False
    reading: bool = False
    failed_error: str = ""
    failed_at: datetime | None = None

    @property
    def errors(self) -> list[ShownProblem]:
        return [p for p in self.problems if p.is_error]

    @property
    def warnings(self) -> list[ShownProblem]:
        return [p for p in self.problems if not p.is_error]

    @property
    def ok(self) -> bool:
        return not self.git_error and not self.errors and self.stanza is not None


def _excerpt(text: str, line: int | None, around: int = 1) -> tuple[SourceLine, ...]:
    if line is None:
        return ()
    lines = text.splitlines()
    first, last = max(1, line - around), min(len(lines), line + around)
    return tuple(SourceLine(n, lines[n - 1]) for n in range(first, last + 1))


def dag_levels(steps: tuple[hcl.Step, ...]) -> tuple[tuple[hcl.Step, ...], ...]:
    """Steps grouped by depth: each step sits one level after the deepest step it depends on.

    ``steps`` are in dependency order, as the spec gives them.
    """
    depth: dict[str, int] = {}
    for step in steps:
        depth[step.name] = 1 + max((depth.get(d, 0) for d in step.depends_on), default=-1)
    count = 1 + max(depth.values(), default=-1)
    return tuple(tuple(s for s in steps if depth[s.name] == level) for level in range(count))


def read_config(pipeline: Pipeline, ref: str | None = None) -> ConfigAtRef:
    """The pipeline's config at ``ref`` (default: its branch head), read from Git now and checked.

    For the form that saves a pipeline, which must check what it saves; pages use
    ``kept_config``.
    """
    ref = (ref or pipeline.branch or "").strip()
    return _checked(pipeline, ref, snapshots.config_read(pipeline, ref))


def _checked(pipeline: Pipeline, ref: str, read: snapshots.ConfigRead) -> ConfigAtRef:
    path = snapshots.config_path(pipeline)
    if read.error:
        return ConfigAtRef(ref=ref, path=path, sha=read.sha, git_error=read.error)
    return check_text(read.text, kind=pipeline.kind, path=path, ref=ref, sha=read.sha)


def kept_config(pipeline: Pipeline, ref: str | None = None) -> ConfigAtRef:
    """The pipeline's config at ``ref`` as last read, without waiting on Git: a fresh read is
    queued when the kept one is not of the ref's head."""
    ref = (ref or pipeline.branch or "").strip()
    path = snapshots.config_path(pipeline)
    try:
        git.validate_ref(ref)
    except git.GitError as exc:
        return ConfigAtRef(ref=ref, path=path, git_error=str(exc))
    kept = snapshots.kept_config(pipeline, ref)
    failed = kept.failed
    if kept.shown is None and failed is None:
        return ConfigAtRef(ref=ref, path=path, reading=True, refreshing=kept.refreshing)
    if kept.shown is None:
        assert failed is not None
        read = snapshots.ConfigRead(sha=failed.commit_sha, error=failed.error)
        config = _checked(pipeline, ref, read)
        return replace(config, read_at=failed.read_at, refreshing=kept.refreshing)
    shown = kept.shown
    read = snapshots.ConfigRead(sha=shown.commit_sha, text=shown.text)
    return replace(
        _checked(pipeline, ref, read),
        read_at=shown.read_at,
        refreshing=kept.refreshing,
        failed_error=failed.error if failed else "",
        failed_at=failed.read_at if failed else None,
    )


def config_keep(pipeline: Pipeline, config: ConfigAtRef) -> None:
    """Keep a config just read from Git (by the save form), so the pipeline's page shows it at
    once."""
    read = snapshots.ConfigRead(sha=config.sha, text=config.text, error=config.git_error)
    snapshots.config_snapshot_store(pipeline=pipeline, ref=config.ref, read=read)


def check_text(text: str, *, kind: str, path: str, ref: str = "", sha: str = "") -> ConfigAtRef:
    return _check_text(text, kind, path, ref, sha, limits.current())


# A page shows the same kept text on every view: each process parses it once (twice, with the
# check) rather than on every request. The limits are part of the key, since they decide the
# problems; what is kept is frozen.
@functools.lru_cache(maxsize=64)
def _check_text(
    text: str, kind: str, path: str, ref: str, sha: str, _limits: limits.SpecLimits
) -> ConfigAtRef:
    problems = hcl.check(text, filename=path)
    stanza = None
    if not any(p.is_error for p in problems):
        try:
            stanza = stanza_for(text, PipelineKind(kind).value, filename=path)
        except hcl.SpecError as exc:
            problems = [*problems, *exc.errors]
    shown = tuple(ShownProblem(p, _excerpt(text, p.line)) for p in problems)
    return ConfigAtRef(
        ref=ref,
        path=path,
        sha=sha,
        text=text,
        stanza=stanza,
        problems=shown,
        levels=dag_levels(stanza.steps) if stanza else (),
    )
