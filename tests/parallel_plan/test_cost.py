"""The cost model: memory by the published formulas, legality rules, pipeline arithmetic, FLOP counting."""
import math

import numpy as np
import pytest

from sysgym import kernels
from sysgym.envs.parallel_plan import TrainingPlan, estimate_training
from sysgym.envs.parallel_plan.cost import GIB, CostModel

GPT = "gpt-18b"  # Table 1 shape: 48 heads, h 6144, 40 layers, vocab 51200


def _est(plan, model=GPT, nodes=4, seq=2048, batch=512, **kw):
    return estimate_training(model, kernels.get_cluster("dgx-a100", num_nodes=nodes), plan, seq_len=seq,
                             global_batch=batch, **kw)


def test_model_state_is_18_bytes_per_parameter_and_shards_as_zero_says():
    spec = kernels.models.get(GPT)
    plan = TrainingPlan(tp=8, pp=1, dp=4, micro_batch=1, recompute="full")
    m = _est(plan).memory_gib
    params_per_gpu = (spec.num_params() + 0.0) / 8  # pp = 1: everything on one stage, split over t
    # Layer norms and position embeddings are not split by t, so allow their (small) share.
    assert m.parameters * GIB == pytest.approx(2 * params_per_gpu, rel=0.01)
    assert m.gradients * GIB == pytest.approx(4 * params_per_gpu, rel=0.01)
    assert m.optimizer * GIB == pytest.approx(12 * params_per_gpu, rel=0.01)
    d = 4
    dist = _est(plan.replace(distributed_optimizer=True)).memory_gib
    assert dist.optimizer == pytest.approx(m.optimizer / d) and dist.gradients == pytest.approx(m.gradients)
    z2 = _est(plan.replace(zero_stage=2)).memory_gib
    assert z2.gradients == pytest.approx(m.gradients / d)
    z3 = _est(plan.replace(zero_stage=3)).memory_gib
    assert z3.parameters == pytest.approx(m.parameters / d)


@pytest.mark.parametrize("t,sp,mode,expected", [
    (1, False, 0, lambda a, s, h, t: 34 + 5 * a * s / h),
    (8, False, 0, lambda a, s, h, t: 10 + 24 / t + 5 * a * s / (h * t)),
    (8, True, 0, lambda a, s, h, t: (34 + 5 * a * s / h) / t),
    (8, False, 1, lambda a, s, h, t: 10 + 24 / t),
    (8, True, 1, lambda a, s, h, t: 34 / t),
    (8, False, 2, lambda a, s, h, t: 2),
    (8, True, 2, lambda a, s, h, t: 2 / t),
])
def test_activations_per_layer_follow_korthikanti_table_2(t, sp, mode, expected):
    cm = CostModel(GPT, "dgx-a100", 2048)
    spec = cm.spec
    s, b, h, a = 2048, 2, spec.hidden_size, spec.num_heads
    n_full = 1.0 if mode == 2 else 0.0
    got = cm.activation_bytes(t, b, sp, 1 if mode == 1 else 0, 1.0, n_full, False, False)
    assert float(got) == pytest.approx(s * b * h * expected(a, s, h, t), rel=1e-12)


def test_first_stage_holds_p_microbatches_and_interleaving_adds_more():
    base = TrainingPlan(tp=8, pp=4, dp=1, micro_batch=1, recompute="none")
    one = _est(base, nodes=4, batch=64)
    act1 = one.memory_gib.activations
    stage_act = [s for s in one.stage_memory_gib]
    assert stage_act[0] > stage_act[1] > stage_act[2]
    inter = _est(base.replace(virtual_stages=2), nodes=4, batch=64)
    # Korthikanti et al. Sec. 4.2.3: the first stage stores p (1 + (p-1)/(p v)) micro-batches' worth.
    p, v = 4, 2
    ratio = (p + (p - 1) / v) / p
    assert inter.memory_gib.activations / act1 == pytest.approx(ratio, rel=0.02)


def test_pipeline_bubble_and_interleaving():
    cm = CostModel(GPT, kernels.get_cluster("dgx-a100", num_nodes=4), 2048)
    cfg = {"t": 8, "p": 4, "d": 1, "b": 1, "v": 1, "sp": False, "base": 2, "z": 0, "dopt": False, "m": 16}
    out = cm.uniform(cfg, 16)
    # 1F1B with m micro-batches: (m - 1) max tau + sum tau.
    assert float(out["pipeline"]) == pytest.approx(15 * float(out["tau_max"]) + float(out["tau_sum"]))
    inter = cm.uniform({**cfg, "v": 2}, 16)
    assert float(inter["pipeline"]) < float(out["pipeline"])


