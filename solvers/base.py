"""The solver protocol and registry live in the core (`sysgym.solver`); this module keeps the import path
that family solver packages have always used."""
from sysgym.solver import Solver, get, list, options, register, solver_class  # noqa: A004, F401

__all__ = ["Solver", "get", "list", "options", "register", "solver_class"]
