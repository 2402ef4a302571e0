"""The import graph keeps the design: no cycles, no upward imports, the Nevers of design.md.

The graph is built from the AST of every module of the package, so imports inside functions and
under ``TYPE_CHECKING`` count as much as top-level ones. The checking functions are pure and are
also run on synthetic graphs, so each rule is shown to fail when it is broken.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "exporter" / "trtc_exporter"
ROOT = "trtc_exporter"
Graph = dict[str, set[str]]

# Rank of each part, lowest first: a module may import modules of its own rank or lower.
# Shared modules sit at the bottom; runtime.py holds the running config, so it sits above config.
SHARED = {"", "allocator", "clock", "secret", "durations", "yamlload", "jsonload", "textfile",
          "errors", "target", "generations", "response", "metrics", "logsetup", "signals"}
RANKS = {"config": 1, "runtime": 1.5, "api": 2, "targets": 2, "polling": 3, "exposition": 4,
         "web": 5, "checks": 6, "app": 6.5, "demo": 7,
         # the check command: start-up checks, then real signed requests through api/
         "onlinecheck": 7, "cli": 8, "__main__": 9, "simulator": 2.5,
         # webhook parses and judges callbacks on shared modules alone; its effects reach the
         # targets and state through a sink that app implements
         "webhook": 2,
         # coordination shares the budget, targets and state in Redis: it builds on those parts
         # and app plugs it into them
         "coordination": 3.5}
SIMULATOR_EXCEPTION = "trtc_exporter.demo"  # the documented way --demo embeds the simulator
FORBIDDEN = {  # importer part -> module prefixes it must never import
    "web": ("trtc_exporter.api.",),
    "exposition": ("trtc_exporter.api.client", "trtc_exporter.api.signing",
                   "trtc_exporter.api.credentials"),
    "webhook": ("trtc_exporter.api.",),
    "coordination": ("trtc_exporter.api.client", "trtc_exporter.api.signing"),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_graph() -> Graph:
    """Every module of the package and the package modules it imports (anywhere in its AST)."""
    paths = sorted(PACKAGE.rglob("*.py"))
    known = {module_name(p) for p in paths}
    graph: Graph = {}
    for path in paths:
        name = module_name(path)
        is_package = path.name == "__init__.py"
        graph[name] = {t for t in _imports(ast.parse(path.read_text()), name, is_package, known)
                       if t != name}
    return graph


def _imports(tree: ast.AST, name: str, is_package: bool, known: set[str]) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in known}
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, name, is_package)
            for alias in node.names:
                child = f"{base}.{alias.name}"
                if child in known:
                    found.add(child)  # from trtc_exporter.web import registration
                elif base in known:
                    found.add(base)
    return found


def _absolute(node: ast.ImportFrom, name: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    parts = name.split(".") if is_package else name.split(".")[:-1]
    parts = parts[: len(parts) - node.level + 1]
    return ".".join(parts + ([node.module] if node.module else []))


def part_of(module: str) -> str:
    """The part a module belongs to: its first component below the package."""
    rest = module.removeprefix(ROOT).removeprefix(".")
    return rest.split(".")[0]


def rank(module: str) -> float:
    part = part_of(module)
    return 0 if part in SHARED else RANKS[part]


def find_cycles(graph: Graph) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def violations(graph: Graph) -> list[str]:
    """Every import that breaks a rule, as ``importer -> imported: rule``."""
    out = []
    for importer, targets in sorted(graph.items()):
        for imported in sorted(targets):
            out += [f"{importer} -> {imported}: {why}" for why in _broken(importer, imported)]
    return out


def _broken(importer: str, imported: str) -> list[str]:
    rules = []
    source_part, target_part = part_of(importer), part_of(imported)
    if rank(imported) > rank(importer):
        rules.append("upward import")
    for prefix in FORBIDDEN.get(source_part, ()):
        if imported == prefix.rstrip(".") or imported.startswith(prefix):
            rules.append(f"{source_part} must not import {prefix.rstrip('.')}")
    if target_part == "simulator" and source_part != "simulator" and \
            importer != SIMULATOR_EXCEPTION:
        rules.append("the product never imports the simulator (except demo.py)")
    return rules


def test_the_package_graph_is_found() -> None:
    """The graph covers every part, and sees imports made inside functions."""
    graph = package_graph()
    assert {part_of(m) for m in graph} >= {"config", "api", "polling", "targets", "exposition",
                                           "web", "simulator", "app", "cli", "demo"}
    assert "trtc_exporter.demo" in graph["trtc_exporter.cli"]  # a function-level import


def test_every_part_has_a_rank() -> None:
    """A new top-level module or folder must be placed in the layering on purpose."""
    assert {part_of(m) for m in package_graph()} <= SHARED | set(RANKS)


def test_the_package_has_no_import_cycles() -> None:
    """No module reaches itself through imports, including function-level ones."""
    assert find_cycles(package_graph()) == []


def test_the_package_keeps_the_layering_and_the_nevers() -> None:
    """No upward imports; web never imports api; exposition never the client or signing;
    only demo.py imports the simulator."""
    assert violations(package_graph()) == []


@pytest.mark.parametrize(("graph", "expected"), [
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
    ({"a": {"b"}, "b": set()}, []),
])
def test_find_cycles_on_synthetic_graphs(graph: Graph, expected: list[list[str]]) -> None:
    """A three-module loop is reported; a chain is not."""
    assert find_cycles(graph) == expected


@pytest.mark.parametrize(("importer", "imported", "rule"), [
    ("trtc_exporter.web.routes", "trtc_exporter.api.budget", "web must not import"),
    ("trtc_exporter.exposition.tasks", "trtc_exporter.api.signing", "exposition must not"),
    ("trtc_exporter.polling.poller", "trtc_exporter.cli", "upward import"),
    ("trtc_exporter.config.model", "trtc_exporter.app", "upward import"),
    ("trtc_exporter.app", "trtc_exporter.simulator.server", "never imports the simulator"),
])
def test_violations_on_synthetic_graphs(importer: str, imported: str, rule: str) -> None:
    """Each rule reports a synthetic import that breaks it."""
    found = violations({importer: {imported}, imported: set()})
    assert any(rule in line for line in found), found


def test_allowed_imports_on_a_synthetic_graph() -> None:
    """Downward imports and the demo's simulator import are not reported."""
    graph = {"trtc_exporter.web.routes": {"trtc_exporter.exposition.tasks"},
             "trtc_exporter.demo": {"trtc_exporter.simulator.server", "trtc_exporter.app"},
             "trtc_exporter.exposition.tasks": {"trtc_exporter.polling.state"}}
    assert violations(graph) == []
