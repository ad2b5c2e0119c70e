"""The evaluator re-checks everything and names the violated constraint."""
import pytest

from sysgym.envs.vm_resched import VmInstance, generate
from sysgym.envs.vm_resched.evaluate import evaluate
from sysgym.errors import InfeasibleSolutionError


def _inst(mnl=2):
    # PM 0: node0 44 cores with VMs of 8 and 20 (free 16), node1 one 30-core VM (free 14).
    # PM 1: node2 free 44, node3 one 40-core VM (free 4).
    return VmInstance(node_cpu=[44] * 4, node_mem=[1000] * 4, vm_cpu=[8, 20, 30, 40], vm_mem=[10, 10, 10, 10],
                      vm_double=[False] * 4, vm_pm=[0, 0, 0, 1], vm_numa=[0, 0, 1, 1], mnl=mnl)


def test_metrics_of_a_feasible_plan():
    inst = _inst()
    m = evaluate(inst, [(2, 1, 0)])  # 30-core VM to PM 1 node 0: frees node1 entirely
    # before: free (16, 14, 44, 4) -> remainders (0, 14, 12, 4) / 78
    assert m["fragment_rate_before"] == pytest.approx(30 / 78)
    # after: free (16, 44, 14, 4) -> (0, 12, 14, 4) / 78
    assert m["fragment_rate"] == pytest.approx(30 / 78)
    assert m["num_migrations"] == 1 and m["feasible"]


def test_noop_is_free_and_numa_change_counts_once():
    inst = _inst(mnl=1)
    assert evaluate(inst, [(0, 0, 0), (0, 0, 0)])["num_migrations"] == 0
    assert evaluate(inst, [(0, 0, 1)])["num_migrations"] == 1


def test_capacity_violation_is_named():
    with pytest.raises(InfeasibleSolutionError, match="CPU capacity of PM 1 NUMA 1: VM 1 needs 20 cores, 4 free"):
        evaluate(_inst(), [(1, 1, 1)])


def test_order_matters_capacity_checked_at_each_step():
    inst = _inst()
    # VM 3 (40) cannot enter node 2 after VM 2 (30) took it, even though the reverse order works.
    with pytest.raises(InfeasibleSolutionError, match="CPU capacity of PM 1 NUMA 0"):
        evaluate(inst, [(2, 1, 0), (3, 1, 0)])


def test_mnl_and_bad_indices_are_named():
    with pytest.raises(InfeasibleSolutionError, match="migration number limit"):
        evaluate(_inst(mnl=1), [(0, 1, 0), (1, 1, 0)])
    with pytest.raises(InfeasibleSolutionError, match="VM index"):
        evaluate(_inst(), [(99, 0, 0)])
    with pytest.raises(InfeasibleSolutionError, match="PM 7 does not exist"):
        evaluate(_inst(), [(0, 7, 0)])
    with pytest.raises(InfeasibleSolutionError, match="format"):
        evaluate(_inst(), [("a",)])
    m = evaluate(_inst(mnl=1), [(0, 1, 0), (1, 1, 0)], raise_on_infeasible=False)
    assert m["feasible"] is False and "migration number limit" in m["violation"]


def test_time_aware_mode_is_static_at_zero_time_and_deterministic():
    inst = generate(preset="medium", seed=0)
    plan = [(v, 0, 0) for v in range(0)]  # empty plan
    m0 = evaluate(inst, plan, wall_time_s=0.0)
    assert m0["fragment_rate_timed"] == m0["fragment_rate"] and m0["churn_events"] == 0
    a = evaluate(inst, plan, wall_time_s=120.0)
    b = evaluate(inst, plan, wall_time_s=120.0)
    assert a == b and a["churn_events"] > 20  # ~0.58 arrivals and departures per s on medium
    assert a["fragment_rate_timed"] == a["fragment_rate_before_timed"]


def test_time_aware_mode_skips_migrations_that_became_invalid():
    from sysgym import solvers

    inst = generate(preset="medium", seed=0)
    sol = solvers.get("vm_resched.greedy").solve(inst)
    fast = evaluate(inst, sol, wall_time_s=0.01)
    slow = evaluate(inst, sol, wall_time_s=3600.0)
    assert fast["skipped_migrations"] == 0
    assert slow["skipped_migrations"] > 0  # VMs left or destinations filled while "thinking"
    assert slow["num_migrations_timed"] + slow["skipped_migrations"] == len(sol.decisions)


def test_anti_affinity_is_checked():
    inst = VmInstance(node_cpu=[44] * 4, node_mem=[1000] * 4, vm_cpu=[8, 8], vm_mem=[1, 1], vm_double=[False] * 2,
                      vm_pm=[0, 1], vm_numa=[0, 0], mnl=1, vm_group=[5, 5])
    with pytest.raises(InfeasibleSolutionError, match="anti-affinity group 5: VM 1 already runs on PM 1"):
        evaluate(inst, [(0, 1, 1)])
    assert evaluate(inst, [(0, 0, 1)])["num_migrations"] == 1  # a NUMA change on its own PM is fine