def test_hardware_flops_are_megatron_eq3_with_full_recomputation():
    spec = kernels.models.get("gpt-145b")
    B, s, L, h, V = 2304, 2048, spec.num_layers, spec.hidden_size, spec.vocab_size
    cm = CostModel(spec, "dgx-a100", s)
    hw, model = cm.flops_per_iteration(B, 1.0, 0.0)
    eq3 = 96 * B * s * L * h * h * (1 + s / (6 * h) + V / (16 * L * h))
    assert float(hw) == pytest.approx(eq3, rel=1e-12)
    assert model == pytest.approx(eq3 * 3 / 4, rel=0.02)  # no recompute: 3 of the 4 passes (head aside)


def test_selective_and_full_recompute_trade_memory_for_time():
    plans = {rc: TrainingPlan(tp=8, pp=2, dp=2, micro_batch=2, recompute=rc) for rc in ("none", "selective", "full")}
    est = {rc: _est(p) for rc, p in plans.items()}
    assert est["full"].memory_gib.activations < est["selective"].memory_gib.activations \
        < est["none"].memory_gib.activations
    assert est["none"].iteration_time_s < est["selective"].iteration_time_s < est["full"].iteration_time_s


@pytest.mark.parametrize("plan,rule,text", [
    (TrainingPlan(tp=8, pp=2, dp=3, micro_batch=1), "GPU count", "dp*tp*pp = 3*8*2 = 48"),
    (TrainingPlan(tp=32, pp=1, dp=1, micro_batch=1), "tensor parallelism divides heads", "48 attention heads"),
    (TrainingPlan(tp=4, pp=8, dp=1, micro_batch=1, partition=(6,) * 8), "partition", "sums to 48"),
    (TrainingPlan(tp=1, pp=32, dp=1, micro_batch=1), "pipeline divides layers", "40 layers"),
    (TrainingPlan(tp=8, pp=4, dp=1, micro_batch=1, virtual_stages=2), "interleaving", "multiple of pp=4"),
    (TrainingPlan(tp=8, pp=2, dp=2, micro_batch=1, zero_stage=2), "ZeRO with pipelining", "pipeline"),
    (TrainingPlan(tp=1, pp=1, dp=32, micro_batch=1, sequence_parallel=True), "sequence parallelism", "tp > 1"),
    (TrainingPlan(tp=8, pp=1, dp=4, micro_batch=3), "micro-batches", "not a multiple"),
])
def test_illegal_plans_name_the_rule(plan, rule, text):
    est = _est(plan, batch=6 if plan.virtual_stages == 2 else 512)
    assert not est.feasible and est.rule == rule and text in est.reason
    assert math.isinf(est.iteration_time_s)


def test_out_of_memory_is_reported_with_numbers():
    est = _est(TrainingPlan(tp=1, pp=1, dp=32, micro_batch=8), model="gpt-39b")
    assert not est.feasible and est.rule == "memory"
    assert "out of memory" in est.reason and f"{est.memory_gib.total:.1f} GiB" in est.reason


def test_unknown_names_list_the_known_ones():
    with pytest.raises(KeyError, match="known models: .*llama-2-70b"):
        _est(TrainingPlan(tp=1, pp=1, dp=8, micro_batch=1), model="llama-9")
    with pytest.raises(KeyError, match="known clusters: .*dgx-a100"):
        estimate_training("llama-2-7b", "dgx-z9", TrainingPlan(tp=1, pp=1, dp=8, micro_batch=1), seq_len=8,
                          global_batch=8)


def test_explicit_equal_partition_matches_the_uniform_path():
    plan = TrainingPlan(tp=8, pp=4, dp=1, micro_batch=1, recompute="full")
    a = _est(plan, batch=64)
    b = _est(plan.replace(recompute="none", partition=(10,) * 4, recompute_layers=(10,) * 4), batch=64)
    assert b.iteration_time_s == pytest.approx(a.iteration_time_s, rel=1e-12)
    assert b.memory_gib.total == pytest.approx(a.memory_gib.total, rel=1e-12)
    assert np.isfinite(a.tflops_per_gpu) and 0 < a.mfu < 1
