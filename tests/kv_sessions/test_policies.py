"""Session-level retention: the policies, the one evaluator, CP-SAT vs Belady (ported from the glued family)."""
import numpy as np
import pytest

import sysgym
from sysgym import solvers
from sysgym.envs.kv_sessions import (
    SESSION_POLICIES,
    evaluate,
    generate_sessions,
    reuse_per_turn,
    run_session_policy,
    simulate,
)
from sysgym.envs.kv_sessions.simulator import policy_names
from sysgym.errors import InfeasibleSolutionError, InvalidArgumentError, UnknownNameError
from sysgym.solvers.kv_sessions.cpsat import solve_sessions_cpsat
from sysgym.testing import check_solver

ENTRY_POLICIES = ("none", "lru", "lfu", "ttl", "continuum", "belady")


def test_every_named_policy_is_a_registered_solver():
    assert sorted(SESSION_POLICIES) == sorted(policy_names())
    assert set(sysgym.solvers.list("kv_sessions")) >= {f"kv_sessions.{p}" for p in SESSION_POLICIES} | {
        "kv_sessions.cpsat"}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cpsat_equals_belady_when_all_sizes_are_equal(seed):
    w = generate_sessions(seed=seed, num_sessions=16, uniform_tokens=1000, capacity=3000)
    assert len(w.arrival) <= 200
    items, stats = solve_sessions_cpsat(w)
    assert stats["status"] == "optimal"
    opt = evaluate(w, items, serve=False)
    bel = evaluate(w, run_session_policy(w, "belady"), serve=False)
    assert opt["hit_rate"] == pytest.approx(bel["hit_rate"])
    assert opt["recompute_tokens"] == bel["recompute_tokens"]
    assert opt["recompute_tokens"] <= evaluate(w, run_session_policy(w, "lru"), serve=False)["recompute_tokens"]


@pytest.mark.parametrize("kind", ["agent", "chat"])
def test_cpsat_is_never_worse_than_an_entry_level_policy(kind):
    w = generate_sessions(seed=3, kind=kind, num_sessions=20, capacity=6000)
    items, stats = solve_sessions_cpsat(w)
    opt = evaluate(w, items, serve=False)
    assert opt["recompute_tokens"] == evaluate(w, [], serve=False)["recompute_tokens"] - stats["objective"]
    for p in ENTRY_POLICIES:
        assert opt["recompute_tokens"] <= evaluate(w, run_session_policy(w, p), serve=False)["recompute_tokens"], p


def test_cpsat_is_no_bound_on_prefix_caching():
    """Why kv_sessions.cpsat is kind "exact", not "bound": prefix caching shares system prompts and beats it."""
    w = sysgym.get_family("kv_sessions").generator(seed=0, preset="agent")
    cp, _ = check_solver("kv_sessions.cpsat", w, time_limit=60)
    prefix, _ = check_solver("kv_sessions.prefix", w)
    assert solvers.solver_class("kv_sessions.cpsat").kind == "exact"
    assert prefix.objective < cp.objective and cp.stats["entry_level_bound"] <= cp.objective
    assert cp.bound is None  # not a bound on the family's problem: the leaderboard must not rank others against it


def test_policies_rank_as_expected_and_ttft_comes_from_the_serving_simulator():
    w = generate_sessions(seed=0, kind="agent", num_sessions=12, capacity=12000)
    res = {p: evaluate(w, run_session_policy(w, p)) for p in SESSION_POLICIES}
    assert res["none"]["token_hit_rate"] == 0.0
    assert res["lru"]["recompute_tokens"] < res["none"]["recompute_tokens"]
    assert res["none"]["ttft_mean"] > res["lru"]["ttft_mean"] > 0
    assert res["belady"]["recompute_tokens"] <= res["lru"]["recompute_tokens"]
    assert res["prefix"]["token_hit_rate"] > 0.3


@pytest.mark.parametrize("name", [*SESSION_POLICIES, "cpsat"])
@pytest.mark.parametrize("preset", ["tiny", "chat", "agent"])
def test_solvers_claim_the_evaluators_recompute_tokens(name, preset):
    """The pool's own count of recomputed tokens equals the evaluator's, re-derived from the held items."""
    w = sysgym.get_family("kv_sessions").generator(seed=1, preset=preset)
    sol, m = check_solver(f"kv_sessions.{name}", w, evaluate_kwargs={"serve": False})
    assert isinstance(sol.objective, float) and m["recompute_tokens"] == sol.objective


def test_ttl_and_continuum_options_change_the_result():
    w = generate_sessions(seed=0, kind="agent", num_sessions=20, capacity=8000)
    short = simulate(w, "ttl", ttl_s=1.0).recompute_tokens
    assert short > simulate(w, "ttl").recompute_tokens  # a 1 s TTL drops what the next turn needs
    assert simulate(w, "continuum", ttl_factor=0.1).recompute_tokens > simulate(w, "continuum").recompute_tokens
    assert run_session_policy(w, "ttl", ttl_s=1.0) == simulate(w, "ttl", ttl_s=1.0).items


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
    with pytest.raises(InfeasibleSolutionError, match="content"):
        reuse_per_turn(w, [(999, 0, 10, 0.0, 1.0)])
    with pytest.raises(InfeasibleSolutionError, match="format"):
        evaluate(w, [(1, 2)])
    with pytest.raises(InfeasibleSolutionError, match="malformed"):
        evaluate(w, [(0, 10, 5, 0.0, 1.0)])
    with pytest.raises(UnknownNameError, match="belady"):
        run_session_policy(w, "fifo")
    with pytest.raises(UnknownNameError, match="belady"):
        simulate(w, "cpsat")  # a solver, but not a policy the pool can drive
    with pytest.raises(InvalidArgumentError, match="ttl_s"):
        simulate(w, "ttl", ttl_s=0)
    with pytest.raises(InvalidArgumentError, match="cost"):
        solvers.get("kv_sessions.cpsat", cost="cubic")
