"""Policy rules on hand-made inputs (no model needed)."""
import numpy as np
import pytest

from sysgym.envs.kv_eviction.generator import budget_tokens
from sysgym.envs.kv_eviction.simulator import PROTECT, evict_to_budget, make_policy
from sysgym.errors import InvalidArgumentError, InvalidInstanceError, UnknownNameError
from sysgym.solvers.kv_eviction.policies import H2O, StreamingLLM, h2o_keep, pool1d, streaming_llm_keep


def test_streaming_llm_keeps_sinks_and_recent_window():
    keep = streaming_llm_keep(1000, start_size=4, recent_size=512)
    np.testing.assert_array_equal(keep, np.concatenate([np.arange(4), np.arange(488, 1000)]))
    np.testing.assert_array_equal(streaming_llm_keep(100, 4, 512), np.arange(100))


def _run_scores(policy, t_len, budget, prompt_len, attn_fn=None):
    """The simulator's eviction loop without a model: returns the tokens present after step t_len - 1."""
    policy.reset(num_seqs=1, n_layer=1, n_head=1, seq_len=t_len, budget=budget, prompt_len=prompt_len)
    present = np.ones((1, 1, 1, prompt_len), bool)
    for t in range(prompt_len, t_len):
        if present.sum() + 1 > budget:
            present &= ~evict_to_budget(policy.scores(t, present), present, budget)
        present = np.concatenate([present, np.ones((1, 1, 1, 1), bool)], -1)
        if attn_fn is not None:
            policy.observe(t, attn_fn(t, present))
    return np.flatnonzero(present[0, 0, 0])


def test_streaming_llm_policy_in_the_eviction_loop_matches_the_rule():
    kept = _run_scores(StreamingLLM(start_size=4), t_len=1000, budget=516, prompt_len=100)
    np.testing.assert_array_equal(kept, np.concatenate([np.arange(4), np.arange(488, 1000)]))


def test_h2o_keep_on_a_hand_made_score_vector():
    scores = [5.0, 0.1, 3.0, 0.2, 4.0, 0.3, 0.0, 9.0, 9.0, 0.5]
    # recent 3 -> tokens 7, 8, 9; 2 heavy hitters among 0..6 -> token 0 (5.0) and 4 (4.0)
    np.testing.assert_array_equal(h2o_keep(scores, budget=5, recent=3), [0, 4, 7, 8, 9])
    # ties go to the earlier token
    np.testing.assert_array_equal(h2o_keep([1.0, 1.0, 1.0, 0.0], budget=2, recent=1), [0, 3])


def test_h2o_policy_evicts_the_lowest_accumulated_score_outside_the_recent_window():
    pol = H2O(recent_ratio=0.5, granularity="sequence")
    pol.reset(num_seqs=1, n_layer=1, n_head=1, seq_len=10, budget=4, prompt_len=6)
    attn = np.zeros((1, 1, 1, 6, 6))
    attn[..., :, 0] = 0.5
    attn[..., :, 3] = 0.3
    attn[..., :, 1] = 0.1
    pol.observe(0, attn)
    present = np.ones((1, 1, 1, 6), bool)
    s = pol.scores(6, present)
    assert s[0, 0, 0, 5] == PROTECT  # recent window of 2 = tokens 5 and the incoming 6
    drop = evict_to_budget(s, present, 4)
    # keep 3 of 0..5 for the incoming token: 5 (recent) + 0 and 3 (heaviest)
    np.testing.assert_array_equal(np.flatnonzero(~drop[0, 0, 0]), [0, 3, 5])


def test_eviction_ties_go_to_the_oldest_token_and_never_evict_absent_ones():
    present = np.array([[[[True, False, True, True, True]]]])
    drop = evict_to_budget(np.zeros((1, 1, 1, 5)), present, budget=3)
    np.testing.assert_array_equal(drop[0, 0, 0], [True, False, True, False, False])


def test_pool1d_averages_with_same_padding():
    np.testing.assert_allclose(pool1d(np.array([0.0, 3.0, 0.0, 0.0]), 3), [1.5, 1.0, 1.0, 0.0])


def test_unknown_names_and_bad_budgets_are_named():
    with pytest.raises(UnknownNameError, match="h2o"):
        make_policy("lru")
    with pytest.raises(UnknownNameError, match="milp"):  # a solver, but not a policy the simulator can drive
        make_policy("milp")
    with pytest.raises(UnknownNameError, match="granularity"):
        make_policy("h2o", granularity="token")
    with pytest.raises(InvalidArgumentError, match="snapkv"):
        make_policy("snapkv", sinks=4)
    with pytest.raises(InvalidArgumentError, match="recent_ratio"):
        make_policy("h2o", recent_ratio=2.0)
    assert budget_tokens(0.25, 64) == 16 and budget_tokens(20, 64) == 20
    for bad in (0.0, -3, 100, 1.5):
        with pytest.raises(InvalidInstanceError, match="budget"):
            budget_tokens(bad, 64)


def test_named_policies_are_the_registered_solvers_policies():
    from sysgym import solvers

    for name in ("full", "random", "streaming_llm", "h2o", "tova", "snapkv"):
        pol = make_policy(name)
        assert pol.name == name and type(pol) is type(solvers.get(f"kv_eviction.{name}").policy())
    assert make_policy("streaming_llm", start_size=0).start_size == 0
