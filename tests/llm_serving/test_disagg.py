"""Prefill/decode disaggregation (envs/llm_serving/disagg.py)."""
import time

import numpy as np
import pytest

from sysgym import kernels
from sysgym.envs.llm_serving import generate
from sysgym.envs.llm_serving.disagg import Pool, check_disagg, kv_transfer_seconds, simulate_disagg
from sysgym.envs.llm_serving.latency import BatchLatency
from sysgym.errors import InfeasibleSolutionError, InvalidArgumentError, UnknownNameError


def _trace(n=200, rate=2.0, seed=0):
    return generate(preset="small", seed=seed, num_requests=n).trace.scale_rate(rate)


def test_one_request_prefill_then_transfer_then_decode():
    prompt, out = 900, 4
    r = simulate_disagg([{"arrival": 1.0, "prompt_tokens": prompt, "output_tokens": out}],
                        prefill=Pool(1, 1, 1), decode=Pool(1, 1, 1))
    lat = BatchLatency("llama-2-7b", "a100-80gb")
    tt = r.requests[0]["token_times"]
    assert tt[0] - 1.0 == pytest.approx(lat.iteration(prompt, [(prompt, 0)], 0.0, 0), rel=1e-12)
    xfer = kv_transfer_seconds("llama-2-7b", "a100-80gb", [prompt], Pool(), Pool())[0]
    # the decode replica admits it when its KV has arrived and decodes token 1 over prompt + 1 KV slots
    kv = -(-(prompt + 1) // 16) * 16
    assert tt[1] - tt[0] == pytest.approx(xfer + lat.iteration(1, (), float(kv), 1), rel=1e-9)
    assert r.requests.decode_replica[0] == 1 and r.requests.replica[0] == 0
    assert r.metrics["num_gpus"] == 2


def test_kv_transfer_bytes_and_links_come_from_kernels():
    spec = kernels.models.get("llama-2-7b")
    p, d = Pool(tp=2), Pool(tp=4)
    got = kv_transfer_seconds("llama-2-7b", "a100-80gb", [1000, 2000], p, d)
    nbytes = np.array([1000, 2000]) * kernels.kv_bytes_per_token(spec, "fp16") / 2  # two GPU pairs in parallel
    want = kernels.predict_collective_time("send_recv", nbytes, 2, kernels.Cluster(gpu="a100-80gb")) * 1e-3
    assert np.allclose(got, want, rtol=1e-12) and got[1] > got[0] > 0
    net = kv_transfer_seconds("llama-2-7b", "a100-80gb", [1000], p, d, kv_link="network")[0]
    assert net > 3 * got[0]  # 25 GB/s NIC per GPU vs NVLink
    # replicas that cannot share a node (4 + 8 GPUs > 8) send over the network
    far = kv_transfer_seconds("llama-2-7b", "a100-80gb", [1000], Pool(tp=4), Pool(tp=8))[0]
    assert far == pytest.approx(kv_transfer_seconds("llama-2-7b", "a100-80gb", [1000], Pool(tp=4), Pool(tp=8),
                                                    kv_link="network")[0])


def test_runs_are_checked_deterministic_and_every_token_is_served():
    tr = _trace()
    a = simulate_disagg(tr, prefill=Pool(1, 1, 2, router="round_robin"), decode=Pool(2, 1, 1), seed=3)
    b = simulate_disagg(tr, prefill=Pool(1, 1, 2, router="round_robin"), decode=Pool(2, 1, 1), seed=3)
    assert a.metrics == b.metrics
    assert 0 < a.metrics["kv_util_mean"] < 1 and a.metrics["num_gpus"] == 4
    rec = a.requests
    assert np.all(np.isfinite(rec.token_time)) and np.all(np.diff(rec.token_offsets) == rec.output)
    multi = rec.output > 1
    second = rec.token_time[rec.token_offsets[:-1][multi] + 1]
    assert np.all(second >= rec.first_token[multi] + rec.kv_transfer_s[multi])
    assert set(np.unique(rec.replica)) == {0, 1} and set(np.unique(rec.decode_replica[multi])) == {2}
    check_disagg(a, num_gpus=4)
    with pytest.raises(InfeasibleSolutionError, match="GPU count"):
        check_disagg(a, num_gpus=3)


def test_decode_admission_waits_for_free_blocks_and_preempts_by_recompute():
    tr = _trace(n=120, rate=8.0)
    small = simulate_disagg(tr, decode=Pool(1, 1, 1), num_blocks={"decode": 300})
    big = simulate_disagg(tr, decode=Pool(1, 1, 1))
    it = small.iterations
    dec = it["replica"] == 1
    assert it["blocks_max"][dec].max() <= 300
    assert small.metrics["num_preemptions"] > 0  # recompute preemptions on the decode replica, all still served
    assert small.metrics["tpot_mean"] > big.metrics["tpot_mean"]
    # tamper: a decode step above the pool's blocks is rejected
    small.iterations["blocks_max"][np.flatnonzero(dec)[0]] = 301
    with pytest.raises(InfeasibleSolutionError, match="KV memory"):
        check_disagg(small)


def test_pipelined_pools():
    tr = _trace(n=100)
    r = simulate_disagg(tr, model="codellama-34b", prefill=Pool(1, 2, 1), decode=Pool(2, 1, 1))
    assert r.metrics["num_requests"] == 100 and r.metrics["num_gpus"] == 4


@pytest.mark.parametrize("kw, err, match", [
    ({"prefill": Pool(replicas=0)}, InvalidArgumentError, "replicas"),
    ({"decode": (1, 1, -2)}, InvalidArgumentError, "replicas"),
    ({"decode": {"tp": 1, "ratio": 2}}, UnknownNameError, "ratio"),
    ({"prefill": Pool(router="random")}, UnknownNameError, "router"),
    ({"decode": Pool(scheduler="fifo")}, UnknownNameError, "scheduler"),
    ({"kv_link": "pcie"}, UnknownNameError, "link"),
    ({"num_blocks": {"decode": 0}}, InvalidArgumentError, "num_blocks"),
])
def test_bad_input_is_a_named_error_before_work(kw, err, match):
    tr = _trace()
    t = time.process_time()
    with pytest.raises(err, match=match):
        simulate_disagg(tr, **kw)
    assert time.process_time() - t < 0.5
