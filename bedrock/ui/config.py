"""A pipeline's bedrock.hcl as the UI shows it: read at a ref, checked, laid out as a DAG.

Reading goes through the Git module and the spec parser only; every failure a user can cause
(an unreachable repository, a missing file, an invalid config) becomes a message on the page,
never an exception.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from bedrock.pipelines import git
from bedrock.pipelines import spec as hcl
from bedrock.pipelines.models import Pipeline, PipelineKind
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

    @property
    def errors(self) -> list[ShownProblem]:
        return [p for p in self.problems if p.is_error]

    @property
    def warnings(self) -> list[ShownProblem]:
        return [p for p in self.problems if not p.is_error]

    @property
    def ok(self) -> bool:
        return not self.git_error and not self.errors and self.stanza is not None


def _cache_key(pipeline: Pipeline) -> str:
    if pipeline.pk:
        return f"pipeline-{pipeline.pk}"
    # A pipeline being created has no id yet: key its cache by its URL.
    return "check-" + hashlib.sha256(pipeline.git_url.encode()).hexdigest()[:24]


def _credentials(pipeline: Pipeline) -> git.GitCredentials | None:
    if not pipeline.pk:
        return None
    from bedrock.secrets.services import git_credentials_for

    return git_credentials_for(pipeline)


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
    """The pipeline's config at ``ref`` (default: its branch head), resolved and checked."""
    ref = (ref or pipeline.branch or "").strip()
    path = pipeline.config_path or "bedrock.hcl"
    try:
        git.validate_ref(ref)
        cache_key, credentials = _cache_key(pipeline), _credentials(pipeline)
        sha = git.resolve_ref(pipeline.git_url, ref, cache_key=cache_key, credentials=credentials)
        text = git.read_file(
            pipeline.git_url, sha, path, cache_key=cache_key, credentials=credentials
        )
    except git.GitError as exc:
        return ConfigAtRef(ref=ref, path=path, git_error=str(exc))
    except ValueError as exc:  # a cache key or path git refuses before any network access
        return ConfigAtRef(ref=ref, path=path, git_error=str(exc))
    return check_text(text, kind=pipeline.kind, path=path, ref=ref, sha=sha)


def check_text(text: str, *, kind: str, path: str, ref: str = "", sha: str = "") -> ConfigAtRef:
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
