"""Bounds: the remainder bound's derivation, the Lagrangian relaxation, and every reported bound is at most the
optimum the MILP proves (issue 16)."""
import itertools

import numpy as np
import pytest

from sysgym import solvers
from sysgym.envs.vm_resched import ClusterState, VmInstance, generate
from sysgym.solvers.vm_resched.bounds import (
    PatternRelaxation,
    lagrangian_bound,
    max_drop,
    remainder_bound,
    remainder_bound_sum,
)


def _r(state: ClusterState) -> int:
    return int((state.free_cpu % state.unit).sum())


@pytest.mark.parametrize("spec", [{"preset": "tiny", "seed": s} for s in range(4)]
                         + [{"num_pms": 6, "seed": 1}, {"num_pms": 6, "seed": 2, "cpu_util": 0.8}])
def test_one_migration_changes_the_remainder_sum_by_at_most_the_derived_drop(spec):
    """Every single migration on the instance, exhaustively: the sum changes by a multiple of 16, by at most 16
    for a single-NUMA VM, and by nothing for 64-core VMs (32 per node) and 88-core VMs on 44-core nodes."""
    inst = generate(**spec)
    st = ClusterState(inst)
    r0 = _r(st)
    for v in range(inst.num_vms):
        for pm in range(inst.num_pms):
            for numa in ((0,) if inst.vm_double[v] else (0, 1)):
                if st.is_current(v, pm, numa) or st.why_not(v, pm, numa) is not None:
                    continue
                back = (int(st.vm_pm[v]), max(int(st.vm_numa[v]), 0))
                st.move(v, pm, numa)
                d = _r(st) - r0
                st.move(v, *back)
                assert d % 16 == 0 and abs(d) <= max_drop(inst)
                assert abs(d) <= (0 if inst.vm_double[v] else 16)


def _double_instance() -> VmInstance:
    # PM 0: a double-NUMA VM of 12 cores (6 per node) and a 28-core VM on each node: free 10 + 10.
    # PM 1: a 38-core VM on each node: free 6 + 6. Moving the double VM to PM 1 zeroes all four remainders.
    return VmInstance(node_cpu=[44] * 4, node_mem=[10 ** 6] * 4, vm_cpu=[12, 28, 28, 38, 38], vm_mem=[2] * 5,
                      vm_double=[True, False, False, False, False], vm_pm=[0, 0, 0, 1, 1],
                      vm_numa=[-1, 0, 1, 0, 1], mnl=1)


def test_a_double_numa_migration_can_lower_the_sum_by_32():
    inst = _double_instance()
    assert remainder_bound_sum(inst) == 0 and max_drop(inst) == 32  # with 16 per migration the bound would be 16
    sol = solvers.get("vm_resched.milp").solve(inst, time_limit=30)
    assert sol.status == "optimal" and sol.objective == 0.0 and remainder_bound(inst) == 0.0


def test_remainder_bound_is_reached_when_every_migration_can_be_perfect():
    # Two pairs (free 14 hosting a 2-core VM, free 2 with room): each migration of a 2-core VM lowers the sum by
    # 16; with MNL 1 the optimum is one of them: R = 32 - 16, exactly the bound.
    inst = VmInstance(node_cpu=[44] * 4, node_mem=[10 ** 6] * 4, vm_cpu=[2, 28, 42, 2, 28, 42], vm_mem=[2] * 6,
                      vm_double=[False] * 6, vm_pm=[0, 0, 0, 1, 1, 1], vm_numa=[0, 0, 1, 0, 0, 1], mnl=1)
    assert _r(ClusterState(inst)) == 32 and remainder_bound(inst) == pytest.approx(0.5)
    for name in ("vm_resched.milp", "vm_resched.cpsat", "vm_resched.greedy", "vm_resched.lns"):
        assert solvers.get(name).solve(inst, time_limit=30).objective == pytest.approx(0.5), name
    assert lagrangian_bound(inst)[0] == 16


