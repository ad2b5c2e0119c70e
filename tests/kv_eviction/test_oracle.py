"""`kv_eviction.oracle`: an offline search on the real loss, at or below every online policy on every sequence."""
import numpy as np
import pytest

from sysgym import solvers
from sysgym.envs.kv_eviction.curve import CURVE_POLICIES
from sysgym.envs.kv_eviction.evaluate import evaluate, full_attention
from sysgym.envs.kv_eviction.simulator import make_policy, run_policy
from sysgym.errors import InvalidArgumentError
from sysgym.solvers.kv_eviction.oracle import future_attention_schedule
from sysgym.testing import check_solver


def test_oracle_is_at_or_below_every_online_policy_on_every_sequence(tiny_instance):
    sol, m = check_solver("kv_eviction.oracle", tiny_instance)
    assert solvers.get("kv_eviction.oracle").kind == "search"  # a method's result, not a bound
    assert sol.stats["loss_increase_decoder"] == pytest.approx(m["loss_increase"], abs=1e-6)
    mine = np.array(m["loss_increase_per_sequence"])
    for label, (name, params) in CURVE_POLICIES.items():
        other = evaluate(tiny_instance, run_policy(tiny_instance, make_policy(name, **params)).decisions())
        assert np.all(mine <= np.array(other["loss_increase_per_sequence"]) + 1e-6), label
    milp = evaluate(tiny_instance, solvers.get("kv_eviction.milp").solve(tiny_instance))
    assert m["loss_increase"] <= milp["loss_increase"] + 1e-6


def test_future_attention_schedule_respects_the_budget_and_keeps_what_the_future_needs():
    """Hand-made trace: key 1 is the only one later queries attend to; the clairvoyant schedule keeps it."""
    t_len, p, budget = 8, 3, 3
    w = np.zeros((1, 1, 1, t_len, t_len))
    for t in range(t_len):
        w[0, 0, 0, t, min(1, t)] = 1.0
    e = future_attention_schedule(w, p, budget, recent=0.0, sinks=0)
    assert e[0, 0, 0, 1] >= t_len - 1  # kept through every scored step (P .. T-2)
    from sysgym.envs.kv_eviction.evaluate import cache_counts

    assert cache_counts(e)[..., p:t_len - 1].max() <= budget


def test_future_attention_on_the_model_trace_keeps_more_future_mass_than_h2o(tiny_instance):
    w = full_attention(tiny_instance, "sequence")
    e = future_attention_schedule(w, tiny_instance.prompt_len, tiny_instance.budget, recent=0.0, sinks=0)
    fut = evaluate(tiny_instance, {"evict_step": e, "granularity": "sequence"})
    h2o = evaluate(tiny_instance, solvers.get("kv_eviction.h2o", granularity="sequence").solve(tiny_instance))
    assert fut["attention_mass"] >= h2o["attention_mass"] - 1e-9


@pytest.mark.parametrize("opts", [{"recent": (1.5,)}, {"rounds": -1}, {"granularities": ("token",)}])
def test_bad_options_are_named_errors(opts):
    with pytest.raises(InvalidArgumentError):
        solvers.get("kv_eviction.oracle", **opts)
