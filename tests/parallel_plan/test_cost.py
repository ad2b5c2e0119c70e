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


# -- what a pipeline costs: exchanges on the links stages cross, interleaving, imbalance, end of iteration --
def _uniform_cfg(**kw):
    cfg = {"t": 8, "p": 4, "d": 1, "b": 1, "v": 1, "sp": False, "base": 2, "z": 0, "dopt": False, "m": 16, "c": 1,
           "pl": 0}
    cfg.update(kw)
    return cfg


def test_exchanges_use_the_link_the_two_stages_cross():
    """t c d = 2 GPUs per stage: stages 0-3 share node 0 (NVLink), the 3 -> 4 boundary crosses to node 1."""
    cm = CostModel(GPT, kernels.get_cluster("dgx-a100", num_nodes=2), 2048)
    cfg = _uniform_cfg(t=2, p=8, m=64)
    kinds = cm.stage_kinds(cfg, np.arange(8))
    assert kinds["next"].tolist() == [1, 1, 1, 2, 1, 1, 1, 0] and kinds["prev"].tolist() == [0, 1, 1, 1, 2, 1, 1, 1]
    st = cm.stage_terms(cfg, np.arange(8), 5, 0)
    lt = cm.layer_terms(2, 1, False, 1)
    assert float(st["p2p"][3] - st["p2p"][2]) == pytest.approx(float(lt["q"][2] - lt["q"][1]))
    # The vectorised path (three stages and a closed-form sum of the boundaries) prices it as stage by stage.
    plan = TrainingPlan(tp=2, pp=8, dp=1, micro_batch=1, recompute="full")
    a = _est(plan, nodes=2, batch=64)
    b = _est(plan.replace(partition=(5,) * 8), nodes=2, batch=64)
    assert a.feasible and b.iteration_time_s == pytest.approx(a.iteration_time_s, rel=1e-12)


def test_scatter_gather_message_and_interleaving_communication():
    """SC'21 Sec. 4.1: each GPU sends b s h / t bytes and the receiver all-gathers the t pieces over NVLink;
    interleaving (Sec. 2.2.2) multiplies a stage's exchanges by v and wraps the last stage round to the first."""
    cluster = kernels.get_cluster("dgx-a100", num_nodes=4)
    cm = CostModel(GPT, cluster, 2048)
    spec = cm.spec
    lt = cm.layer_terms(8, 1, False, 1)
    act = 2048 * spec.hidden_size * 2.0
    view = cluster.links_view(2, 1, (0,))
    hand = (kernels.predict_collective_time("send_recv", act / 8, 2, view)
            + kernels.predict_collective_time("all_gather", act, 8, kernels.get_cluster("dgx-a100"))) * 1e-3
    assert float(lt["q"][2]) == pytest.approx(hand, rel=1e-9)
    one = cm.stage_terms(_uniform_cfg(), np.arange(4), 10, 0)
    two = cm.stage_terms(_uniform_cfg(v=2), np.arange(4), 10, 0)
    assert float(two["p2p"][1]) == pytest.approx(2 * float(one["p2p"][1]))
    assert float(one["p2p"][0]) == pytest.approx(float(lt["q"][2])) and float(two["p2p"][0]) == pytest.approx(
        4 * float(lt["q"][2]))  # the first stage gains the wrap-around exchange with the last
    # Bubble with interleaving: (p - 1) tau / v for equal stages (here the middle stages set tau_max).
    out = cm.uniform(_uniform_cfg(v=2), 16)
    assert float(out["pipeline"]) == pytest.approx(15 * float(out["tau_max"]) + float(out["tau_sum"]) / 2
                                                   + float(out["tau_max"]) / 2)


def test_embedding_and_lm_head_unbalance_equal_stages():
    cm = CostModel(GPT, kernels.get_cluster("dgx-a100", num_nodes=4), 2048)
    st = cm.stage_terms(_uniform_cfg(), np.arange(4), 10, 0)
    lt = cm.layer_terms(8, 1, False, 1)
    q = float(lt["q"][2])  # the first and last stage have one neighbour, the middle ones two
    assert float(st["tau"][3] - st["tau"][1]) == pytest.approx(
        float(lt["head_fwd"] + lt["head_bwd"] + lt["ce_tp"][2]) - q, rel=1e-9)
    assert float(st["tau"][0] - st["tau"][1]) == pytest.approx(
        float(lt["emb_fwd"] + lt["emb_bwd"] + lt["emb_tp"][2]) - q, rel=1e-9)


