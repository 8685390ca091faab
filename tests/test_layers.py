"""The floors of the code (CONTRIBUTING.md), read from the import statements of every module.

Bottom: the model, labels and hooks (with what they need); above them the interventions, scoring,
directions, data sources and tasks; then experiments, evaluation and retrieval; then ``analyses/``;
on top ``lens_focus.commands`` (and ``lens_focus.__main__``, its entry for ``python -m lens_focus``).
A module imports only downward, and nothing imports in a circle.
"""
import ast
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def modules() -> dict[str, Path]:
    out = {}
    for root, package in ((REPO / "lens_focus", "lens_focus"), (REPO / "analyses", "lens_focus.analyses")):  # analyses/ installs as lens_focus.analyses
        for path in root.rglob("*.py"):
            parts = path.relative_to(root).with_suffix("").parts
            out[".".join((package, *(parts[:-1] if parts[-1] == "__init__" else parts)))] = path
    return out


MODULES = modules()


def imported(name: str, node: ast.Import | ast.ImportFrom) -> set[str]:
    """The project modules an import statement of module ``name`` loads."""
    if isinstance(node, ast.Import):
        return {a.name for a in node.names if a.name in MODULES}
    package = name if MODULES[name].name == "__init__.py" else name.rpartition(".")[0]
    base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
    target = ".".join(base + ([node.module] if node.module else []))
    return {m for m in [target, *(f"{target}.{a.name}" for a in node.names)] if m in MODULES}


@cache
def graph(*, inside_functions: bool) -> dict[str, set[str]]:
    """Module → the project modules it imports: at module level, or only inside functions."""
    out = {}
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text())
        top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        every = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
        nodes = [n for n in every if n not in top] if inside_functions else every
        out[name] = set().union(*(imported(name, n) for n in nodes)) - {name}
    return out


def below(roots: set[str], g: dict[str, set[str]]) -> set[str]:
    """Every module that ``roots`` load, directly or not (a package's ``__init__`` loading its own
    submodules does not count as the submodule's dependency)."""
    seen, todo = set(), list(roots)
    while todo:
        m = todo.pop()
        for d in g[m]:
            if d not in seen:
                seen.add(d)
                todo.append(d)
    return seen


def test_the_graph_reader_finds_known_imports():
    g = graph(inside_functions=False)
    assert "lens_focus.sources" in g["lens_focus.tasks"] and "lens_focus.data.base" in g["lens_focus.sources"]
    assert "lens_focus.plots" in g["lens_focus.analyses"] and "lens_focus.analyses.index" in g["lens_focus.commands.reproduce"]


def test_no_module_imports_in_a_circle():
    g = {m: {d for d in deps if not d.startswith(m + ".")} for m, deps in graph(inside_functions=False).items()}
    circles = [m for m in g if m in below({m}, g)]
    assert not circles, f"modules that import themselves through others: {sorted(circles)}"


@pytest.mark.parametrize(
    "floor, above",
    [
        ("lens_focus.model lens_focus.labels lens_focus.hooks",
         "lens_focus.interventions lens_focus.scoring lens_focus.directions lens_focus.sources lens_focus.tasks "
         "lens_focus.experiments lens_focus.evaluation lens_focus.retrieval lens_focus.answers lens_focus.data"),
        ("lens_focus.data.base lens_focus.data.facts lens_focus.data.helmet lens_focus.data.kv_retrieval "
         "lens_focus.data.lost_in_the_middle lens_focus.data.needle lens_focus.data.recall",
         "lens_focus.toy lens_focus.toy.task lens_focus.sources lens_focus.tasks lens_focus.model"),
        ("lens_focus.interventions lens_focus.scoring lens_focus.directions lens_focus.sources lens_focus.tasks",
         "lens_focus.experiments lens_focus.evaluation lens_focus.retrieval"),
        (" ".join(m for m in MODULES if not m.startswith(("lens_focus.commands", "lens_focus.analyses")) and m not in ("lens_focus", "lens_focus.__main__")),
         "lens_focus.analyses lens_focus.commands"),
        (" ".join(m for m in MODULES if m.startswith("lens_focus.analyses")), "lens_focus.commands"),
    ],
    ids=["model-labels-hooks", "data", "interventions-scoring-sources", "library", "analyses"],
)
def test_modules_import_only_downward(floor, above):
    g = graph(inside_functions=False)
    for name in floor.split():
        loads = below({name}, g) | graph(inside_functions=True)[name]
        upward = sorted(m for m in loads if any(m == a or m.startswith(a + ".") for a in above.split()))
        assert not upward, f"{name} imports from a floor above it: {upward}"


def test_project_imports_sit_at_module_top():
    inner = {m: sorted(d) for m, d in graph(inside_functions=True).items() if d}
    assert inner == {}, f"imports of project modules inside functions: {inner}"
