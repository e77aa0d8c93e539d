"""The import graph of app/: no module imports one that imports it back, and the model code
never imports the web layer.

Every import counts, at any depth of a module (a function-level import is a cycle deferred,
not removed), read from the source with `ast`, so nothing is run.
"""

from __future__ import annotations

import ast
from pathlib import Path

APP = Path(__file__).resolve().parents[1] / "app"


def module_name(path: Path) -> str:
    parts = path.relative_to(APP.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The app modules `path` imports: `from app.x import y` counts as app.x.y when that is a
    module, else as app.x."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{up}.{base}" if base else up
            names = [f"{base}.{alias.name}" for alias in node.names]
            found.update(n for n in names if n in modules)
            if any(n not in modules for n in names):
                found.add(base)
    resolved = set()
    for target in found:
        while target and target not in modules:
            target = target.rpartition(".")[0]
        if target and target != name:
            resolved.add(target)
    return resolved


def import_graph() -> dict[str, set[str]]:
    paths = sorted(APP.rglob("*.py"))
    modules = {module_name(p) for p in paths}
    return {module_name(p): imports_of(p, modules) for p in paths}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]


def test_no_module_of_app_imports_one_that_imports_it_back():
    graph = import_graph()
    assert "app.lm.kind" in graph and "app.lm.config" in graph["app.lm.kind"]
    assert cycles(graph) == []


def test_the_model_code_never_imports_the_web_layer():
    graph = import_graph()
    for name, targets in graph.items():
        if name == "app.lm" or name.startswith("app.lm."):
            outside = {t for t in targets if not (t == "app.lm" or t.startswith("app.lm."))}
            assert all(t == "app.data" or t.startswith("app.data.") for t in outside), (
                f"{name} imports {sorted(outside)}")


# The floors of app/, from the ground up (README, Layout): a module imports its own floor or
# those below it, never one above. api and pages share a floor and never import each other.
LAYERS = [
    ("app.config", "app.lm", "app.data"),  # settings; the models, pure torch; the datasets
    ("app.store",),  # checkpoints, the registry of loaded models, training runs
    ("app.domain",),  # what every front end does with a model: parameters, cost, operations
    ("app.serving", "app.middleware"),  # the server process: model thread, batching, caches
    ("app.web",),  # what the API and the pages share: dependencies, templates, errors
    ("app.api", "app.pages"),  # the JSON API; the HTML pages
    ("app.main", "app.cli"),  # the app assembled; the command line
]


def floor(module: str) -> tuple[int, str]:
    for rank, names in enumerate(LAYERS):
        for name in names:
            if module == name or module.startswith(name + "."):
                return rank, name
    raise AssertionError(f"{module} is on no floor of LAYERS: add it")


def test_every_module_is_on_a_floor_and_imports_nothing_above_it():
    graph = {m: t for m, t in import_graph().items() if m != "app"}
    upward = [(m, t) for m, targets in graph.items() for t in targets
              if t != "app" and floor(t)[0] > floor(m)[0]]
    assert upward == []


def test_the_api_and_the_pages_never_import_each_other():
    graph = import_graph()
    across = [(m, t) for m, targets in graph.items() for t in targets
              if {floor(m)[1], floor(t)[1]} == {"app.api", "app.pages"}]
    assert across == []


def test_the_floor_check_finds_an_upward_import():
    assert floor("app.store.registry")[0] < floor("app.domain.cost")[0]
    assert floor("app.lm.base")[0] == floor("app.data")[0]
