"""`vm_resched.cpsat`: the exact model (see model.py) on OR-Tools CP-SAT."""
from __future__ import annotations

from ortools.sat.python import cp_model

from sysgym.solution import Solution
from sysgym.solvers.base import Solver, register
from sysgym.solvers.vm_resched import model as vm_model
from sysgym.solvers.vm_resched.exact import BackendResult, fixed_places, initial_usage, solve_exact


@register
class VmCpSat(Solver):
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
        inst = data.inst
        m = cp_model.CpModel()
        x = [[m.NewBoolVar(f"x_{i}_{j}") for j in range(len(opts))] for i, opts in enumerate(data.places)]
        for row in x:
            m.AddExactlyOne(row)
        m.Add(sum(x[i][data.current[i]] for i in range(len(x))) >= len(x) - inst.mnl)
        rows = fixed_places(data)
        used_cpu, used_mem = initial_usage(inst)
        unit = inst.frag_unit
        r_vars = []
        for n in range(len(inst.node_cpu)):
            terms = rows.get(n, [])
            cap_c, cap_m = int(inst.node_cpu[n]), int(inst.node_mem[n])
            cpu = sum(c * x[i][j] for i, j, c, _ in terms) + int(data.base_cpu[n])
            mem = sum(mm * x[i][j] for i, j, _, mm in terms) + int(data.base_mem[n])
            m.Add(mem <= cap_m)
            q = m.NewIntVar(0, cap_c // unit, f"q_{n}")
            r = m.NewIntVar(0, unit - 1, f"r_{n}")
            m.Add(cap_c - cpu == unit * q + r)
            r_vars.append(r)
            if n in no_reliance:
                incoming = [(i, j, c, mm) for i, j, c, mm in terms if j != data.current[i]]
                if incoming:
                    m.Add(int(used_cpu[n]) + sum(c * x[i][j] for i, j, c, _ in incoming) <= cap_c)
                    m.Add(int(used_mem[n]) + sum(mm * x[i][j] for i, j, _, mm in incoming) <= cap_m)
        m.Minimize(sum(r_vars))
        if hint is not None:
            for i, row in enumerate(x):
                for j, var in enumerate(row):
                    m.AddHint(var, j == hint[i])
        solver = cp_model.CpSolver()
        solver.parameters.num_workers = self.workers
        solver.parameters.random_seed = int(seed)
        solver.parameters.repair_hint = hint is not None
        if time_limit is not None:
            solver.parameters.max_time_in_seconds = float(time_limit)
        code = solver.Solve(m)
        stats = {"branches": solver.NumBranches(), "conflicts": solver.NumConflicts()}
        if code in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            chosen = [next(j for j, var in enumerate(row) if solver.Value(var)) for row in x]
            status = "optimal" if code == cp_model.OPTIMAL else "timeout"
            return BackendResult(status, chosen, solver.ObjectiveValue(), solver.BestObjectiveBound(), stats)
        if code == cp_model.INFEASIBLE:
            return BackendResult("infeasible", None, None, None, stats)
        return BackendResult("timeout", None, None, None, stats)
