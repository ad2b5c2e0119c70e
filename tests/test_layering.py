"""Import direction (docs/DESIGN.md): the core at the bottom, then kernels, envs, solvers, and agents /
experiments on top. Parsed from the sources, so a lazy import inside a function counts too."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# folder -> sysgym sub-packages it may not import
FORBIDDEN = {
    "sysgym": ("envs", "solvers", "agents", "experiments", "kernels"),
    "kernels": ("envs", "solvers", "agents", "experiments"),
    "envs": ("solvers", "agents", "experiments"),
    "solvers": ("agents", "experiments"),
    "agents": ("experiments",),
}
FACADE = REPO / "sysgym" / "__init__.py"  # the one core module that imports the families


def _imports(path: Path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, []
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module, [a.name for a in node.names]


def _sources(folder: str):
    return sorted(p for p in (REPO / folder).rglob("*.py") if ".venv" not in p.parts)


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_imports_only_go_down(folder):
    bad = []
    for path in _sources(folder):
        if path == FACADE:
            continue
        for lineno, module, _names in _imports(path):
            parts = module.split(".")
            if parts[0] == "sysgym" and len(parts) > 1 and parts[1] in FORBIDDEN[folder]:
                bad.append(f"{path.relative_to(REPO)}:{lineno} imports {module}")
    assert not bad, "imports against the layering:\n" + "\n".join(bad)


@pytest.mark.parametrize("folder", ["sysgym", "kernels", "envs", "solvers", "agents", "experiments"])
def test_no_private_names_across_packages(folder):
    """`from sysgym.<other package> import _name` reaches into another package's internals."""
    bad = []
    for path in _sources(folder):
        for lineno, module, names in _imports(path):
            parts = module.split(".")
            if parts[0] != "sysgym":
                continue
            own = folder if folder != "sysgym" else None
            other = parts[1] if len(parts) > 1 and parts[1] in FORBIDDEN.keys() | {"experiments"} else None
            same_family = len(parts) > 2 and folder in ("envs", "solvers") and \
                path.relative_to(REPO / folder).parts[0] == parts[2]
            if other == own or same_family:
                continue
            for name in names:
                if name.startswith("_") and not name.startswith("__"):
                    bad.append(f"{path.relative_to(REPO)}:{lineno} imports {name} from {module}")
    assert not bad, "private names imported across packages:\n" + "\n".join(bad)


def test_families_do_not_import_each_other():
    """A family reaches another only through the kernels or a documented public API (the serving simulator
    for the knob and KV-session families, its iteration pricing `BatchLatency` for power_cap); never through its
    private modules."""
    allowed = {("kv_sessions", "llm_serving"), ("serving_knobs", "llm_serving"), ("knob_tuning", "llm_serving"),
               ("kv_eviction", "llm_serving"), ("power_cap", "llm_serving"),
               ("kv_eviction", "kv_sessions")}  # the old `kv_eviction.sessions` / `.session_cpsat` alias modules
    bad = []
    for folder in ("envs", "solvers"):
        for path in _sources(folder):
            rel = path.relative_to(REPO / folder).parts
            if len(rel) < 2:
                continue
            fam = rel[0]
            for lineno, module, _names in _imports(path):
                parts = module.split(".")
                if parts[:2] in (["sysgym", "envs"], ["sysgym", "solvers"]) and len(parts) > 2:
                    other = parts[2]
                    if not (REPO / parts[1] / other).is_dir():
                        continue  # a shared module (solvers/base.py), not a family
                    if other != fam and (fam, other) not in allowed:
                        bad.append(f"{path.relative_to(REPO)}:{lineno} imports {module}")
    assert not bad, "families importing each other:\n" + "\n".join(bad)
