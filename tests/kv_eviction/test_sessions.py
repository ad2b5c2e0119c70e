"""Session-level retention: policies, the one evaluator, CP-SAT vs Belady, the env."""
import numpy as np
import pytest

import sysgym
from sysgym.envs.kv_eviction.sessions import (
    SESSION_POLICIES,
    evaluate_sessions,
    generate_sessions,
    reuse_per_turn,
    run_session_policy,
)
from sysgym.errors import InfeasibleSolutionError, UnknownNameError
from sysgym.solvers.kv_eviction.session_cpsat import solve_sessions_cpsat
from sysgym.testing import check_env

ENTRY_POLICIES = ("none", "lru", "lfu", "ttl", "continuum", "belady")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cpsat_equals_belady_when_all_sizes_are_equal(seed):
    w = generate_sessions(seed=seed, num_sessions=16, uniform_tokens=1000, capacity=3000)
    assert len(w.arrival) <= 200
    items, stats = solve_sessions_cpsat(w)
    assert stats["status"] == "optimal"
    opt = evaluate_sessions(w, items, serve=False)
    bel = evaluate_sessions(w, run_session_policy(w, "belady"), serve=False)
    assert opt["hit_rate"] == pytest.approx(bel["hit_rate"])
    assert opt["recompute_tokens"] == bel["recompute_tokens"]
    assert opt["recompute_tokens"] <= evaluate_sessions(w, run_session_policy(w, "lru"), serve=False)[
        "recompute_tokens"]


@pytest.mark.parametrize("kind", ["agent", "chat"])
def test_cpsat_is_never_worse_than_an_entry_level_policy(kind):
    w = generate_sessions(seed=3, kind=kind, num_sessions=20, capacity=6000)
    items, stats = solve_sessions_cpsat(w)
    opt = evaluate_sessions(w, items, serve=False)
    assert opt["recompute_tokens"] == evaluate_sessions(w, [], serve=False)["recompute_tokens"] - stats["objective"]
    for p in ENTRY_POLICIES:
        assert opt["recompute_tokens"] <= evaluate_sessions(w, run_session_policy(w, p), serve=False)[
            "recompute_tokens"], p


def test_policies_rank_as_expected_and_ttft_comes_from_the_serving_simulator():
    w = generate_sessions(seed=0, kind="agent", num_sessions=12, capacity=12000)
    res = {p: evaluate_sessions(w, run_session_policy(w, p)) for p in SESSION_POLICIES}
    assert res["none"]["token_hit_rate"] == 0.0
    assert res["lru"]["recompute_tokens"] < res["none"]["recompute_tokens"]
    assert res["none"]["ttft_mean"] > res["lru"]["ttft_mean"] > 0
    assert res["belady"]["recompute_tokens"] <= res["lru"]["recompute_tokens"]
    assert res["prefix"]["token_hit_rate"] > 0.3


def test_evaluator_rejects_overfull_and_impossible_holdings():
    w = generate_sessions(seed=0, num_sessions=6, capacity=4000)
    nxt = w.next_turn()
    i = int(np.flatnonzero(nxt >= 0)[0])
    big = (int(w.session[i]), 0, 5000, float(w.end[i]), float(w.arrival[nxt[i]]))
    with pytest.raises(InfeasibleSolutionError, match="capacity"):
        reuse_per_turn(w, [big])
    early = (int(w.session[i]), 0, 100, float(w.arrival[i]) - 1.0, float(w.arrival[nxt[i]]))
    with pytest.raises(InfeasibleSolutionError, match="content"):
        reuse_per_turn(w, [early])
    with pytest.raises(UnknownNameError, match="belady"):
        run_session_policy(w, "fifo")


def test_session_env_contract_and_return_matches_the_evaluator():
    check_env("sysgym/SessionKv-v0", checker_kwargs={"invalid_action": "penalise"}, rollout_steps=150)
    env = sysgym.make("SessionKv-v0", num_sessions=10, capacity=6000)
    obs, info = env.reset(seed=4)
    start = info["recompute_tokens"]  # turns before the first decision
    total, done = 0.0, False
    while not done:
        obs, r, term, trunc, info = env.step(1)
        total += r
        done = term or trunc
    base = env.unwrapped
    items = base.items()
    m = evaluate_sessions(base.w, items, serve=False)
    assert m["recompute_tokens"] == info["recompute_tokens"]
    assert info["recompute_tokens"] - start == pytest.approx(-total * 1000)
    lru = evaluate_sessions(base.w, run_session_policy(base.w, "lru"), serve=False)
    assert m["recompute_tokens"] == lru["recompute_tokens"]  # always retaining is LRU
