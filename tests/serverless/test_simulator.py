"""The simulator: its semantics on a hand instance, its cost equals the evaluator's, and each named policy gives
identical metrics driven by the simulator and by the env."""
import numpy as np
import pytest

import sysgym
from sysgym.envs.serverless import Simulator, evaluate, generate, simulate
from sysgym.envs.serverless.simulator import drive
from sysgym.errors import InvalidArgumentError
from sysgym.solvers.serverless.policies import FixedKeepAlive, GreedyDual, HybridHistogram, PolicyAgent
from tests.serverless.conftest import hand_instance

POLICIES = {"fixed": lambda: FixedKeepAlive(10.0), "no_keepalive": lambda: FixedKeepAlive(0.0),
            "hybrid": HybridHistogram, "greedy_dual": GreedyDual}


def test_fixed_keep_alive_by_hand(hand):
    r = simulate(hand, FixedKeepAlive(10 / 60))  # 10 s
    # f0 stays warm from 3 s to 13 s, so its 10 s invocation is warm; everything unloads at end_s = 20 s.
    assert sorted(r.schedule) == [(0, 0.0, 20.0), (1, 5.0, 18.0)]
    assert r.metrics["cold_starts"] == 2
    assert r.metrics["wasted_gb_s"] == pytest.approx(16.0 + 10.0 * 0.5)
    r0 = simulate(hand, "no_keepalive")
    assert sorted(r0.schedule) == [(0, 0.0, 3.0), (0, 10.0, 12.0), (1, 5.0, 8.0)]
    assert r0.metrics["cold_starts"] == 3 and r0.metrics["wasted_gb_s"] == 0.0


def test_prewarm_plan_and_arrival_first():
    class Jit:
        name = "jit"

        def reset(self, sim, seed=0):
            pass

        def plan(self, sim, f):  # f0 after its first run: reload at 3 + 6 = 9 s, ready at 10 s
            return (6.0, 1.0) if f == 0 and sim.count[0] == 1 else (0.0, 0.0)

        def victim(self, sim, request):
            raise AssertionError("no memory pressure here")

    hand = hand_instance()
    r = simulate(hand, Jit())
    assert (0, 9.0, 11.0) in r.schedule
    assert r.metrics["cold_starts"] == 2 and r.metrics["prewarm_loads"] == 1
    assert r.metrics["cost"] == pytest.approx(evaluate(hand, [(0, 0, 3), (0, 9, 11), (1, 5, 8)])["cost"])


def test_evictions_are_asked_only_under_pressure_and_checked():
    tight = hand_instance(capacity_mb=1024)
    asked = []

    class Keep(FixedKeepAlive):
        def victim(self, sim, request):
            asked.append((request.function, request.candidates, request.need_mb))
            return super().victim(sim, request)

    r = simulate(tight, Keep(60.0))
    # f1's cold start at 5 s evicts f0's idle instance, f0's at 10 s evicts f1's (each needs 512 MB more)
    assert asked == [(1, (0,), 512.0), (0, (1,), 512.0)]
    assert r.metrics["feasible"] and r.metrics["cold_starts"] == 3

    class Bad(FixedKeepAlive):
        def victim(self, sim, request):
            return 1

    with pytest.raises(InvalidArgumentError, match="evictable"):
        simulate(tight, Bad(60.0))


def test_bad_plans_are_named(hand):
    class Nan(FixedKeepAlive):
        def plan(self, sim, f):
            return float("nan"), 1.0

    with pytest.raises(InvalidArgumentError, match="prewarm_s"):
        simulate(hand, Nan())
    with pytest.raises(sysgym.UnknownNameError):
        simulate(hand, "no_such_policy")


@pytest.mark.parametrize("preset,seed", [("tiny", 0), ("tiny", 1), ("small", 0)])
@pytest.mark.parametrize("name", sorted(POLICIES))
def test_simulator_cost_is_the_evaluators(preset, seed, name):
    inst = generate(preset=preset, seed=seed)
    sim = Simulator(inst)
    pol = POLICIES[name]()
    pol.reset(sim)
    drive(sim, pol)
    m = evaluate(inst, sim.schedule)
    assert sim.cost == pytest.approx(m["cost"], rel=1e-9)
    assert sim.cold_starts == m["cold_starts"]
    assert sim.waste_gb_s == pytest.approx(m["wasted_gb_s"], rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("preset,seed", [("tiny", 0), ("tiny", 3), ("small", 1)])
@pytest.mark.parametrize("name", sorted(POLICIES))
def test_env_driven_run_equals_simulator_driven_run(preset, seed, name):
    """One implementation per policy: the env, answering each request through its action encoding, gives the
    very schedule and metrics of the direct simulation."""
    inst = generate(preset=preset, seed=seed)
    direct = simulate(inst, POLICIES[name]())
    env = sysgym.make("sysgym/ServerlessKeepAlive-v0", instance=inst)
    agent = PolicyAgent(POLICIES[name]())
    env.reset(seed=0)
    agent.reset(env)
    done, ret, steps = False, 0.0, 0
    while not done:
        _, r, done, _, info = env.step(agent.act(env))
        assert "invalid_action" not in info
        ret += r
        steps += 1
    decisions = env.unwrapped.decisions()
    assert decisions == direct.schedule
    m = evaluate(inst, decisions)
    assert m == direct.metrics
    assert -ret == pytest.approx(m["cost"], rel=1e-9)
    assert steps == direct.stats["plans"] + direct.stats["evictions"]


def test_hybrid_learns_a_timer_and_prewarms():
    """A 30-minute timer: after its first idle time the histogram is concentrated (CV >= 2), so the policy unloads
    after each run and pre-warms before the next one; fixed 10 minutes cold-starts every time."""
    n = 24
    t = np.arange(n) * 1800.0 + 60.0
    inst = sysgym.envs.serverless.ServerlessInstance(
        mem_mb=[256], pod_alloc_s=[0.3], deploy_code_s=[0.1], deploy_dep_s=[0.2], scheduling_s=[0.4], trigger=[4],
        inv_func=np.zeros(n, int), inv_time=t, inv_exec=np.full(n, 0.5), capacity_mb=256, memory_weight=0.0216,
        horizon_s=n * 1800.0, name="serverless/timer")
    hyb = simulate(inst, "hybrid")
    assert hyb.metrics["cold_starts"] == 1  # the first; the second is kept by the 4-hour fallback
    assert hyb.metrics["prewarm_loads"] == n - 1  # the 3rd to the last, and one after the last (it cannot know)
    fixed = simulate(inst, "fixed")
    assert fixed.metrics["cold_starts"] == n
    assert hyb.metrics["wasted_gb_s"] < 3 * fixed.metrics["wasted_gb_s"]


def test_greedy_dual_evicts_the_lowest_priority():
    class Sim:
        now = 100.0
        last_arrival = [10.0, 50.0, 90.0]
        count_since_load = [5, 1, 1]
        cold = [2.0, 8.0, 1.0]
        mem = [128.0, 512.0, 256.0]

    gd = GreedyDual()
    gd.clock_times, gd.clock_values = [-np.inf], [0.0]
    from sysgym.envs.serverless import Request

    req = Request("evict", 3, 100.0, 64.0, (0, 1, 2))
    # priorities: 5*2/128 = 0.078, 1*8/512 = 0.0156, 1*1/256 = 0.0039 -> evict function 2
    assert gd.victim(Sim, req) == 2
    assert gd.clock_values[-1] == pytest.approx(1 / 256)
    # function 0 was last invoked before that eviction: its clock is still 0; function 1's too
    assert gd.priority(Sim, 0) == pytest.approx(10 / 128)
