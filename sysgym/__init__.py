"""sysgym: infrastructure decisions as calibrated, reproducible Gymnasium benchmarks.

Public API: `sysgym.make`, `sysgym.list_envs`, `sysgym.solvers.get/list`, `sysgym.Solution`,
`sysgym.get_family`, `sysgym.instance`.
"""
__version__ = "0.1.0"

from sysgym import envs as envs  # noqa: E402  (registers the families and their envs)
from sysgym import solvers as solvers  # noqa: E402
from sysgym.errors import (  # noqa: E402
    InfeasibleSolutionError,
    InvalidActionError,
    InvalidInstanceError,
    SysgymError,
    TraceFormatError,
    UnknownNameError,
)
from sysgym.instances import from_spec as instance  # noqa: E402
from sysgym.registry import get_family, list_envs, list_families, make  # noqa: E402
from sysgym.solution import Solution  # noqa: E402

__all__ = ["InfeasibleSolutionError", "InvalidActionError", "InvalidInstanceError", "Solution", "SysgymError",
           "TraceFormatError", "UnknownNameError", "envs", "get_family", "instance", "list_envs",
           "list_families", "make", "solvers"]
