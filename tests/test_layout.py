"""The package layout holds: no import cycle between bnsearch's modules, and a core without Optuna.

Every import counts, wherever it is written (module top, inside a function, under
``TYPE_CHECKING``): a cycle hidden behind a function-level import is still a cycle.
``python tests/test_layout.py`` lists the module graph's cycles.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "bnsearch"
CORE = "bnsearch.core"


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_files(root: Path = PACKAGE) -> dict[str, Path]:
    return {module_name(p, root): p for p in sorted(root.rglob("*.py"))}


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of the nodes inside ``if TYPE_CHECKING:`` blocks (annotation-only imports)."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            inside.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return inside


def imported_names(path: Path, name: str, *, run_time_only: bool = False) -> set[str]:
    """Every absolute module name that ``path`` (module ``name``) imports, relative imports resolved.

    ``run_time_only`` leaves out the imports under ``if TYPE_CHECKING:``.
    """
    is_package = path.name == "__init__.py"
    out: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    skip = _type_checking_nodes(tree) if run_time_only else set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            out.add(base)
            # ``from bnsearch.report import figures`` imports the submodule bnsearch.report.figures.
            out.update(f"{base}.{alias.name}" for alias in node.names)
    return out


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """Module → the package's modules it imports (only names that are modules of the package)."""
    files = module_files(root)
    return {name: {m for m in imported_names(path, name) if m in files and m != name} for name, path in files.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def _is_ancestor(package: str, module: str) -> bool:
    return module.startswith(package + ".")


def layout_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """The import graph without edges to a module's own parent packages: Python runs those
    ``__init__`` files before the module anyway, and a short ``__init__`` re-exports its modules."""
    return {a: {b for b in deps if not _is_ancestor(b, a)} for a, deps in import_graph(root).items()}


def test_no_import_cycles() -> None:
    found = cycles(layout_graph())
    assert not found, "import cycles between bnsearch modules:\n" + "\n".join(" ↔ ".join(c) for c in found)


def test_core_never_imports_optuna() -> None:
    """Not at run time: an annotation-only import under ``TYPE_CHECKING`` (``suggest(trial)``) is fine."""
    files = module_files()
    core = {name: path for name, path in files.items() if name == CORE or name.startswith(CORE + ".")}
    assert core, "bnsearch.core is missing"
    offenders = sorted(
        f"{name} imports {m}"
        for name, path in core.items()
        for m in imported_names(path, name, run_time_only=True)
        if m == "optuna" or m.startswith("optuna.")
    )
    assert not offenders, "the core must not import optuna: " + "; ".join(offenders)


def test_core_imports_nothing_above_it() -> None:
    """The core is the bottom layer: it may import itself, ``errors`` and ``keys``, nothing else."""
    allowed = {"bnsearch.errors", "bnsearch.keys"}
    offenders = sorted(
        f"{a} imports {b}"
        for a, deps in layout_graph().items()
        if a == CORE or a.startswith(CORE + ".")
        for b in deps
        if b not in allowed and not (b == CORE or b.startswith(CORE + "."))
    )
    assert not offenders, "; ".join(offenders)


def test_cycle_finder_sees_function_level_and_type_checking_imports(tmp_path: Path) -> None:
    pkg = tmp_path / "bnsearch"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from bnsearch.sub.a import A\n")
    (pkg / "sub" / "a.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..b import B\n")
    (pkg / "b.py").write_text("def f():\n    from bnsearch.sub import a\n")
    (pkg / "c.py").write_text("import bnsearch.b\n")
    assert cycles(layout_graph(pkg)) == [["bnsearch.b", "bnsearch.sub", "bnsearch.sub.a"]]
    assert imported_names(pkg / "sub" / "a.py", "bnsearch.sub.a", run_time_only=True) == {
        "typing",
        "typing.TYPE_CHECKING",
    }


@pytest.mark.parametrize("name", ["bnsearch.cli", "bnsearch.config", "bnsearch.samplers"])
def test_importing_the_cli_side_does_not_import_optuna_or_torch(name: str) -> None:
    """``bnsearch --help`` stays fast: the CLI, the config and the registry load neither."""
    import subprocess

    code = f"import sys, {name}; print(sorted(m for m in ('optuna', 'torch') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", f"importing {name} loads {out.strip()}"


def test_no_module_is_an_old_path_re_exporting_another() -> None:
    """A module whose only statements are ``from X import *`` is a leftover path: import X instead."""
    leftovers = []
    for name, path in module_files().items():
        body = [n for n in ast.parse(path.read_text(encoding="utf-8")).body if not isinstance(n, ast.Expr)]
        if body and all(isinstance(n, ast.ImportFrom) and any(a.name == "*" for a in n.names) for n in body):
            leftovers.append(name)
    assert not leftovers, f"modules that only re-export another: {leftovers}"


# Import paths the README, docs/ and the notebook show; user code written against them keeps working.
_DOCUMENTED_PATHS = [
    ("bnsearch", "run_search"),
    ("bnsearch", "load_trials"),
    ("bnsearch.analysis", "load_trials"),
    ("bnsearch.analysis", "learning_curves"),
    ("bnsearch.report", "build_report_data"),
    ("bnsearch.report", "write_report"),
    ("bnsearch.compare", "CompareConfig"),
    ("bnsearch.compare", "run_compare"),
    ("bnsearch.model_folder", "load_model"),
    ("bnsearch.model_folder", "predict"),
    ("bnsearch.report", "render_learning_curves"),
    ("bnsearch.report", "render_findings"),
    ("bnsearch.compare", "write_compare_html"),
    ("bnsearch.search", "run_search"),
    ("bnsearch.cli", "main"),
    ("bnsearch.cli", "app"),
]


@pytest.mark.parametrize(("module", "name"), _DOCUMENTED_PATHS, ids=[f"{m}.{n}" for m, n in _DOCUMENTED_PATHS])
def test_documented_import_paths_keep_working(module: str, name: str) -> None:
    import importlib

    assert callable(getattr(importlib.import_module(module), name))


# Optuna's private names bnsearch needs; they may be used in bnsearch/_optuna.py only.
_OPTUNA_PRIVATE = {
    "_storage",
    "_study_id",
    "_trial_id",
    "_stop_flag",
    "_thread_local",
    "_pop_waiting_trial_id",
}


def optuna_private_uses(path: Path) -> list[str]:
    """``line: what`` for each private Optuna module imported or private attribute used in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        modules: list[str] = []
        if isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            modules = [node.module or ""]
        for m in modules:
            if m.split(".")[0] == "optuna" and any(part.startswith("_") for part in m.split(".")):
                found.append(f"{node.lineno}: import {m}")
        if isinstance(node, ast.Attribute) and node.attr in _OPTUNA_PRIVATE:
            found.append(f"{node.lineno}: .{node.attr}")
        if isinstance(node, ast.FunctionDef) and node.name in _OPTUNA_PRIVATE:
            found.append(f"{node.lineno}: def {node.name}")
    return sorted(found, key=lambda hit: int(hit.split(":")[0]))


def test_optuna_private_api_only_in_its_adapter() -> None:
    uses = {
        name: hits
        for name, path in module_files().items()
        if name != "bnsearch._optuna" and (hits := optuna_private_uses(path))
    }
    assert not uses, f"Optuna's private API outside bnsearch/_optuna.py: {uses}"


def test_the_private_api_check_sees_each_kind_of_use(tmp_path: Path) -> None:
    sample = tmp_path / "m.py"
    sample.write_text(
        "from optuna.storages._heartbeat import x\n"
        "import optuna._imports\n"
        "s = study._storage\n"
        "class S:\n    def _pop_waiting_trial_id(self): ...\n"
    )
    assert [hit.split(": ")[1] for hit in optuna_private_uses(sample)] == [
        "import optuna.storages._heartbeat",
        "import optuna._imports",
        "._storage",
        "def _pop_waiting_trial_id",
    ]


if __name__ == "__main__":
    for cycle in cycles(layout_graph()):
        print(" ↔ ".join(cycle))
