"""Every public class and function of the package carries a docstring (style guide: shapes,
units, errors and the source of each fact).

Read from the AST, so nothing is imported. Public means: a module-level class or function, or a
method of a public class, whose name does not start with ``_``. Nested functions are local
helpers, not API. Exclusions, each with its reason:

- names starting with ``_`` (private helpers and every dunder: ``__init__``'s parameters are
  described by its class's docstring, other dunders keep the data model's documented meaning);
- ``do_<VERB>`` methods of HTTP request handlers: ``BaseHTTPRequestHandler`` calls them by the
  request method's name, they only dispatch, and each endpoint they reach is documented where
  it is implemented (``web/routes.py``'s handler methods) and in docs/.

Run ``pytest tests/test_docstrings.py`` to list what lacks one.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "exporter" / "trtc_exporter"
Definition = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef


def _excluded(node: Definition, in_class: bool) -> bool:
    """True for a name the rule does not cover (see the module docstring for the reasons)."""
    if node.name.startswith("_"):
        return True
    return in_class and not isinstance(node, ast.ClassDef) and node.name.startswith("do_")


def undocumented(source: str, module: str) -> list[str]:
    """``module:line name`` of each public definition in ``source`` without a docstring."""
    missing: list[str] = []

    def walk(parent: ast.AST, prefix: str, in_class: bool) -> None:
        for node in ast.iter_child_nodes(parent):
            if not isinstance(node, Definition) or _excluded(node, in_class):
                continue
            if ast.get_docstring(node) is None:
                missing.append(f"{module}:{node.lineno} {prefix}{node.name}")
            if isinstance(node, ast.ClassDef):
                walk(node, f"{prefix}{node.name}.", True)

    walk(ast.parse(source), "", False)
    return missing


def test_every_public_definition_has_a_docstring() -> None:
    """No public class, function or method of the package lacks a docstring."""
    missing = [
        line
        for path in sorted(PACKAGE.rglob("*.py"))
        for line in undocumented(path.read_text(encoding="utf-8"),
                                 str(path.relative_to(PACKAGE)))
    ]
    assert not missing, "public definitions without a docstring:\n" + "\n".join(missing)


def test_the_check_finds_a_missing_docstring() -> None:
    """An undocumented public function, class and method are each reported."""
    source = "def f():\n    pass\n\nclass C:\n    def m(self):\n        pass\n"
    assert undocumented(source, "m.py") == ["m.py:1 f", "m.py:4 C", "m.py:5 C.m"]


def test_the_check_keeps_its_exclusions() -> None:
    """Private names, dunders, handler do_* methods, members of private classes and nested
    functions are not reported; a module-level do_* function is."""
    source = (
        '"""Module."""\n'
        "def _helper():\n    pass\n\n"
        'class H:\n    """Handler."""\n'
        "    def __init__(self):\n        pass\n"
        "    def do_GET(self):\n        pass\n\n"
        "class _Private:\n    def public(self):\n        pass\n\n"
        'def outer():\n    """Outer."""\n    def inner():\n        pass\n\n'
        "def do_this():\n    pass\n"
    )
    assert [line.split(" ", 1)[1] for line in undocumented(source, "m.py")] == ["do_this"]
