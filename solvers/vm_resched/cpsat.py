"""`vm_resched.cpsat`: the exact model (see model.py) on OR-Tools CP-SAT."""
from __future__ import annotations

from ortools.sat.python import cp_model

from sysgym.solution import Solution
from sysgym.solvers.base import Solver, register
from sysgym.solvers.vm_resched import model as vm_model
from sysgym.solvers.vm_resched.exact import BackendResult, solve_exact


@register
class VmCpSat(Solver):
    """Exact CP-SAT model of the same counting model; status, bound and gap."""

    name = "vm_resched.cpsat"
    family = "vm_resched"
    kind = "exact"

    def __init__(self, workers: int = 2, max_vms: int | None = 200, warm_start: bool = True):
        super().__init__(workers=workers, max_vms=max_vms, warm_start=warm_start)
        self.workers, self.max_vms, self.warm_start = workers, max_vms, warm_start

    def solve(self, instance, *, time_limit: float | None = None, seed: int = 0) -> Solution:
        return solve_exact(instance, self._backend, time_limit=time_limit, seed=seed, max_vms=self.max_vms,
                           warm_start=self.warm_start, solver_name="cp-sat")

    def _backend(self, data: vm_model.ModelData, time_limit, seed, no_reliance, hint) -> BackendResult:
        m = cp_model.CpModel()
        y, r_vars = vm_model.add_to(data, m.NewIntVar, m.Add, no_reliance)
        m.Minimize(sum(r_vars))
        if hint is not None:
            for row, hrow in zip(y, hint):
                for var, value in zip(row, hrow):
                    m.AddHint(var, int(value))
        solver = cp_model.CpSolver()
        solver.parameters.num_workers = self.workers
        solver.parameters.random_seed = int(seed)
        solver.parameters.repair_hint = hint is not None
        if time_limit is not None:
            solver.parameters.max_time_in_seconds = float(time_limit)
        code = solver.Solve(m)
        stats = {"branches": solver.NumBranches(), "conflicts": solver.NumConflicts()}
        if code in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            counts = [[int(solver.Value(v)) for v in row] for row in y]
            status = "optimal" if code == cp_model.OPTIMAL else "timeout"
            return BackendResult(status, counts, solver.ObjectiveValue(), solver.BestObjectiveBound(), stats)
        if code == cp_model.INFEASIBLE:
            return BackendResult("infeasible", None, None, None, stats)
        return BackendResult("timeout", None, None, None, stats)
