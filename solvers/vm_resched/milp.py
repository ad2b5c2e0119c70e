"""`vm_resched.milp`: the exact model (see model.py) through OR-Tools' pywraplp on SCIP or HiGHS."""
from __future__ import annotations

from ortools.linear_solver import pywraplp

from sysgym.solution import Solution
from sysgym.solvers.base import Solver, register
from sysgym.solvers.vm_resched import model as vm_model
from sysgym.solvers.vm_resched.exact import BackendResult, solve_exact


@register
class VmMilp(Solver):
    """Exact MILP (pywraplp on SCIP or HiGHS) of the same model as CP-SAT; status, bound and gap on every size."""

    name = "vm_resched.milp"
    family = "vm_resched"
    kind = "exact"

    def __init__(self, backend: str = "SCIP", max_vms: int | None = None, warm_start: bool = True,
                 threads: int = 1):
        super().__init__(backend=backend, max_vms=max_vms, warm_start=warm_start, threads=threads)
        if pywraplp.Solver.CreateSolver(backend) is None:
            raise ValueError(f"MILP backend {backend!r} is not available in this OR-Tools build; try SCIP or HIGHS")
        self.backend, self.max_vms, self.warm_start, self.threads = backend, max_vms, warm_start, threads

    def solve(self, instance, *, time_limit: float | None = None, seed: int = 0) -> Solution:
        return solve_exact(instance, self._backend, time_limit=time_limit, seed=seed, max_vms=self.max_vms,
                           warm_start=self.warm_start, solver_name=f"pywraplp/{self.backend}")

    def _backend(self, data: vm_model.ModelData, time_limit, seed, no_reliance, hint, lower) -> BackendResult:
        s = pywraplp.Solver.CreateSolver(self.backend)
        if time_limit is not None:
            s.SetTimeLimit(int(time_limit * 1000))
        s.SetNumThreads(self.threads)
        if self.backend.upper() == "SCIP":
            s.SetSolverSpecificParametersAsString(f"randomization/randomseedshift = {int(seed)}\n")
        outs, ins, r_vars = vm_model.add_to(data, s.IntVar, s.Add, no_reliance, lower=lower)
        s.Minimize(sum(r_vars))
        if hint is not None:
            h_out, h_in = hint
            keys = [*outs.values(), *ins.values()]
            values = [float(h_out.get(k, 0)) for k in outs] + [float(h_in.get(k, 0)) for k in ins]
            s.SetHint(keys, values)
        code = s.Solve()
        stats = {"nodes": s.nodes(), "iterations": s.iterations()}
        if code in (pywraplp.Solver.OPTIMAL, pywraplp.Solver.FEASIBLE):
            out_vals = {k: int(round(v.solution_value())) for k, v in outs.items()}
            in_vals = {k: int(round(v.solution_value())) for k, v in ins.items()}
            status = "optimal" if code == pywraplp.Solver.OPTIMAL else "timeout"
            return BackendResult(status, out_vals, in_vals, s.Objective().Value(), s.Objective().BestBound(), stats)
        if code == pywraplp.Solver.INFEASIBLE:
            return BackendResult("infeasible", None, None, None, None, stats)
        return BackendResult("timeout", None, None, None, None, stats)
