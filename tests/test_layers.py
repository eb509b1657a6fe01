"""ARCHITECTURE.md's dependency rules, checked by walking every import with `ast`, so that
they cannot silently stop being true.

The rules (ARCHITECTURE.md, "Dependencies"):
1. Layers point one way: experiments -> trainables -> policies -> envs. A module imports
   from its own package or a lower one, never a higher one.
2. policies never import envs' benchmarks, evaluators or the env itself (a controller is
   built from observation shapes, not from what scores them).
3. envs never import RLlib or Tune, and import `ray` only inside functions (it never starts
   Ray; the evaluator client connects lazily).
4. envs.spaces is the bottom of envs: it imports nothing of the package but errors and
   settings.
5. No import cycles between modules, counting imports inside functions (a lazy import that
   closes a cycle is still two modules that need each other); imports under
   `if TYPE_CHECKING:` do not run and do not count.
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = {"envs": 0, "policies": 1, "trainables": 2, "experiments": 3}
POLICIES_MAY_NOT = ("dsmnas.envs.benchmarks", "dsmnas.envs.evaluators", "dsmnas.envs.dsm_env",
                    "dsmnas.envs.registry")
SPACES_MAY_IMPORT = ("dsmnas.envs.spaces", "dsmnas.envs.errors", "dsmnas.envs.settings")


def modules(root: Path) -> dict[str, Path]:
    """Module name -> file of every module of the four packages under `root`."""
    out = {}
    for package in LAYERS:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out["dsmnas." + ".".join(parts)] = path
    return out


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of the nodes inside `if TYPE_CHECKING:` blocks."""
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                skip.update(id(n) for n in ast.walk(child))
    return skip


def imports(path: Path) -> list[tuple[str, int, bool]]:
    """(imported module, line, inside a function) of every import in `path` that runs."""
    tree = ast.parse(path.read_text(), str(path))
    skip = _type_checking_nodes(tree)
    lazy = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            lazy.update(id(n) for n in ast.walk(node) if n is not node)
    out = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno, id(node) in lazy) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from pkg import name` imports pkg.name when that is a module, else pkg
            out += [(f"{node.module}.{a.name}", node.lineno, id(node) in lazy) for a in node.names]
    return out


def _owner(name: str, known: dict[str, Path]) -> str | None:
    """The project module that importing `name` runs (its longest known prefix)."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def violations(root: Path) -> list[str]:
    """Every broken rule of the module docstring, as 'file:line: what'."""
    known = modules(root)
    found: list[str] = []
    graph: dict[str, set[str]] = {m: set() for m in known}
    for module, path in known.items():
        where = path.relative_to(root)
        layer = module.split(".")[1]
        for name, line, lazy in imports(path):
            target = _owner(name, known) if name.startswith("dsmnas.") else None
            if target is not None and target != module:
                graph[module].add(target)
                other = target.split(".")[1]
                if LAYERS[other] > LAYERS[layer]:
                    found.append(f"{where}:{line}: {layer} imports {target} (a higher layer)")
                if layer == "policies" and target.startswith(POLICIES_MAY_NOT):
                    found.append(f"{where}:{line}: policies import {target}")
                if module.startswith("dsmnas.envs.spaces") and not target.startswith(SPACES_MAY_IMPORT):
                    found.append(f"{where}:{line}: envs.spaces imports {target}")
            if layer == "envs" and (name.startswith(("ray.rllib", "ray.tune"))
                                    or (name.split(".")[0] == "ray" and not lazy)):
                what = "RLlib/Tune" if name.startswith(("ray.rllib", "ray.tune")) else "ray at import"
                found.append(f"{where}:{line}: envs imports {what} ({name})")
    for cycle in _cycles(graph):
        found.append("import cycle: " + " -> ".join([*cycle, cycle[0]]))
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each as a list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

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
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_tree_keeps_architecture_md_rules():
    assert violations(ROOT) == []


def test_pyproject_lists_every_package():
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {"dsmnas"} | {m for m, p in modules(ROOT).items() if p.name == "__init__.py"}
    assert listed == on_disk


def _copy_tree(tmp_path: Path) -> Path:
    for package in LAYERS:
        shutil.copytree(ROOT / package, tmp_path / package,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return tmp_path


def _append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + "\n" + text + "\n")


def test_a_backward_import_is_caught(tmp_path):
    root = _copy_tree(tmp_path)
    _append(root / "envs" / "graph.py", "from dsmnas.trainables.learner import LearnerSettings")
    _append(root / "policies" / "gnn.py", "from dsmnas.envs.benchmarks.base import Benchmark")
    found = violations(root)
    assert any("envs/graph.py" in v and "envs imports dsmnas.trainables.learner" in v
               for v in found), found
    assert any("policies/gnn.py" in v and "dsmnas.envs.benchmarks.base" in v for v in found), found


def test_a_lazy_cycle_and_rllib_in_envs_are_caught(tmp_path):
    root = _copy_tree(tmp_path)
    # trainables.search imports trainables.workers inside a function, workers imports search
    _append(root / "trainables" / "search.py",
            "def _late():\n    from dsmnas.trainables.workers import sync_config\n")
    _append(root / "envs" / "records.py", "from ray.rllib.core.columns import Columns")
    _append(root / "envs" / "spaces" / "base.py", "from dsmnas.envs.registry import get_spec")
    found = violations(root)
    assert any(v.startswith("import cycle:") and "dsmnas.trainables.search" in v
               and "dsmnas.trainables.workers" in v for v in found), found
    assert any("envs/records.py" in v and "RLlib/Tune" in v for v in found), found
    assert any("envs/spaces/base.py" in v and "envs.spaces imports dsmnas.envs.registry" in v
               for v in found), found


def test_type_checking_imports_do_not_count(tmp_path):
    root = _copy_tree(tmp_path)
    _append(root / "envs" / "graph.py",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
            "    from dsmnas.trainables.learner import LearnerSettings\n")
    assert violations(root) == []
