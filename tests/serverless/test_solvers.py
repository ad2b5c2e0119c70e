"""The offline optimum: exact without capacity (checked against a closed form), a bound every method respects, and
CP-SAT's capacity-aware optimum at or below every online method on the instances it solves."""
import math

import pytest

import sysgym
from sysgym.envs.serverless import ServerlessInstance, evaluate, generate
from sysgym.errors import InvalidArgumentError
from sysgym.solvers.serverless.offline import bound_is_valid, uncapacitated_optimum
from sysgym.testing import check_solver
from tests.serverless.conftest import hand_instance

ONLINE = ("serverless.fixed", "serverless.no_keepalive", "serverless.hybrid", "serverless.greedy_dual")


def closed_form(inst: ServerlessInstance) -> float:
    """With memory_weight x GB <= 1/2 the optimum keeps every gap warm: the first invocation's cold start (and the
    waits of those arriving while it loads), then min(gap, cold) of idle memory per gap."""
    total = 0.0
    for f, idx in enumerate(inst.function_invocations()):
        if not len(idx):
            continue
        a, e, c = inst.inv_time[idx], inst.inv_exec[idx], float(inst.cold_s[f])
        per_s = inst.memory_weight * inst.mem_mb[f] / 1024
        ready, busy = a[0] + c, -math.inf
        for j in range(len(a)):
            if a[j] > busy and j > 0:  # a gap: warm, ready at the arrival
                total += per_s * min(a[j] - busy, c)
                ready = a[j]
            start = max(a[j], ready)
            total += start - a[j]
            busy = max(busy, start + e[j])
    return total


@pytest.mark.parametrize("preset,seed", [("tiny", 0), ("tiny", 1), ("small", 0), ("small", 2)])
def test_offline_optimum_equals_the_closed_form_and_bounds_every_method(preset, seed):
    inst = generate(preset=preset, seed=seed)
    assert bound_is_valid(inst)
    cost, _, _ = uncapacitated_optimum(inst)
    assert cost == pytest.approx(closed_form(inst), rel=1e-9)
    sol, m = check_solver("serverless.offline", inst)
    assert sol.bound == pytest.approx(cost)
    for name in ONLINE:
        assert sysgym.solvers.get(name).solve(inst).objective >= sol.bound - 1e-9
        assert sysgym.solvers.get(name).solve(inst).objective >= sol.objective - 1e-9


def test_offline_by_hand(hand):
    sol = sysgym.solvers.get("serverless.offline").solve(hand)
    assert sol.status == "optimal" and sol.objective == pytest.approx(3.5)  # the just-in-time pre-warm
    assert sorted(sol.decisions) == [(0, 0.0, 3.0), (0, 9.0, 11.0), (1, 5.0, 8.0)]


def test_dag_chooses_cold_when_memory_is_dear():
    """memory_weight x GB above 1/2: keeping f0 (1 GB) warm for its 1 s cold start would cost 5 > 1 s."""
    inst = hand_instance(memory_weight=5.0)
    cost, sched, plans = uncapacitated_optimum(inst)
    assert plans[0] == {0: "cold", 1: "cold"} and cost == pytest.approx(4.0)  # keyed by f0's invocation index
    assert not bound_is_valid(inst)
    sol = sysgym.solvers.get("serverless.offline").solve(inst)
    assert sol.bound is None and "bound_note" in sol.stats


def test_offline_repairs_a_schedule_that_overflows_the_pool():
    inst = generate(preset="small", seed=1, capacity_fraction=0.05)  # the uncapacitated plan overflows the pool
    _, sched, _ = uncapacitated_optimum(inst)
    assert not evaluate(inst, sched, raise_on_infeasible=False)["feasible"]
    sol, m = check_solver("serverless.offline", inst)
    assert sol.stats["repaired"] and m["feasible"] and sol.objective >= sol.bound


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cpsat_is_at_or_below_every_online_method(seed):
    inst = generate(preset="tiny", seed=seed, capacity_fraction=0.3)
    sol, m = check_solver("serverless.cpsat", inst, time_limit=60)
    assert sol.stats["cpsat_status"] == "OPTIMAL" and sol.stats["restricted_optimal"]
    assert sol.stats["restricted_bound"] >= sol.bound - 1e-3  # capacity can only cost more
    for name in ONLINE:
        assert sysgym.solvers.get(name).solve(inst).objective >= sol.objective - 1e-6, name


def test_cpsat_refuses_large_instances_before_work():
    with pytest.raises(InvalidArgumentError, match="max_edges"):
        sysgym.solvers.get("serverless.cpsat", max_edges=10).solve(generate(preset="tiny", seed=0))
    with pytest.raises(InvalidArgumentError):
        sysgym.solvers.get("serverless.cpsat", workers=0)
    with pytest.raises(InvalidArgumentError):
        sysgym.solvers.get("serverless.fixed", keep_alive_min=-1)
