"""Memory planner numbers (Vidur's) and the batch-latency model's agreement with sysgym.kernels."""
import numpy as np
import pytest

from sysgym import kernels
from sysgym.envs.llm_serving import plan_memory
from sysgym.envs.llm_serving.latency import BatchLatency
from sysgym.errors import InvalidInstanceError, UnknownNameError


def test_vidur_semantics_llama2_7b_a100_tp1():
    plan = plan_memory("llama-2-7b", "a100-80gb", tp=1, semantics="vidur")
    # Vidur's planner derives 29 request slots (its "max batch size"), which size the cache; the batch cap is
    # its schedulers' batch_size_cap, 128 (issue 19: the slots used to cap batches silently).
    assert plan.request_slots == 29 and plan.max_batch_size == 128
    assert plan.num_blocks == 7424
    assert plan.kv_bytes_per_token == 2 * 2 * 32 * 4096  # K and V, fp16, 32 layers, 4096 wide


def test_vllm_semantics_shares_blocks_and_splits_with_tp_pp():
    vidur = plan_memory("llama-2-7b", "a100-80gb", semantics="vidur")
    vllm = plan_memory("llama-2-7b", "a100-80gb")
    # all weights (embedding + LM head) and activations are charged, yet blocks are not tied to max_tokens
    assert vllm.weight_bytes > vidur.weight_bytes
    assert 7000 < vllm.num_blocks < 7700 and vllm.max_batch_size == 256
    tp2 = plan_memory("codellama-34b", "a100-80gb", tp=2)
    pp2 = plan_memory("codellama-34b", "a100-80gb", tp=1, pp=2)
    assert tp2.kv_bytes_per_token == pytest.approx(kernels.kv_bytes_per_token("codellama-34b", "fp16", tp=2))
    assert pp2.num_blocks > 0 and tp2.num_blocks > 0


def test_planner_errors_name_the_problem():
    with pytest.raises(UnknownNameError, match="vidur"):
        plan_memory("llama-2-7b", "a100-80gb", semantics="nope")
    with pytest.raises(InvalidInstanceError, match="does not fit"):
        plan_memory("llama-2-70b", "a100-40gb", tp=1)
    with pytest.raises(KeyError, match="llama-2-7b"):
        plan_memory("llama-9", "a100-80gb")


@pytest.mark.parametrize("model,tp", [("llama-2-7b", 1), ("codellama-34b", 2)])
def test_attention_decomposition_matches_kernels(model, tp):
    lat = BatchLatency(model, "a100-80gb", tp=tp)
    rng = np.random.default_rng(0)
    for _ in range(20):
        pre = [(int(c), int(p)) for c, p in zip(rng.integers(1, 2048, 3), rng.integers(0, 2048, 3))]
        dec = rng.integers(1, 4096, rng.integers(1, 64)).tolist()
        direct, ours = lat.decompose_check(pre[: rng.integers(0, 4)], dec)
        assert ours == pytest.approx(direct, rel=1e-9)


def test_iteration_time_uses_kernels_operator_times():
    lat = BatchLatency("llama-2-7b", "a100-80gb")
    ops = kernels.predict_op_times("a100-80gb", "llama-2-7b", 512)
    emb = ops.pop("emb")
    expect = (32 * sum(ops.values()) + emb) * 1e-3
    assert lat.base(512) == pytest.approx(expect, rel=1e-12)
    # TP2 adds two all-reduces per layer
    lat2 = BatchLatency("llama-2-7b", "a100-80gb", tp=2)
    ops2 = kernels.predict_op_times("a100-80gb", "llama-2-7b", 512, tp=2)
    emb2 = ops2.pop("emb")
    assert lat2.base(512) > (32 * sum(ops2.values()) + emb2) * 1e-3
