"""Every non-learned method, grouped by family: `sysgym.solvers.get("vm_resched.milp")`.

`solvers/<family>/` holds a family's heuristics, exact models, searches and its online policies (the objects
its simulator and env drive); `envs/<family>/` keeps only the protocol those policies implement. The solver
contract and registry are in the core (`sysgym.solver`).
"""
from sysgym.solver import Solver, get, list, options, register, solver_class  # noqa: A004

__all__ = ["Solver", "get", "list", "options", "register", "solver_class"]