def _enumerate(relax: PatternRelaxation, lam, mu) -> float:
    """The relaxed minimum by enumerating every node's departures and arrivals per class."""
    total = 0.0
    for n in range(len(relax.free)):
        best = np.inf
        ranges = []
        for k, c in enumerate(relax.sizes):
            ranges += [range(int(relax.hosted[k, n]) + 1), range(relax.cap // int(c) + 1)]
        for combo in itertools.product(*ranges):
            dep, arr = np.array(combo[0::2]), np.array(combo[1::2])
            final = relax.free[n] + int((relax.sizes * (dep - arr)).sum())
            if 0 <= final <= relax.inst.node_cpu[n]:
                best = min(best, final % relax.unit + float(lam @ (dep - arr)) + mu * float(relax.weights @ dep))
        total += best
    return total - mu * relax.inst.mnl


def test_lagrangian_dynamic_program_equals_enumeration():
    inst = VmInstance(node_cpu=[12, 12, 12, 12, 16, 16], node_mem=[10 ** 6] * 6, vm_cpu=[2, 4, 4, 2, 8, 6, 2, 12],
                      vm_mem=[2] * 8, vm_double=[False] * 5 + [True, False, True], vm_pm=[0, 0, 1, 1, 2, 0, 2, 1],
                      vm_numa=[0, 1, 0, 1, 0, -1, 1, -1], mnl=2, frag_unit=4)
    relax = PatternRelaxation(inst)
    assert relax.weights.tolist() == [1.0, 0.5, 1.0, 0.5, 1.0]  # double halves weigh 1/2 of a migration
    rng = np.random.default_rng(1)
    for _ in range(6):
        lam, mu = rng.uniform(-3, 3, len(relax.sizes)), float(rng.uniform(0, 4))
        assert relax.evaluate(lam, mu)[0] == pytest.approx(_enumerate(relax, lam, mu))


SMALL = ([{"preset": "tiny", "seed": s, "anti_affinity_groups": g} for s in range(3) for g in (0, 3)]
         + [{"preset": "small", "seed": s} for s in range(3)]
         + [{"num_pms": p, "seed": s, "cpu_util": u} for p, s, u in ((6, 0, 0.94), (8, 1, 0.94), (10, 2, 0.88))])
MORE = ([{"preset": "small", "seed": s, "anti_affinity_groups": g} for s in range(3, 8) for g in (0, 4)]
        + [{"num_pms": p, "seed": s, "cpu_util": u} for p in (8, 12) for s in range(3, 6) for u in (0.9, 0.94)])


def _check_bounds(spec):
    inst = generate(**spec)
    opt = solvers.get("vm_resched.milp").solve(inst, time_limit=120)
    assert opt.status == "optimal" and opt.bound == pytest.approx(opt.objective)
    tol = 1e-12
    assert remainder_bound(inst) <= opt.objective + tol
    free = int(ClusterState(inst).free_cpu.sum())
    assert lagrangian_bound(inst)[0] / max(free, 1) <= opt.objective + tol
    for name in ("vm_resched.cpsat", "vm_resched.lns"):
        sol = solvers.get(name).solve(inst, time_limit=60)
        assert sol.bound is not None and sol.bound <= opt.objective + tol, name
        assert sol.objective >= opt.objective - tol, name
    for name in ("vm_resched.greedy", "vm_resched.lookahead", "vm_resched.filter_score"):
        assert solvers.get(name).solve(inst).objective >= opt.objective - tol, name


@pytest.mark.parametrize("spec", SMALL, ids=lambda s: "-".join(f"{k}{v}" for k, v in s.items()))
def test_every_bound_is_at_most_the_proven_optimum(spec):
    _check_bounds(spec)


@pytest.mark.slow
@pytest.mark.parametrize("spec", MORE, ids=lambda s: "-".join(f"{k}{v}" for k, v in s.items()))
def test_every_bound_is_at_most_the_proven_optimum_more_instances(spec):
    _check_bounds(spec)


def test_exact_methods_report_a_bound_at_scale():
    """Never 'no bound' again: the full model on VMR2L-medium v1, and a model restricted to 60 candidates."""
    inst = generate(preset="medium", seed=0)
    for name, kw in (("vm_resched.cpsat", {}), ("vm_resched.milp", {"max_vms": 60})):
        sol = solvers.get(name, **kw).solve(inst, time_limit=4)
        assert sol.bound is not None and sol.gap is not None and 0 < sol.bound <= sol.objective + 1e-12, name
        assert sol.bound >= remainder_bound(inst)


@pytest.mark.slow
def test_lagrangian_bound_meets_the_milp_optimum_on_medium_v1():
    """On medium-v1 seed 0 the relaxation is tight: the bound is the optimum the MILP proves (0.1448)."""
    inst = generate(preset="medium", seed=0)
    opt = solvers.get("vm_resched.milp").solve(inst, time_limit=300)
    assert opt.status == "optimal"
    free = int(ClusterState(inst).free_cpu.sum())
    assert lagrangian_bound(inst)[0] / free == pytest.approx(opt.objective)
