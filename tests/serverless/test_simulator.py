"""The simulator: its semantics on a hand instance, its cost equals the evaluator's, and each named policy gives
identical metrics driven by the simulator and by the env."""
import numpy as np
import pytest

import sysgym
from sysgym.envs.serverless import ServerlessInstance, Simulator, evaluate, generate, simulate
from sysgym.envs.serverless.simulator import drive
from sysgym.errors import InvalidArgumentError
from sysgym.solvers.serverless.forecast import ar_forecast
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


def _periodic(n: int, period: float, exec_s: float = 0.5) -> ServerlessInstance:
    t = np.arange(n) * period + 60.0
    return ServerlessInstance(
        mem_mb=[256], pod_alloc_s=[0.3], deploy_code_s=[0.1], deploy_dep_s=[0.2], scheduling_s=[0.4], trigger=[4],
        inv_func=np.zeros(n, int), inv_time=t, inv_exec=np.full(n, exec_s), capacity_mb=256, memory_weight=0.0216,
        horizon_s=n * period, name="serverless/timer")


def test_hybrid_learns_a_timer_and_prewarms():
    """A 30-minute timer. Trusting the histogram from its first idle time (concentrated: CV >= 2), the policy unloads
    after each run and pre-warms before the next one; fixed 10 minutes cold-starts every time. With the default
    minimum of 60 idle times, 24 runs stay on the 4-hour keep-alive: warm throughout."""
    n = 24
    inst = _periodic(n, 1800.0)
    hyb = simulate(inst, "hybrid", min_idle_times=1)
    assert hyb.metrics["cold_starts"] == 1  # the first; the second is kept by the 4-hour fallback
    assert hyb.metrics["prewarm_loads"] == n - 1  # the 3rd to the last, and one after the last (it cannot know)
    fixed = simulate(inst, "fixed")
    assert fixed.metrics["cold_starts"] == n
    assert hyb.metrics["wasted_gb_s"] < 3 * fixed.metrics["wasted_gb_s"]
    default = simulate(inst, "hybrid")
    assert default.metrics["cold_starts"] == 1 and default.metrics["prewarm_loads"] == 0
    assert default.metrics["wasted_gb_s"] > 2 * hyb.metrics["wasted_gb_s"]
    exact = simulate(inst, "hybrid", min_idle_times=1, snap_to_grid=False)
    assert exact.metrics["cold_starts"] == 1 and exact.metrics["wasted_gb_s"] < hyb.metrics["wasted_gb_s"]


def test_hybrid_forecasts_a_daily_timer():
    """A daily cron run: every idle time is beyond the 4-hour range, so after the second run the forecast (the
    observed idle time) pre-warms around the next one; on the grid (pre-warm <= 0.85 x, warm >= 1.15 x the
    forecast) nothing waits again, and the instance is warm a fraction of each day."""
    n = 10
    inst = _periodic(n, 86400.0)
    pol = HybridHistogram()
    r = simulate(inst, pol)
    assert pol.patterns["forecast"] == n - 1 and pol.patterns["uncertain"] == 1
    assert r.metrics["cold_starts"] == 2 and r.metrics["prewarm_loads"] == n - 1  # and one after the last
    assert r.metrics["wasted_gb_s"] < 0.5 * 0.25 * inst.horizon_s  # warm well under half of the time


def test_too_few_idle_times_pass_the_cv_test():
    """Why the histogram needs n_bins / cv_threshold^2 = 60 idle times: idle times with no pattern at all (uniform
    over the 4 hours) pass the CV >= 2 test when they are few, and fail it when they are many."""
    rng = np.random.default_rng(0)

    def cv(n):
        counts = np.bincount(rng.integers(0, 240, n), minlength=240)
        return counts.std(ddof=1) / counts.mean()

    assert np.mean([cv(30) >= 2 for _ in range(200)]) > 0.95
    assert np.mean([cv(600) >= 2 for _ in range(200)]) < 0.05
    assert HybridHistogram().min_idle_times == 60
    n = 200
    gaps = rng.uniform(0, 14000, n)
    t = np.cumsum(gaps) + 1.0
    inst = ServerlessInstance(
        mem_mb=[256], pod_alloc_s=[0.3], deploy_code_s=[0.1], deploy_dep_s=[0.2], scheduling_s=[0.4], trigger=[0],
        inv_func=np.zeros(n, int), inv_time=t, inv_exec=np.full(n, 0.5), capacity_mb=256, memory_weight=0.0216,
        horizon_s=float(t[-1]) + 1, name="serverless/uniform")
    trusting, default = HybridHistogram(min_idle_times=1), HybridHistogram()
    simulate(inst, trusting), simulate(inst, default)
    # spurious "patterns" in the first few dozen idle times; from the 60th on, a uniform histogram's CV hovers at
    # the threshold and then falls below it
    assert trusting.patterns["histogram"] >= 20
    assert default.patterns["histogram"] <= trusting.patterns["histogram"] / 2


def test_ar_forecast():
    assert ar_forecast([300.0]) == 300.0 and ar_forecast([100.0, 200.0, 600.0]) == pytest.approx(300.0)
    assert ar_forecast([7.0] * 12) == 7.0
    # two timers of one period at different phases: idle times alternate, AR(1) forecasts the alternation
    alt = [100.0, 3500.0] * 10
    assert ar_forecast(alt) == pytest.approx(100.0, abs=1.0) and ar_forecast(alt[:-1]) == pytest.approx(3500.0, abs=1)
    rng = np.random.default_rng(1)
    y = [50.0]
    for _ in range(400):
        y.append(50.0 + 0.8 * (y[-1] - 50.0) + rng.normal(0, 5.0))
    assert ar_forecast(y) == pytest.approx(50.0 + 0.8 * (y[-1] - 50.0), abs=1.5)
    assert min(y) <= ar_forecast(y[:6]) <= max(y[:6])
    with pytest.raises(ValueError):
        ar_forecast([])


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
