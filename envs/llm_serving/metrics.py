"""Serving metrics computed from per-request records (the one place that turns records into numbers).

TTFT = first token - arrival; TBT = gap between consecutive tokens of a request (pooled over all
requests); TPOT = (finish - first token) / (output - 1) per request; E2E = finish - arrival. Percentiles
are numpy's linear-interpolation percentiles. SLO attainment is the share of requests meeting both the
TTFT and the TPOT SLO (DistServe, Zhong et al. OSDI'24); `slo_goodput_rps` is how many of them finish per
second. The DistServe goodput (highest rate with >= 90 % attainment) needs several runs: see
`sysgym.solvers.llm_serving.plan.max_rate`. Per-client service is VTC's weighted token count (prompt +
2 x output; Sheng et al. OSDI'24); `fairness_jain` is Jain's index of the clients' mean normalised
latency (E2E per output token): 1 when every client waits alike per token, 1/k when one client takes all
the delay.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from sysgym import kernels

# Default SLOs: Vidur-Search's (Agrawal et al., MLSys'24, Sec. 6): P90 TTFT <= 2 s, P99 TBT <= 200 ms.
DEFAULT_SLO_TTFT_S = 2.0
DEFAULT_SLO_TPOT_S = 0.2
ATTAINMENT_TARGET = 0.9  # DistServe: goodput is the highest rate at which 90 % of requests meet the SLOs


PERCENTILES = (50, 90, 99)


def _pcts(name: str, x: np.ndarray, scratch: bool = False) -> dict[str, float]:
    """`name`_p50/_p90/_p99. One np.percentile call for the three: one partial sort of x (the pooled token gaps
    run to millions) instead of three; each value is the one a single-q call gives. `scratch`: x is a temporary
    the caller no longer reads, partitioned in place (no copy of millions of gaps; the values are the same)."""
    vals = (np.percentile(x, PERCENTILES, overwrite_input=scratch).tolist() if len(x)
            else [float("nan")] * len(PERCENTILES))
    return {f"{name}_p{q}": float(v) for q, v in zip(PERCENTILES, vals)}


def token_gaps(token_time: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """All inter-token gaps inside requests (not across request boundaries)."""
    if len(token_time) < 2:
        return np.zeros(0)
    d = np.diff(token_time)
    keep = np.ones(len(d), bool)
    ends = offsets[1:-1] - 1  # gap from a request's last token to the next request's first token
    keep[ends[(ends >= 0) & (ends < len(d))]] = False
    return d[keep]


def compute_metrics(rec: dict[str, Any], *, slo_ttft_s: float = DEFAULT_SLO_TTFT_S,
                    slo_tpot_s: float = DEFAULT_SLO_TPOT_S, model: str | None = None, gpu: str | None = None,
                    num_gpus: int = 1, num_blocks: int | None = None) -> dict[str, float]:
    arrival, output = rec["arrival"], rec["output"]
    tt, off = rec["token_time"], rec["token_offsets"]
    n = len(arrival)
    first = tt[off[:-1]] if n else np.zeros(0)
    finish = rec["finish"]
    ttft = first - arrival
    e2e = finish - arrival
    tbt = token_gaps(tt, off)
    multi = output > 1
    tpot = np.zeros(n)
    tpot[multi] = (finish[multi] - first[multi]) / (output[multi] - 1)
    start = float(arrival.min()) if n else 0.0
    end = float(finish.max()) if n else 0.0
    makespan = max(end - start, 1e-12)
    ok = (ttft <= slo_ttft_s) & (tpot <= slo_tpot_s)
    tbt_mean = float(tbt.mean()) if len(tbt) else float("nan")
    m: dict[str, float] = {
        "num_requests": int(n),
        "ttft_mean": float(ttft.mean()) if n else float("nan"),
        **_pcts("ttft", ttft),
        "tbt_mean": tbt_mean,
        **_pcts("tbt", tbt, scratch=True),  # (after its mean: the partition reorders the gaps)
        "tpot_mean": float(tpot[multi].mean()) if multi.any() else float("nan"),
        **_pcts("tpot", tpot[multi], scratch=True),
        "e2e_mean": float(e2e.mean()) if n else float("nan"),
        **_pcts("e2e", e2e),
        "queue_mean": float(np.nanmean(rec["first_scheduled"] - arrival)) if n else float("nan"),
        "makespan_s": makespan,
        "throughput_rps": n / makespan,
        "throughput_tokens_s": float(output.sum()) / makespan,
        "num_preemptions": int(rec["num_preemptions"].sum()),
        "slo_ttft_s": float(slo_ttft_s), "slo_tpot_s": float(slo_tpot_s),
        "slo_attainment": float(ok.mean()) if n else float("nan"),
        "slo_goodput_rps": float(ok.sum()) / makespan,
    }
    # per-client service and fairness
    client = rec.get("client")
    if client is not None and n:
        served = rec["prompt"] + 2.0 * output
        k = int(client.max()) + 1
        service = np.bincount(client, weights=served, minlength=k)
        present = np.bincount(client, minlength=k) > 0
        norm = e2e / output
        lat = np.bincount(client, weights=norm, minlength=k)[present] / np.bincount(client, minlength=k)[present]
        m["num_clients"] = int(present.sum())
        m["fairness_jain"] = float(lat.sum() ** 2 / (len(lat) * (lat ** 2).sum())) if (lat > 0).any() else 1.0
        for c in np.flatnonzero(present)[:16]:
            sel = client == c
            m[f"client{c}_service_tokens"] = float(service[c])
            m[f"client{c}_ttft_mean"] = float(ttft[sel].mean())
    it = rec.get("iterations")
    if it is not None and len(it["start"]):
        busy = float((it["end"] - it["start"]).sum())
        m["gpu_busy_frac"] = busy / makespan
        m["num_iterations"] = int(it["n"].sum())
        if num_blocks:
            m["kv_blocks_peak_frac"] = float(it["blocks_max"].max()) / num_blocks
    if "kv_area" in rec and num_blocks:
        m["kv_util_mean"] = float(rec["kv_area"]) / (makespan * num_blocks * max(1, int(rec.get("num_replicas", 1))))
    if model is not None and gpu is not None and "tokens_processed" in rec:
        flops = 2.0 * kernels.models.get(model).active_params() * float(rec["tokens_processed"])
        peak = kernels.get_gpu(gpu).peak_flops("fp16") * num_gpus
        m["mfu"] = flops / (makespan * peak)
    return m
