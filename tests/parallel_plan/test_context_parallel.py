"""Context parallelism (Megatron-Core ring attention) for long sequences: legality, memory, communication, and
128K-token plans searched."""
import numpy as np
import pytest

from sysgym import kernels, solvers
from sysgym.envs.parallel_plan import TrainingPlan, estimate_training, generate
from sysgym.envs.parallel_plan.cost import CostModel
from sysgym.envs.parallel_plan.evaluate import as_plan
from sysgym.envs.parallel_plan.space import evaluate_space, uniform_space

CLUSTER = kernels.get_cluster("dgx-a100", num_nodes=2)


def _est(plan, seq=32768, batch=16, flash=True, model="llama-3-8b"):
    return estimate_training(model, CLUSTER, plan, seq_len=seq, global_batch=batch, flash_attention=flash)


def test_context_parallel_rules():
    plan = TrainingPlan(tp=2, pp=1, dp=4, micro_batch=1, context_parallel=2, recompute="full",
                        distributed_optimizer=True)
    assert _est(plan).feasible
    no_flash = _est(plan, flash=False)
    assert no_flash.rule == "context parallelism" and "FlashAttention" in no_flash.reason
    odd = _est(TrainingPlan(tp=2, pp=1, dp=2, micro_batch=1, context_parallel=4, recompute="full"), seq=4100)
    assert odd.rule == "context parallelism" and "2*context_parallel = 8" in odd.reason
    count = _est(TrainingPlan(tp=2, pp=1, dp=8, micro_batch=1, context_parallel=2))
    assert count.rule == "GPU count" and "dp*tp*cp*pp = 8*2*2*1 = 32" in count.reason


def test_activations_follow_the_local_tokens_and_optimizer_shards_over_d_times_c():
    base = TrainingPlan(tp=2, pp=1, dp=8, micro_batch=1, recompute="selective", distributed_optimizer=True)
    one = _est(base)
    two = _est(base.replace(dp=4, context_parallel=2))
    # Every activation term is per token: s/c tokens per rank halve them exactly (no s^2 scores with FlashAttention).
    assert two.memory_gib.activations == pytest.approx(one.memory_gib.activations / 2, rel=1e-12)
    # The distributed optimizer shards over the d x c ranks that hold the same parameters: 8 either way.
    assert two.memory_gib.optimizer == pytest.approx(one.memory_gib.optimizer, rel=1e-12)
    assert two.memory_gib.parameters == pytest.approx(one.memory_gib.parameters, rel=1e-12)


def test_ring_exchanges_are_exposed_only_beyond_the_attention_they_overlap():
    """Ring attention passes each rank's K and V chunk (2 b s/c kv_heads/t head_dim x 2 B) c - 1 times per layer,
    overlapped with the attention of the block at hand: exposed only where the transfer is longer."""
    cm = CostModel("llama-3-8b", CLUSTER, 32768, flash_attention=True)
    spec = cm.spec
    lt = cm.layer_terms(2, 1, False, 2)
    kv_msg = 2 * 1 * (32768 / 2) * (spec.num_kv_heads / 2) * spec.head_dim * 2
    step = kernels.predict_collective_time("send_recv", kv_msg, 2, kernels.get_cluster("dgx-a100")) * 1e-3
    attn_f = float(lt["attn_fwd"])
    assert float(lt["cp_fwd"][..., 1]) == pytest.approx(max(0.0, step - attn_f / 2), abs=1e-12)
    # Across nodes (t c = 16 > 8 GPUs per node) the same ring runs over the NICs: slower, so more is exposed.
    across = cm.layer_terms(8, 1, False, 2)
    within = cm.layer_terms(4, 1, False, 2)
    assert float(across["cp_bwd"][..., 2]) >= float(within["cp_bwd"][..., 2])


def test_flash_attention_counts_the_causal_half():
    s, h = 32768, kernels.models.get("llama-3-8b").hidden_size
    unfused = CostModel("llama-3-8b", CLUSTER, s)
    flash = CostModel("llama-3-8b", CLUSTER, s, flash_attention=True)
    assert unfused.layer_attn_flops == pytest.approx(4 * s * s * h)
    assert flash.layer_attn_flops == pytest.approx(2 * s * s * h)


@pytest.fixture(scope="module")
def long_space():
    inst = generate(preset="long")
    space = uniform_space(inst)
    return inst, space, evaluate_space(inst, space)


def test_128k_plans_are_priced_and_context_parallelism_wins(long_space):
    inst, space, out = long_space
    assert inst.seq_len == 131072 and inst.flash_attention
    feasible = out["feasible"]
    assert feasible.any() and np.all(np.isfinite(out["time"][feasible]))
    c = space.cfg["c"]
    assert set(np.unique(c)) >= {1, 2, 4, 8, 16}
    best = int(np.argmin(np.where(feasible, out["time"], np.inf)))
    best_no_cp = np.min(np.where(feasible & (c == 1), out["time"], np.inf))
    assert c[best] > 1 and out["time"][best] < 0.9 * best_no_cp
    sol = solvers.get("parallel_plan.exhaustive").solve(inst)
    assert as_plan(sol.decisions).context_parallel > 1
    assert sol.objective == pytest.approx(float(out["time"][best]), rel=1e-9)
    # The rules of thumb reach a plan that fits too (context parallelism before pipelining).
    megatron = solvers.get("parallel_plan.megatron").solve(inst)
    assert megatron.status == "feasible" and as_plan(megatron.decisions).context_parallel >= 1
