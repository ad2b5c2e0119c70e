"""The energy model (kernels.energy) and one server's iteration loop under a clock cap."""
import numpy as np
import pytest

from sysgym import kernels
from sysgym.envs.power_cap.server import MEM_ACTIVITY, IterationCost, Server
from sysgym.envs.power_cap.simulator import iteration_cost
from sysgym.kernels.energy import IDLE_FRACTION, board_power_w, clock_time_factor


def test_board_power_spans_idle_to_tdp_and_falls_with_the_clock():
    tdp = kernels.get_gpu("a100-80gb").tdp_w
    assert board_power_w("a100-80gb", 0.0) == pytest.approx(IDLE_FRACTION * tdp)
    assert board_power_w("a100-80gb", 1.0) == pytest.approx(tdp)
    # P = idle + (TDP - idle) x activity x f^3
    assert board_power_w("a100-80gb", 1.0, 0.8) == pytest.approx(100 + 300 * 0.8 ** 3)
    assert board_power_w("a100-80gb", 1.0, 0.8, exponent=2.0) == pytest.approx(100 + 300 * 0.64)
    with pytest.raises(ValueError):
        board_power_w("a100-80gb", 1.2)
    with pytest.raises(ValueError):
        board_power_w("a100-80gb", 0.5, 0.0)


def test_clock_cap_slows_compute_bound_work_only():
    assert clock_time_factor(1.0, 0.1, 0.5) == pytest.approx(2.0)  # compute-bound: 1 / f
    assert clock_time_factor(0.1, 1.0, 0.5) == pytest.approx(1.0)  # memory-bound: unchanged while c / f <= m
    assert clock_time_factor(0.4, 1.0, 0.25) == pytest.approx(1.6)  # the compute side overtakes memory
    np.testing.assert_allclose(clock_time_factor(np.array([1.0, 0.1]), np.array([0.1, 1.0]), 0.5), [2.0, 1.0])


def test_roofline_split_of_llama_7b_on_a100():
    cost = IterationCost("llama-2-7b", "a100-80gb", 1, 2048)
    # Decode of 32 requests at 1k context: weights + KV reads dominate (memory-bound).
    c, m = cost.split(32, 32 * 1024, 32 * 1024)
    assert c < m
    # A 2048-token prefill chunk: 2 x 6.7e9 x 2048 FLOPs dwarf the 13.5 GB of weights (compute-bound).
    c, m = cost.split(2048, 2048, 2048 * 1024)
    assert c > 3 * m
    assert cost.latency.base(2048) > 5 * cost.latency.base(32)  # kernels price the big batch far above the small one


def _one_request_server(prompt: int, output: int) -> Server:
    cost = iteration_cost("llama-2-7b", "a100-80gb", 1, 2048)
    return Server(cost, np.array([0.0]), np.array([prompt]), np.array([output]), kv_capacity=100_000,
                  max_num_seqs=256, max_batched_tokens=2048, exponent=3.0)


def test_one_request_timeline_and_the_cap_effect_by_phase():
    full, capped = _one_request_server(2048, 101), _one_request_server(2048, 101)
    e_full, busy_full = full.advance(0.0, 10.0, 1.0)
    e_cap, busy_cap = capped.advance(0.0, 10.0, 0.6)
    # TTFT: one 2048-token prefill iteration, compute-bound, so the cap stretches it by almost 1 / 0.6.
    assert 1.5 < capped.first[0] / full.first[0] <= 1 / 0.6 + 1e-9
    # 100 decode iterations of one request: memory-bound, barely slower.
    dec_full, dec_cap = full.finish[0] - full.first[0], capped.finish[0] - capped.first[0]
    assert 1.0 <= dec_cap / dec_full < 1.05
    # Energy: idle the rest of the 10 s; capped runs draw less power.
    idle_w = IDLE_FRACTION * 400.0
    assert e_full > idle_w * 10.0 and e_cap < e_full
    assert busy_full == pytest.approx(full.finish[0]) and busy_cap == pytest.approx(capped.finish[0])
    # A busy decode iteration draws between the memory-bound floor and TDP.
    p_decode = (e_full - idle_w * (10.0 - busy_full)) / busy_full
    assert idle_w + 300 * MEM_ACTIVITY * 0.99 < p_decode < 400.0


def test_iteration_straddling_the_interval_end_carries_its_energy():
    a = _one_request_server(2048, 1)
    whole, _ = a.advance(0.0, 1.0, 1.0)
    half = a.first[0] / 2  # the prefill iteration runs past this interval's end
    b = _one_request_server(2048, 1)
    e1, busy1 = b.advance(0.0, half, 1.0)
    e2, busy2 = b.advance(half, 1.0, 1.0)
    assert busy1 == pytest.approx(half) and busy1 + busy2 == pytest.approx(a.first[0])
    assert e1 + e2 == pytest.approx(whole)
    assert b.first[0] == pytest.approx(a.first[0])