def test_gradient_reduction_overlaps_the_cool_down_only():
    """Megatron SC'21 does not overlap the reduction with backpropagation, but stage i finishes its backward i
    chunk-backwards before stage 0: the untied LM head makes Llama's last stage reduce the most, yet stage 0's
    reduction is the one left exposed. Megatron-Core's bucketed overlap (overlap_grad_reduce) hides more."""
    cluster = kernels.get_cluster("dgx-a100", num_nodes=8)
    plan = TrainingPlan(tp=8, pp=4, dp=2, micro_batch=1, recompute="selective", sequence_parallel=True)
    est = estimate_training("llama-2-70b", cluster, plan, seq_len=4096, global_batch=64)
    cm = CostModel("llama-2-70b", cluster, 4096)
    cfg = _uniform_cfg(p=4, d=2, m=32, sp=True, base=1)
    st = cm.stage_terms(cfg, np.arange(4), 20, 0)
    assert float(st["sync"][3]) > float(st["sync"][0])  # the untied LM head
    assert est.time_breakdown_s["grad_sync_and_optimizer_s"] == pytest.approx(float(st["sync"][0] + st["step"][0]))
    lead = float(cm.mean_stage_backward(cm.layer_terms(8, 1, True, 1), 4, 1, 1))
    assert float(st["end"][3]) == pytest.approx(float(st["sync"][3] + st["step"][3]) - 3 * lead)
    overlapped = estimate_training("llama-2-70b", cluster, plan, seq_len=4096, global_batch=64,
                                   overlap_grad_reduce=True)
    assert overlapped.time_breakdown_s["grad_sync_and_optimizer_s"] < est.time_breakdown_s["grad_sync_and_optimizer_s"]


def test_optimizer_step_and_gradient_dtype():
    """46 bytes per local parameter (unscale, norm, Adam, zero_grad); fp16 training reduces fp16 gradients,
    bf16 training fp32 ones (Megatron-LM's --accumulate-allreduce-grads-in-fp32 rule)."""
    import copy

    from sysgym.kernels.calibration import Calibration, load_calibration
    from sysgym.kernels.operators import memory_bound_seconds

    cluster = kernels.get_cluster("dgx-a100", num_nodes=4)
    cm = CostModel(GPT, cluster, 2048)
    cfg = _uniform_cfg(p=1, d=4, m=8, dopt=True)
    st = cm.stage_terms(cfg, 0, 40, 0)
    local = float(st["params"]) / 4
    stream = cm.cal.class_params("add")
    assert float(st["step"]) == pytest.approx(float(memory_bound_seconds(cm.gpu, 46 * local, stream)))
    base = load_calibration()
    bf16 = CostModel(GPT, cluster, 2048, calibration=Calibration(device=base.device, dtype="bf16",
                                                                 params=copy.deepcopy(base.params)))
    assert cm.grad_reduce_bytes == 2.0 and bf16.grad_reduce_bytes == 4.0
    dp_only = _uniform_cfg(p=1, d=4, m=8)
    assert float(bf16.stage_terms(dp_only, 0, 40, 0)["sync"]) == pytest.approx(
        2 * float(cm.stage_terms(dp_only, 0, 40, 0)["sync"]), rel=0.05)


@pytest.mark.parametrize("plan", [
    TrainingPlan(tp=2, pp=8, dp=2, micro_batch=1, virtual_stages=5, recompute="full"),  # 2 stages per node
    TrainingPlan(tp=8, pp=4, dp=1, micro_batch=2, virtual_stages=2, sequence_parallel=True, recompute="selective"),
    TrainingPlan(tp=1, pp=2, dp=16, micro_batch=1, recompute="full", distributed_optimizer=True),
])
def test_three_representative_stages_price_equal_stages_as_every_stage(plan):
    """The vectorised path prices three stages and sums the boundaries in closed form; a cluster of two identical
    node groups is priced stage by stage: the two must agree (interleaving's wrap-around included)."""
    link = kernels.Link(25.0, 10.0, "ib-hdr-200")
    twins = kernels.Cluster(gpu="a100-80gb", gpus_per_node=8, node_groups=(
        {"num_nodes": 2, "inter_node": link}, {"num_nodes": 2, "inter_node": link}))
    fast = _est(plan, nodes=4, batch=160)
    staged = estimate_training(GPT, twins, plan, seq_len=2048, global_batch=160)
    assert fast.feasible == staged.feasible
    assert staged.iteration_time_s == pytest.approx(fast.iteration_time_s, rel=1e-12)
    assert staged.memory_gib.total == pytest.approx(fast.memory_gib.total, rel=1e-12)
