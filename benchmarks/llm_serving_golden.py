"""Equality check for speed work on the LLM-serving simulator: records every scheduler's full output (metrics,
per-request records, token timestamps, iteration log, memory trace, totals) on the first 3,000 Azure conv
requests at 1.0x (plus 3.0x for preemptions, vllm with swap, pp=2 and 2 replicas), then compares a later run.

    .venv/bin/python benchmarks/llm_serving_golden.py record out.pkl
    .venv/bin/python benchmarks/llm_serving_golden.py check out.pkl   # exact, or <= 1e-12 relative on floats
"""
from __future__ import annotations

import pickle
import sys

import numpy as np

from sysgym import datasets
from sysgym.envs.llm_serving import load_trace, simulate
from sysgym.envs.llm_serving.disagg import Pool

SCHEDULERS = ("vllm", "orca", "sarathi", "past_future", "vtc", "sjf")


def cases():
    trace = load_trace(datasets.path("azure-conv-2023"), format="azure")[:3000]
    for s in SCHEDULERS:
        yield f"{s}/1.0x", trace, dict(scheduler=s)
        yield f"{s}/3.0x", trace.scale_rate(3.0), dict(scheduler=s)
        yield f"{s}/pp2", trace, dict(scheduler=s, pp=2)
        yield f"{s}/2rep", trace.scale_rate(2.0), dict(scheduler=s, num_replicas=2)
    yield "vllm/swap/3.0x", trace.scale_rate(3.0), dict(scheduler="vllm", preemption_mode="swap")
    yield "vllm/pp2-seq", trace, dict(scheduler="vllm", pp=2, pipeline="sequential")
    for s in ("vllm", "sarathi", "orca"):
        yield f"disagg/{s}", trace.scale_rate(2.0), dict(disagg=True, decode=Pool(1, 1, 1, scheduler=s),
                                                         prefill=Pool(1, 1, 1, scheduler=s))


def run(trace, kw) -> dict:
    kw = dict(kw)
    if kw.pop("disagg", False):
        from sysgym.envs.llm_serving.disagg import simulate_disagg

        res = simulate_disagg(trace, **kw)
    else:
        res = simulate(trace, **kw)
    rec = res.records()
    out = {"metrics": dict(res.metrics), "stats": dict(res.stats), "memory_trace": res.memory_trace}
    for k, v in rec.items():
        out[f"rec.{k}"] = v
    return out


def same(a, b, path="") -> list[str]:
    if isinstance(a, dict):
        errs = [f"{path}: keys differ {set(a) ^ set(b)}"] if set(a) != set(b) else []
        for k in a:
            if k in b:
                errs += same(a[k], b[k], f"{path}.{k}")
        return errs
    if isinstance(a, list):
        if len(a) != len(b):
            return [f"{path}: length {len(a)} != {len(b)}"]
        return [e for i, (x, y) in enumerate(zip(a, b)) for e in same(x, y, f"{path}[{i}]")]
    if isinstance(a, np.ndarray) or isinstance(a, (float, int, np.floating, np.integer)):
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape:
            return [f"{path}: shape {a.shape} != {b.shape}"]
        if a.dtype.kind in "fc":
            if np.array_equal(a, b, equal_nan=True):
                return []
            d = np.abs(a - b) / np.maximum(np.abs(a), 1e-300)
            d = np.where(np.isnan(a) & np.isnan(b), 0.0, d)
            m = float(np.nanmax(d)) if d.size else 0.0
            return [f"{path}: max rel diff {m:.3g}" + (" (NOT within 1e-12)" if m > 1e-12 else " (within 1e-12)")]
        return [] if np.array_equal(a, b) else [f"{path}: differs"]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def main() -> int:
    mode, path = sys.argv[1], sys.argv[2]
    only = sys.argv[3:]
    if mode == "record":
        data = {name: run(tr, kw) for name, tr, kw in cases() if not only or name in only}
        with open(path, "wb") as f:
            pickle.dump(data, f)
        print(f"recorded {len(data)} runs")
        return 0
    with open(path, "rb") as f:
        ref = pickle.load(f)
    bad = 0
    for name, tr, kw in cases():
        if name not in ref or (only and name not in only):
            continue
        errs = same(ref[name], run(tr, kw))
        hard = [e for e in errs if "within 1e-12)" not in e or "NOT" in e]
        print(f"{name}: {'identical' if not errs else ('; '.join(errs[:5]))}")
        bad += bool(hard)
    print("ALL OK" if not bad else f"{bad} runs differ")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
