"""`vm_resched.cpsat`: the exact model (see model.py) on OR-Tools CP-SAT."""
from __future__ import annotations

from ortools.sat.python import cp_model

from sysgym.solution import Solution
from sysgym.solvers.base import Solver, register
from sysgym.solvers.cpsat_params import set_limits
from sysgym.solvers.vm_resched import model as vm_model
from sysgym.solvers.vm_resched.exact import BackendResult, solve_exact


def cpsat_model(data: vm_model.ModelData, no_reliance=frozenset(), hint=None, lower=None, neighbourhood=None):
    """(model, out vars, in vars): the exact model in CP-SAT (`model.add_to`), or with `neighbourhood` =
    (free nodes, incumbent out counts, incumbent in counts) its restriction (`model.add_neighbourhood`);
    hinted with (out counts, in counts)."""
    m = cp_model.CpModel()
    if neighbourhood is None:
        outs, ins, r_vars = vm_model.add_to(data, m.NewIntVar, m.Add, set(no_reliance), lower)
    else:
        outs, ins, r_vars = vm_model.add_neighbourhood(data, m.NewIntVar, m.Add, *neighbourhood)
    m.Minimize(sum(r_vars))
    if hint is not None:
        h_out, h_in = hint
        for key, var in outs.items():
            m.AddHint(var, int(h_out.get(key, 0)))
        for key, var in ins.items():
            m.AddHint(var, int(h_in.get(key, 0)))
    return m, outs, ins


def cpsat_result(solver: cp_model.CpSolver, code, outs: dict, ins: dict) -> BackendResult:
    stats = {"branches": solver.NumBranches(), "conflicts": solver.NumConflicts(),
             "deterministic_time": solver.deterministic_time}
    if code in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        out_vals = {k: int(solver.Value(v)) for k, v in outs.items()}
        in_vals = {k: int(solver.Value(v)) for k, v in ins.items()}
        status = "optimal" if code == cp_model.OPTIMAL else "timeout"
        return BackendResult(status, out_vals, in_vals, solver.ObjectiveValue(), solver.BestObjectiveBound(), stats)
    if code == cp_model.INFEASIBLE:
        return BackendResult("infeasible", None, None, None, None, stats)
    return BackendResult("timeout", None, None, None, solver.BestObjectiveBound(), stats)


@register
class VmCpSat(Solver):
    """Exact CP-SAT model (VM counts per shape and place); status, bound and gap on every size."""

    name = "vm_resched.cpsat"
    family = "vm_resched"
    kind = "exact"

    def __init__(self, workers: int = 2, max_vms: int | None = None, warm_start: bool = True,
                 deterministic: bool = True):
        super().__init__(workers=workers, max_vms=max_vms, warm_start=warm_start, deterministic=deterministic)
        self.workers, self.max_vms, self.warm_start = workers, max_vms, warm_start
        self.deterministic = deterministic  # solvers/cpsat_params.py: time_limit in deterministic seconds
        self.deterministic_limit = bool(deterministic)

    def solve(self, instance, *, time_limit: float | None = None, seed: int = 0) -> Solution:
        return solve_exact(instance, self._backend, time_limit=time_limit, seed=seed, max_vms=self.max_vms,
                           warm_start=self.warm_start, solver_name="cp-sat", deterministic=self.deterministic)

    def _backend(self, data: vm_model.ModelData, time_limit, seed, no_reliance, hint, lower) -> BackendResult:
        # The bound is not posted as a cut here: it slows CP-SAT's search (medium-v1 seed 0, 40 s: with it
        # CP-SAT keeps greedy's plan, without it it proves the optimum). The MILP gets it (exact.py).
        m, outs, ins = cpsat_model(data, no_reliance, hint)
        solver = cp_model.CpSolver()
        set_limits(solver, time_limit=time_limit, workers=self.workers, seed=seed, deterministic=self.deterministic)
        solver.parameters.repair_hint = hint is not None
        return cpsat_result(solver, solver.Solve(m), outs, ins)
