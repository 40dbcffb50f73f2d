"""Layering rules (see ARCHITECTURE.md), checked on the source of every module.

The import graph is read with `ast` (imports inside functions count too), so a new
module is covered the day it is added; a few fresh interpreters then confirm the rules
at run time for the entry points.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "dicomtui"


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The dicomtui modules a file imports anywhere in it, function bodies included."""
    package = _module_name(path) if path.name == "__init__.py" else \
        _module_name(path).rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found |= {f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules
                      else base for alias in node.names}
    return found & modules


def _import_graph() -> dict[str, set[str]]:
    files = {_module_name(path): path for path in SRC.rglob("*.py")}
    return {name: _imports(path, set(files)) - {name} for name, path in files.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One shortest loop per module that can reach itself, each loop listed once."""
    loops, seen = [], set()
    for start in sorted(graph):
        path = _shortest_path(graph, start)
        if path and frozenset(path) not in seen:
            seen.add(frozenset(path))
            loops.append(path + [start])
    return loops


def _shortest_path(graph: dict[str, set[str]], start: str) -> list[str] | None:
    """The fewest imports that lead from start back to it (start first), or None."""
    came_from = {}
    frontier = [start]
    while frontier:
        nxt = []
        for node in frontier:
            for target in sorted(graph[node]):
                if target == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return path[::-1]
                if target not in came_from:
                    came_from[target] = node
                    nxt.append(target)
        frontier = nxt
    return None


def test_the_circle_finder_names_each_loop_once():
    graph = {"a": {"b"}, "b": {"c", "e"}, "c": {"a"}, "d": {"a"}, "e": {"f"}, "f": {"e"}}
    assert _cycles(graph) == [["a", "b", "c", "a"], ["e", "f", "e"]]


def test_no_module_of_dicomtui_imports_itself_in_a_circle():
    """Imports only go down, so each layer can be read, tested and moved on its own."""
    graph = _import_graph()
    assert "dicomtui.models" in graph and any(graph.values())
    loops = _cycles(graph)
    assert not loops, "import cycles:\n" + "\n".join(" -> ".join(loop) for loop in loops)


def _graph_with_externals() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Internal imports per module (importing a.b.c also runs a and a.b), and the
    top-level names of outside packages each module imports."""
    files = {_module_name(path): path for path in SRC.rglob("*.py")}
    internal, external = {}, {}
    for name, path in files.items():
        found = _imports(path, set(files)) - {name}
        for module in list(found):
            parts = module.split(".")
            found |= {".".join(parts[:n]) for n in range(1, len(parts))} & set(files)
        internal[name] = found - {name}
        external[name] = _outside_names(path)
    return internal, external


def _outside_names(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module.split(".")[0])
    return names - {"dicomtui"}


def _reach(module: str, internal: dict[str, set[str]]) -> set[str]:
    """Every dicomtui module that importing `module` may load."""
    seen, todo = {module}, [module]
    while todo:
        for target in internal[todo.pop()] - seen:
            seen.add(target)
            todo.append(target)
    return seen


INTERNAL, EXTERNAL = _graph_with_externals()
ENGINE_SIDE = sorted(m for m in INTERNAL if m.startswith((
    "dicomtui.service", "dicomtui.db", "dicomtui.dicom")) or m in (
    "dicomtui.models", "dicomtui.settings", "dicomtui.locations", "dicomtui.wording"))
CONSOLE = sorted(m for m in INTERNAL if m.startswith("dicomtui.tui"))
PURE = sorted(m for m in INTERNAL if m.startswith(("dicomtui.dicom", "dicomtui.db")))
FRONT_ENDS = ("dicomtui.tui", "dicomtui.cli", "dicomtui.control", "dicomtui.backend")
CAPABILITIES = ("receiving", "sites", "archive", "privacy", "shipping", "sending")


def _problems(modules, forbidden_outside=(), forbidden_inside=()) -> list[str]:
    problems = []
    for module in modules:
        reached = _reach(module, INTERNAL)
        outside = set().union(*(EXTERNAL[m] for m in reached))
        bad = sorted(outside & set(forbidden_outside)) + sorted(
            m for m in reached if m.startswith(tuple(forbidden_inside)))
        if bad:
            problems.append(f"{module} reaches {', '.join(bad)}")
    return problems


def test_the_layer_lists_are_not_empty():
    assert len(ENGINE_SIDE) > 50 and len(CONSOLE) > 30 and len(PURE) > 10


def test_the_engine_side_never_imports_textual_or_a_front_end():
    assert _problems(ENGINE_SIDE, ("textual", "rich"), FRONT_ENDS) == []


def test_the_console_sees_the_engine_only_through_the_backend():
    """tui/ reaches models, the Backend interface, wording and locations (where the
    console keeps its own preferences): never the engine, the DB layer, pynetdicom or
    TinyDB, nor another front end."""
    allowed = ("dicomtui.tui", "dicomtui.models", "dicomtui.backend.base",
               "dicomtui.backend", "dicomtui.wording", "dicomtui.locations", "dicomtui")
    for module in CONSOLE:
        reached = _reach(module, INTERNAL)
        assert sorted(m for m in reached if m != "dicomtui" and not m.startswith(
            allowed[:-1])) == [], module
        outside = set().union(*(EXTERNAL[m] for m in reached))
        assert not outside & {"pynetdicom", "tinydb"}, module


def test_dicom_and_db_never_import_pynetdicom():
    assert _problems(PURE, ("pynetdicom",), ("dicomtui.service",)) == []


def test_core_is_below_every_capability():
    """service/core is what components share: it never imports one of them."""
    core = [m for m in INTERNAL if m.startswith("dicomtui.service.core")]
    inside = tuple(f"dicomtui.service.{c}" for c in CAPABILITIES) + (
        "dicomtui.service.engine",)
    assert _problems(core, (), inside) == []


@pytest.mark.parametrize("module", ["dicomtui.service.engine", "dicomtui.control.daemon",
                                    "dicomtui.cli.receiver", "dicomtui.backend.local"])
def test_at_run_time_the_engine_side_loads_no_textual(module):
    assert not {"textual", "rich"} & _loaded_after_import(module)


def test_at_run_time_the_console_loads_no_engine():
    loaded = _loaded_after_import("dicomtui.tui.app")
    assert not {"pynetdicom", "tinydb"} & {n.split(".")[0] for n in loaded}
    assert not [n for n in loaded if n.startswith(("dicomtui.service", "dicomtui.db"))]


def _loaded_after_import(module: str) -> set[str]:
    code = f"import sys, {module}; print('\\n'.join(sys.modules))"
    return set(subprocess.run([sys.executable, "-c", code], capture_output=True,
                              text=True, check=True).stdout.split())
