"""The layer order of docs/architecture.md, held against every import in selfsup/ (those inside functions too)."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "selfsup"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str) -> set[str]:
    """The selfsup modules ``name`` imports anywhere in its file: ``from a.b import c`` is ``a.b.c`` when that
    is a module, else ``a.b``; relative imports are resolved."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([node.module] if node.module else []))
            found |= {f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names}
    return {m for m in found if m in MODULES and m != name}


GRAPH = {name: imports_of(name) for name in MODULES}


def floors() -> dict[str, int]:
    """``{top-level part: floor}`` from the ```floors block of docs/architecture.md (one floor a line, bottom first)."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    block = re.search(r"```floors\n(.*?)```", text, re.S)
    assert block, "docs/architecture.md has no ```floors block"
    out = {}
    for i, line in enumerate(text for text in block.group(1).splitlines() if text.strip()):
        for part in line.split("#")[0].split():
            out[part.rstrip("/").removesuffix(".py")] = i
    return out


def part_of(module: str) -> str:
    """``selfsup.eval.knn`` -> ``eval``; ``selfsup.config`` -> ``config``; ``selfsup`` -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_part_of_the_package_has_a_floor():
    missing = sorted({part_of(m) for m in MODULES} - set(floors()))
    assert not missing, f"docs/architecture.md's floors do not place {missing}"


def test_imports_only_go_down():
    floor = floors()
    upward = [f"{a} (floor {floor[part_of(a)]}) imports {b} (floor {floor[part_of(b)]})"
              for a, targets in GRAPH.items() for b in sorted(targets) if floor[part_of(b)] > floor[part_of(a)]]
    assert not upward, "imports that go up:\n" + "\n".join(upward)


def test_no_import_circle():
    """Depth-first search over module -> module edges; a back edge is a circle."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(GRAPH[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (circle := visit(nxt)):
                return circle
        state[node] = 2
        path.pop()
        return None

    for name in sorted(GRAPH):
        if name not in state and (circle := visit(name)):
            pytest.fail("import circle: " + " -> ".join(circle))


def test_the_walk_sees_imports_inside_functions(tmp_path):
    """The checks above are only as good as the walk: an import inside a function body must be an edge."""
    assert "selfsup.runs.evaluate" in GRAPH["selfsup.cli"]  # cli imports it inside a function
