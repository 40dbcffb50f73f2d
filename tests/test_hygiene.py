"""Layering rules (see ARCHITECTURE.md), checked in fresh interpreters and in the source."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

CORE = ["dicomtui.service.engine", "dicomtui.control.daemon", "dicomtui.service.sender",
        "dicomtui.db.storage", "dicomtui.db.txlog", "dicomtui.db.writer",
        "dicomtui.backend.local", "dicomtui.backend.remote", "dicomtui.control.server",
        "dicomtui.cli", "dicomtui.cli.sites", "dicomtui.service.sites",
        "dicomtui.cli.privacy", "dicomtui.service.privacy", "dicomtui.service.restore",
        "dicomtui.cli.uploads", "dicomtui.service.shipping",
        "dicomtui.service.upload_worker", "dicomtui.service.studies",
        "dicomtui.dicom.matching", "dicomtui.service.archive_index",
        "dicomtui.service.reindex", "dicomtui.service.retention",
        "dicomtui.service.destinations", "dicomtui.service.jobs",
        "dicomtui.service.query", "dicomtui.service.archive",
        "dicomtui.cli.archive", "dicomtui.cli.archive_views", "dicomtui.service.archive",
        "dicomtui.service.qr_handlers", "dicomtui.cli.receiver", "dicomtui.cli.connect",
        "dicomtui.wording"]
PURE = ["dicomtui.dicom.identify", "dicomtui.dicom.layout", "dicomtui.dicom.paths",
        "dicomtui.dicom.filemeta", "dicomtui.dicom.aetitle", "dicomtui.dicom.synthetic",
        "dicomtui.db.storage", "dicomtui.db.txlog", "dicomtui.db.writer",
        "dicomtui.settings", "dicomtui.db.snapshot_table", "dicomtui.dicom.anonymize",
        "dicomtui.dicom.deid_profile", "dicomtui.db.sealed", "dicomtui.service.anonmap",
        "dicomtui.service.anonymizer", "dicomtui.service.phi", "dicomtui.service.restore",
        "dicomtui.service.upload_client", "dicomtui.service.upload_queue",
        "dicomtui.service.upload_worker", "dicomtui.service.studies",
        "dicomtui.service.zipper"]


def _loaded_after_import(module: str) -> set[str]:
    code = f"import sys, {module}; print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    return {name.split(".")[0] for name in out.split()}


@pytest.mark.parametrize("module", CORE)
def test_core_never_imports_textual(module):
    loaded = _loaded_after_import(module)
    assert "textual" not in loaded and "rich" not in loaded


@pytest.mark.parametrize("module", PURE)
def test_pure_layers_never_import_pynetdicom(module):
    assert "pynetdicom" not in _loaded_after_import(module)


ENGINE = ["dicomtui.service.engine", "dicomtui.service.sender", "dicomtui.db.txlog",
          "dicomtui.dicom.identify", "dicomtui.service.sites", "dicomtui.service.access",
          "dicomtui.service.facilities", "dicomtui.service.privacy",
          "dicomtui.service.anonmap", "dicomtui.service.restore", "dicomtui.service.phi",
          "dicomtui.service.shipping", "dicomtui.service.upload_worker",
          "dicomtui.service.archive", "dicomtui.service.archive_index",
          "dicomtui.service.query", "dicomtui.service.qr_handlers",
          "dicomtui.service.reindex", "dicomtui.service.retention",
          "dicomtui.service.destinations", "dicomtui.service.jobs"]


@pytest.mark.parametrize("module", ENGINE)
def test_engine_layers_never_import_front_ends(module):
    code = f"import sys, {module}; print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    upward = [m for m in out if m.startswith(("dicomtui.backend", "dicomtui.control",
                                              "dicomtui.cli"))]
    assert upward == []


TUI = ["dicomtui.tui.app", "dicomtui.tui.screens.status", "dicomtui.tui.screens.log",
       "dicomtui.tui.screens.settings", "dicomtui.tui.dialogs", "dicomtui.tui.filters",
       "dicomtui.tui.screens.facilities", "dicomtui.tui.screens.access",
       "dicomtui.tui.forms", "dicomtui.tui.screens.anonymization",
       "dicomtui.tui.screens.uploads", "dicomtui.tui.screens.upload_rows",
       "dicomtui.tui.screens.upload_dialogs", "dicomtui.tui.jobs",
       "dicomtui.tui.screens.studies", "dicomtui.tui.screens.series",
       "dicomtui.tui.screens.study_rows", "dicomtui.tui.screens.study_dialogs",
       "dicomtui.tui.screens.study_search", "dicomtui.tui.screens.storage",
       "dicomtui.tui.screens.storage_rows", "dicomtui.tui.screens.storage_dialogs"]


@pytest.mark.parametrize("module", TUI)
def test_console_sees_the_engine_only_through_the_backend(module):
    """tui/ never loads pynetdicom, TinyDB, or the engine and DB layers."""
    code = f"import sys, {module}; print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert not {"pynetdicom", "tinydb"} & {name.split(".")[0] for name in out}
    assert [m for m in out if m.startswith(("dicomtui.service", "dicomtui.db"))] == []


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
