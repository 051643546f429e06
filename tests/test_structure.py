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
    """src/ and the bench/ scripts name a model folder's files through models/folder.py only."""
    names = re.compile(r"(?<![\w.])(config\.json|model\.safetensors|model(\.int8)?\.onnx)\b")
    scripts = [*SRC.rglob("*.py"), *(SRC.parent / "bench").rglob("*.py")]
    found = [
        f"{path.relative_to(SRC.parent)}: {text!r}"
        for path in scripts
        if path != SRC / "emodistill" / "models" / "folder.py"
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


#: The packages from the bottom up (docs/ARCHITECTURE.md). A module may import its own package
#: and the packages of lower layers; packages on one layer do not import each other. The root
#: (the lazy public API) and ``__main__`` are above everything.
LAYERS = [
    {"util"},
    {"config", "audio"},
    {"models"},
    {"corpora", "inference"},
    {"features"},
    {"runs"},
    {"evaluation"},
    {"training"},
    {"service"},
    {"cli"},
    {"", "__main__"},
]


def _package(module: str) -> str:
    """``emodistill.models.encoders.base`` -> ``models``; the root package -> ``""``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def upward_imports() -> list[str]:
    """Every import from a module to a package on its own or a higher layer (but its own)."""
    layer = {pkg: i for i, pkgs in enumerate(LAYERS) for pkg in pkgs}
    mods = _modules()
    bad = []
    for name, path in sorted(mods.items()):
        src = _package(name)
        for target in sorted(_imports(name, path, mods)):
            dst = _package(target)
            if dst != src and layer[dst] >= layer[src]:
                bad.append(f"{name} -> {target}")
    return bad


def test_every_package_has_a_layer():
    """A new package must be given its place in LAYERS (and in docs/ARCHITECTURE.md)."""
    layered = {pkg for pkgs in LAYERS for pkg in pkgs}
    assert {_package(name) for name in _modules()} <= layered


def test_imports_only_go_down_the_layers():
    assert upward_imports() == []


def test_only_the_public_api_at_the_top():
    """Everything but the lazy public API (and ``python -m emodistill``) lives in a package."""
    top = sorted(p.name for p in (SRC / "emodistill").glob("*.py"))
    assert top == ["__init__.py", "__main__.py"]


def test_no_module_over_450_lines():
    long = {
        str(path.relative_to(SRC)): n
        for path in SRC.rglob("*.py")
        if (n := len(path.read_text().splitlines())) > 450
    }
    assert long == {}


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    """Calls of ``name`` or ``<anything>.name`` in ``tree``."""
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and (
            (isinstance(node.func, ast.Name) and node.func.id == name)
            or (isinstance(node.func, ast.Attribute) and node.func.attr == name)
        )
    ]


def _sources(*skip: str) -> dict[str, ast.AST]:
    """Every module of src/ but ``skip`` (paths relative to src/emodistill), parsed."""
    root = SRC / "emodistill"
    return {
        str(path.relative_to(root)): ast.parse(path.read_text())
        for path in sorted(root.rglob("*.py"))
        if str(path.relative_to(root)) not in skip
    }


def test_json_files_are_read_through_read_json():
    """util/files.read_json is the one reader of a JSON file (json.loads of a string stays)."""
    found = []
    for name, tree in _sources("util/files.py").items():
        for call in _calls(tree, "load"):
            if isinstance(call.func, ast.Attribute) and ast.unparse(call.func.value) == "json":
                found.append(f"{name}:{call.lineno} json.load")
        for call in _calls(tree, "loads"):
            if _calls(call, "read_text") or _calls(call, "read_bytes"):
                found.append(f"{name}:{call.lineno} json.loads(... .read_text())")
            if any(
                isinstance(n, ast.Call) and ast.unparse(n.func) == "open" for n in ast.walk(call)
            ):
                found.append(f"{name}:{call.lineno} json.loads(open(...))")
    assert found == []


def test_folds_come_from_a_config_through_config_folds():
    """Only corpora/splits.py calls make_folds (config_folds: the one place a config's folds:
    section becomes folds; the CLI's --scheme/--groups options override a FoldConfig)."""
    found = [
        f"{name}:{call.lineno}"
        for name, tree in _sources("corpora/splits.py").items()
        for call in _calls(tree, "make_folds")
    ]
    assert found == []


#: Names of files and folders inside a run folder: only runs/layout.py joins them onto a path.
RUN_NAMES = {
    "teachers", "student", "student_train", "variants", "seeds", "outputs", "train", "folds",
    "checkpoints", "logs", "probe", ".prefix-cache", "best.ckpt", "last.ckpt", "results.json",
    "report.md", "confusion.png", "curves.png", "predictions.json", "teaching.json",
    "teachers.json", "metrics.json", "result.json", "probe.json", "probe.png", "baseline.json",
    "labels.json", "metrics.csv",
}  # fmt: skip


def test_run_folder_paths_live_in_runs_layout_only():
    """No ``path / "student"`` (or any other run-folder name) outside runs/layout.py."""
    found = [
        f"{name}:{node.lineno} / {node.right.value!r}"
        for name, tree in _sources("runs/layout.py").items()
        for node in ast.walk(tree)
        if isinstance(node, ast.BinOp)
        and isinstance(node.op, ast.Div)
        and isinstance(node.right, ast.Constant)
        and node.right.value in RUN_NAMES
    ]
    assert found == []
