"""sysgym: infrastructure decisions as calibrated, reproducible Gymnasium benchmarks.

Public API: `sysgym.make`, `sysgym.list_envs`, `sysgym.solvers.get/list`, `sysgym.Solution`,
`sysgym.get_family`, `sysgym.instance`.

This module is the facade: the only core module that imports the families (docs/DESIGN.md). The rest of the
core (`sysgym.registry`, `sysgym.solver`, `sysgym.env`, ...) knows families only through what registers.
"""
__version__ = "0.1.0"

import importlib as _importlib
import pkgutil as _pkgutil

from sysgym import registry as _registry


def _discover_families() -> None:
    # Importing sysgym.envs imports every `envs/<family>/registration.py`.
    _importlib.import_module("sysgym.envs")


def _discover_solvers() -> None:
    _discover_families()
    pkg = _importlib.import_module("sysgym.solvers")
    for info in _pkgutil.iter_modules(pkg.__path__):
        if info.ispkg and not info.name.startswith("_"):
            _importlib.import_module(f"{pkg.__name__}.{info.name}")
    # Learned methods (`<family>.agent`) register from agents/ once every family is known.
    _importlib.import_module("sysgym.agents.methods")


_registry.set_discovery(families=_discover_families, solvers=_discover_solvers)

from sysgym import envs as envs  # noqa: E402  (registers the families and their envs)
from sysgym import solvers as solvers  # noqa: E402
from sysgym.errors import (  # noqa: E402
    FamilyMismatchError,
    InfeasibleSolutionError,
    InvalidActionError,
    InvalidArgumentError,
    InvalidInstanceError,
    InvalidSpecError,
    SysgymError,
    TraceFormatError,
    UnknownNameError,
)
from sysgym.instances import from_spec as instance  # noqa: E402
from sysgym.registry import get_family, list_envs, list_families, make  # noqa: E402
from sysgym.solution import Solution  # noqa: E402

__all__ = ["FamilyMismatchError", "InfeasibleSolutionError", "InvalidActionError", "InvalidArgumentError",
           "InvalidInstanceError", "InvalidSpecError", "Solution", "SysgymError", "TraceFormatError",
           "UnknownNameError", "envs", "get_family", "instance", "list_envs", "list_families", "make", "solvers"]
