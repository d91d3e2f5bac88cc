"""The import graph: front ends -> API -> core; capabilities -> core; never back up, never sideways.

Read from the source with ``ast`` (imports inside functions count too), so a lazy import cannot hide a
dependency that points the wrong way.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "lakeql"
CAPABILITIES = ("joins", "vectors", "ngrams", "context")
FRONT_ENDS = ("cli", "shell", "sqlrun", "completion", "demo", "doctor", "mcp", "__main__")
API = ("api",)


def module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "package"
    head = parts[1]
    if head in CAPABILITIES:
        return f"capability:{head}"
    if head in FRONT_ENDS:
        return "front"
    if head in API:
        return "api"
    return "core"


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("lakeql")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.startswith("lakeql"):
                out.add(node.module)
                out |= {f"{node.module}.{a.name}" for a in node.names
                        if (PKG.parent / f"{node.module}.{a.name}".replace(".", "/")).exists()
                        or (PKG.parent / (f"{node.module}.{a.name}".replace(".", "/") + ".py")).exists()}
    return out


EDGES = sorted((module_name(p), dep) for p in PKG.rglob("*.py") for dep in imports(p))
ALLOWED = {
    "core": {"core"},
    "api": {"core", "api"},
    "front": {"core", "api", "front", "capability"},  # front ends may call a capability's public API
}


@pytest.mark.parametrize("src, dep", EDGES, ids=[f"{s}->{d}" for s, d in EDGES])
def test_imports_point_down(src: str, dep: str) -> None:
    a, b = layer(src), layer(dep)
    if a == "package" or b == "package":
        return  # lakeql/__init__.py is the public entry point: it forwards to the API lazily
    if a.startswith("capability:"):
        assert b == "core" or b == a, f"{src} (a capability) imports {dep} ({b})"
    else:
        assert b.split(":")[0] in ALLOWED[a], f"{src} ({a}) imports {dep} ({b})"


def test_graph_was_read() -> None:
    assert len(EDGES) > 100
