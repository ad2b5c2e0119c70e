"""Every non-learned method, grouped by family: `sysgym.solvers.get("vm_resched.milp")`."""
from sysgym.solvers.base import Solver, get, list, register, solver_class  # noqa: A004

__all__ = ["Solver", "get", "list", "register", "solver_class"]
