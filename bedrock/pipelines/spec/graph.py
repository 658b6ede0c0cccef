"""The step graph: dependencies checked, every cycle reported, and the steps put in order.

The order comes from the standard library's `graphlib.TopologicalSorter`, taking the ready step
earliest in the file first. graphlib's `CycleError` names one cycle; a user fixing a file wants
every one at once, so on a cycle the graph is walked again to report each.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from graphlib import CycleError, TopologicalSorter

from bedrock.pipelines.spec.model import Step
from bedrock.pipelines.spec.report import Reporter
from bedrock.pipelines.spec.steps import StepDraft

Cycle = tuple[list[str], StepDraft, int]


def order(report: Reporter, stanza: str, drafts: list[StepDraft]) -> tuple[Step, ...] | None:
    """The steps in dependency order, earliest in the file first among the ready ones."""
    by_name = {draft.name: draft for draft in drafts}
    if not _dependencies_known(report, stanza, drafts, by_name):
        return None
    sorter = TopologicalSorter(
        {draft.name: [dep for dep, _ in draft.depends_on] for draft in drafts}
    )
    try:
        sorter.prepare()
    except CycleError:
        for cycle, draft, index in cycles(drafts, by_name):
            report.error(
                (*draft.path, "depends_on", index),
                "dependency cycle: " + " -> ".join(cycle),
                value=True,
            )
        return None
    return tuple(_step(draft) for draft in _earliest_first(sorter, drafts))


def _dependencies_known(
    report: Reporter, stanza: str, drafts: list[StepDraft], by_name: dict[str, StepDraft]
) -> bool:
    """False, with an error for each, if a step depends on itself or on a step that is not there."""
    ok = True
    for draft in drafts:
        for dependency, index in draft.depends_on:
            where = (*draft.path, "depends_on", index)
            if dependency == draft.name:
                report.error(where, f"step {draft.name!r} depends on itself", value=True)
                ok = False
            elif dependency not in by_name:
                known = ", ".join(by_name) or "none"
                report.error(
                    where,
                    f"depends on unknown step {dependency!r}; the steps in {stanza} are: {known}",
                    value=True,
                )
                ok = False
    return ok


def _earliest_first(sorter: TopologicalSorter[str], drafts: list[StepDraft]) -> Iterator[StepDraft]:
    """The sorter's order, choosing among the steps ready at once the one written first."""
    position = {draft.name: index for index, draft in enumerate(drafts)}
    ready: list[int] = []
    while sorter.is_active():
        for name in sorter.get_ready():
            heapq.heappush(ready, position[name])
        draft = drafts[heapq.heappop(ready)]
        sorter.done(draft.name)
        yield draft


def _step(draft: StepDraft) -> Step:
    return Step(
        name=draft.name,
        image=draft.image,
        install=draft.install,
        script=draft.script,
        resources=draft.resources,
        depends_on=tuple(dep for dep, _ in draft.depends_on),
        retry_limit=draft.retry_limit,
    )


def cycles(drafts: list[StepDraft], by_name: dict[str, StepDraft]) -> list[Cycle]:
    """Each cycle once, starting at its step earliest in the file, and where to report it."""
    found: list[Cycle] = []
    covered: set[frozenset[str]] = set()
    position = {draft.name: index for index, draft in enumerate(drafts)}
    for draft in drafts:
        cycle = _walk(draft.name, by_name, position)
        if cycle is None or frozenset(cycle) in covered:
            continue
        covered.add(frozenset(cycle))
        index = next(i for dep, i in draft.depends_on if dep == cycle[1])
        found.append((cycle, draft, index))
    return found


def _walk(start: str, by_name: dict[str, StepDraft], position: dict[str, int]) -> list[str] | None:
    """A path of dependencies from `start` back to itself, searched depth first."""
    trail = [start]
    pending = [iter(by_name[start].depends_on)]
    seen = {start}
    while pending:
        for dependency, _ in pending[-1]:
            if dependency == start:
                return [*trail, start]
            # Steps before `start` in the file were searched already, from themselves.
            if dependency in seen or position[dependency] < position[start]:
                continue
            seen.add(dependency)
            trail.append(dependency)
            pending.append(iter(by_name[dependency].depends_on))
            break
        else:
            pending.pop()
            trail.pop()
    return None
