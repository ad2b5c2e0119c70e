"""Every registered method: the claimed objective equals the evaluator's; the MILP dominates on mass."""
import pytest

from sysgym import solvers
from sysgym.envs.kv_eviction.evaluate import evaluate
from sysgym.errors import InvalidArgumentError
from sysgym.testing import check_solver

ONLINE = ["kv_eviction.random", "kv_eviction.streaming_llm", "kv_eviction.h2o", "kv_eviction.tova",
          "kv_eviction.snapkv"]


def test_all_methods_are_registered():
    assert {"kv_eviction.full", "kv_eviction.milp", *ONLINE} <= set(solvers.list("kv_eviction"))


@pytest.mark.parametrize("name", ["kv_eviction.full", *ONLINE])
def test_claimed_objective_is_the_evaluators_and_the_decoder_agrees(name, tiny_instance):
    """The claim is the evaluator's (one masked parallel forward); the incremental decoder, which ran the evicted
    cache step by step, measured the same loss increase up to float rounding."""
    sol, m = check_solver(name, tiny_instance)
    assert sol.stats["loss_increase_decoder"] == pytest.approx(m["loss_increase"], abs=1e-6)


@pytest.mark.parametrize("granularity", ["sequence", "layer", "head"])
def test_per_group_budgets_hold(granularity, tiny_instance):
    sol = solvers.get("kv_eviction.h2o", granularity=granularity).solve(tiny_instance)
    m = evaluate(tiny_instance, sol)
    assert m["granularity"] == granularity and m["cache_tokens"] <= tiny_instance.budget


def test_milp_retains_at_least_the_mass_of_every_online_policy(tiny_instance):
    sol, m = check_solver("kv_eviction.milp", tiny_instance, time_limit=60)
    assert sol.stats["loss_increase_decoder"] == pytest.approx(m["loss_increase"], abs=1e-6)
    assert sol.status == "optimal"
    bound = sol.stats["attention_mass_bound"]
    assert m["attention_mass"] <= bound + 1e-6
    assert sol.stats["attention_mass_gap"] <= 1e-6
    for name in ONLINE:
        other = evaluate(tiny_instance, solvers.get(name).solve(tiny_instance))
        assert m["attention_mass"] >= other["attention_mass"] - 1e-9, (name, other["attention_mass"])
    assert m["attention_mass"] > evaluate(tiny_instance, solvers.get("kv_eviction.random").solve(
        tiny_instance))["attention_mass"] + 0.05


def test_milp_refuses_long_traces(tiny_instance):
    with pytest.raises(InvalidArgumentError, match="short traces"):
        solvers.get("kv_eviction.milp", max_seq_len=32).solve(tiny_instance)
