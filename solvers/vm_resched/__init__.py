"""VM-rescheduling methods; importing registers them (`vm_resched.milp`, `.cpsat`, `.greedy`, ...)."""
from sysgym.solvers.vm_resched import cpsat, heuristics, lns, lookahead, milp  # noqa: F401
