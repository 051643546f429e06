"""The package's structure (docs/ARCHITECTURE.md): no import cycle, single homes of names."""

from __future__ import annotations

import ast
import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def _modules() -> dict[str, Path]:
    mods = {}
    for path in SRC.rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


def _imports(name: str, path: Path, mods: dict[str, Path]) -> set[str]:
    """Modules of the package ``name`` imports anywhere (function-level imports too)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in mods]
            # ``from pkg import submodule`` imports the submodule, not the package's names.
            found = subs if len(subs) == len(node.names) else [target, *subs]
        elif isinstance(node, ast.Import):
            found = [a.name for a in node.names]
        else:
            continue
        out.update(m for m in found if m in mods and m != name)
    return out


def import_cycles() -> list[list[str]]:
    """Strongly connected components of more than one module in the import graph."""
    mods = _modules()
    graph = {name: _imports(name, path, mods) for name, path in mods.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

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
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def test_no_import_cycle():
    assert import_cycles() == []


def _string_constants(tree: ast.AST) -> list[str]:
    """Every string literal of a module except docstrings (f-string parts included)."""
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docstrings.add(id(body[0].value))
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
    ]


def test_model_file_names_live_in_model_folder_only():
    """src/ and the bench/ scripts name a model folder's files through model_folder only."""
    names = re.compile(r"(?<![\w.])(config\.json|model\.safetensors|model(\.int8)?\.onnx)\b")
    scripts = [*SRC.rglob("*.py"), *(SRC.parent / "bench").rglob("*.py")]
    found = [
        f"{path.relative_to(SRC.parent)}: {text!r}"
        for path in scripts
        if path.name != "model_folder.py"
        for text in _string_constants(ast.parse(path.read_text()))
        if names.search(text)
    ]
    assert found == []


def test_design_citations_point_at_docs_in_the_repository():
    """Sources cite docs/*.md files that exist, never a design file outside the repository."""
    root = SRC.parent
    cited = {
        (path.relative_to(SRC), doc)
        for path in SRC.rglob("*.py")
        for doc in re.findall(r"docs/[\w.-]+\.md", path.read_text())
    }
    missing = [f"{src}: {doc}" for src, doc in sorted(cited) if not (root / doc).is_file()]
    outside = [str(p.relative_to(SRC)) for p in SRC.rglob("*.py") if "DESIGN.md" in p.read_text()]
    assert cited and missing == [] and outside == []
