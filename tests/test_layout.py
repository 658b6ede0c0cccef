"""The shape of the code base: modules a reader can take in, and no import cycle between them.

Imports inside functions count: they hide a cycle from Python's import machinery, not from a
reader. A package's ``__init__`` re-exporting a name counts as an import of the module it names.
Imports under ``if TYPE_CHECKING:`` do not: they never run, and the GraphQL types that refer to
each other (a pipeline's runs, a run's pipeline) do so at run time by name, through
``strawberry.lazy``.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "bedrock"
MAX_LINES = 700


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {
        module_name(path): path
        for path in sorted(PACKAGE.rglob("*.py"))
        if "migrations" not in path.parts
    }


def _base(node: ast.ImportFrom, name: str, is_package: bool) -> str:
    """The absolute module a ``from … import`` names, relative levels resolved."""
    if not node.level:
        return node.module or ""
    package = name.split(".") if is_package else name.split(".")[:-1]
    package = package[: len(package) - (node.level - 1)]
    return ".".join(package + ([node.module] if node.module else []))


def _parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:end]) for end in range(1, len(parts))]


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _run_time_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node of ``tree`` but those under ``if TYPE_CHECKING:`` (its ``else`` runs)."""
    found: list[ast.AST] = []
    pending = [tree]
    while pending:
        node = pending.pop()
        found.append(node)
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            pending.extend(node.orelse)
        else:
            pending.extend(ast.iter_child_nodes(node))
    return found


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules of bedrock/ that ``name`` imports when it runs, anywhere in its file."""
    found: set[str] = set()
    for node in _run_time_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _base(node, name, path.name == "__init__.py")
            # `from x import y` imports the module x.y when y is one, else a name of x.
            targets = [
                f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in known
            ]
            targets += [base] if len(targets) < len(node.names) else []
        else:
            continue
        # Importing a.b.c runs a/__init__ and a/b/__init__ first: their re-exports are edges too,
        # except a package's own: a module inside it runs only once its __init__ has begun.
        targets += [
            parent
            for target in targets
            for parent in _parents(target)
            if not name.startswith(f"{parent}.")
        ]
        found |= {target for target in targets if target in known and target != name}
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(groups)


def import_graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: imports_of(name, path, known) for name, path in found.items()}


def test_no_module_of_bedrock_is_over_700_lines() -> None:
    long = {
        str(path.relative_to(ROOT)): count
        for path in modules().values()
        if (count := len(path.read_text().splitlines())) > MAX_LINES
    }

    assert not long, f"Over {MAX_LINES} lines; make each a package of smaller modules: {long}"


def test_no_import_cycle_between_modules_of_bedrock() -> None:
    found = cycles(import_graph())

    assert not found, "Import cycles (each group imports itself through the others):\n" + "\n".join(
        " <-> ".join(group) for group in found
    )


def test_the_cycle_finder_reports_a_cycle_through_a_function_level_import(tmp_path) -> None:
    (tmp_path / "a.py").write_text("import b\n")
    (tmp_path / "b.py").write_text("def f():\n    from a import x\n")
    known = {"a", "b"}

    graph = {name: imports_of(name, tmp_path / f"{name}.py", known) for name in known}

    assert cycles(graph) == [["a", "b"]]


def test_an_import_for_the_type_checker_only_is_no_edge(tmp_path) -> None:
    (tmp_path / "a.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import b\nelse:\n    import c\n"
    )
    known = {"a", "b", "c"}

    assert imports_of("a", tmp_path / "a.py", known) == {"c"}


def test_a_package_whose_modules_import_each_other_by_name_is_no_cycle(tmp_path) -> None:
    package = tmp_path / "p"
    package.mkdir()
    (package / "__init__.py").write_text("from p.b import B\n")
    (package / "a.py").write_text("A = 1\n")
    (package / "b.py").write_text("from p.a import A\nB = A\n")
    (package / "c.py").write_text("from p import B\n")  # the package's re-export: a real edge
    known = {"p", "p.a", "p.b", "p.c"}
    files = {"p": "__init__.py", "p.a": "a.py", "p.b": "b.py", "p.c": "c.py"}

    graph = {name: imports_of(name, package / files[name], known) for name in known}

    assert graph["p.b"] == {"p.a"}
    assert graph["p.c"] == {"p"}
    assert cycles(graph) == []
