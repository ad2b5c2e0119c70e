"""Attention profiles (vidur's attention.csv columns) and the fit of the attention efficiencies.

Columns: n_q_head, n_kv_head, n_embd, num_tensor_parallel_workers, batch_size, prefill_chunk_size,
kv_cache_size (past tokens per request), is_prefill, block_size, time_stats.attn_prefill.median or
time_stats.attn_decode.median (ms), per attention layer on one GPU.
"""
from __future__ import annotations

import numpy as np

from .fitting_lm import levenberg_marquardt
from .hardware import GPU
from .memory import dtype_bytes
from .operators import decode_attention_bytes, decode_attention_seconds, prefill_attention_seconds
from .profiles import _floats, _require, read_csv_columns

COLUMNS = ("n_q_head", "n_kv_head", "n_embd", "num_tensor_parallel_workers", "batch_size",
           "prefill_chunk_size", "kv_cache_size", "is_prefill")


def read_attention_profile(path) -> dict:
    cols = read_csv_columns(path)
    _require(cols, COLUMNS, path)
    data = {c: _floats(cols[c]) if c != "is_prefill" else
            np.array([str(v).lower() in ("true", "1") for v in cols[c]]) for c in COLUMNS}
    data["block_size"] = _floats(cols["block_size"]) if "block_size" in cols else np.full(len(cols["n_embd"]), 16.0)
    for kind in ("attn_prefill", "attn_decode"):
        key = f"time_stats.{kind}.median"
        data[kind] = _floats(cols[key]) * 1e-3 if key in cols else np.full(len(cols["n_embd"]), np.nan)
    return data


def _concat(files) -> dict:
    parts = [read_attention_profile(p) for p in files]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def predict_rows(d: dict, gpu: GPU, dtype: str, prefill: dict, decode: dict) -> np.ndarray:
    b = dtype_bytes(dtype)
    tp = d["num_tensor_parallel_workers"]
    heads = d["n_q_head"] / tp
    kv_heads = np.maximum(1.0, d["n_kv_head"] / tp)
    head_dim = d["n_embd"] / d["n_q_head"]
    chunk, past, batch = d["prefill_chunk_size"], d["kv_cache_size"], d["batch_size"]
    pre = prefill["overhead_us"] * 1e-6 + batch * prefill_attention_seconds(
        gpu, chunk, chunk + past, heads, kv_heads, head_dim, prefill, b, dtype)
    kv = batch * decode_attention_bytes(past, kv_heads, head_dim, b, 1)
    dec = decode["overhead_us"] * 1e-6 + decode_attention_seconds(gpu, kv, decode)
    return np.where(d["is_prefill"], pre, dec)


def _fit_one(names, start, residual_fn):
    x = levenberg_marquardt(lambda x: residual_fn(dict(zip(names, np.exp(x)))), np.log(start))
    return dict(zip(names, np.exp(x)))


def fit_attention_profiles(files, gpu: GPU, dtype: str, defaults: dict) -> dict:
    d = _concat(files)
    out = {}
    pre_rows = d["is_prefill"] & np.isfinite(d["attn_prefill"]) & (d["attn_prefill"] > 0)
    dec_rows = ~d["is_prefill"] & np.isfinite(d["attn_decode"]) & (d["attn_decode"] > 0)
    measured = np.where(d["is_prefill"], d["attn_prefill"], d["attn_decode"])
    pre_p, dec_p = dict(defaults["attn_prefill"]), dict(defaults["attn_decode"])
    if pre_rows.sum() >= 3:
        names = ("eta_compute", "overhead_us")

        def res(p):
            pred = predict_rows(d, gpu, dtype, {**pre_p, **p}, dec_p)
            return np.log(pred[pre_rows]) - np.log(measured[pre_rows])

        pre_p.update(_fit_one(names, [pre_p[n] for n in names], res))
        out["attn_prefill"] = pre_p
    if dec_rows.sum() >= 2:
        names = ("eta_memory", "overhead_us")

        def res(p):
            pred = predict_rows(d, gpu, dtype, pre_p, {**dec_p, **p})
            return np.log(pred[dec_rows]) - np.log(measured[dec_rows])

        dec_p.update(_fit_one(names, [dec_p[n] for n in names], res))
        out["attn_decode"] = dec_p
    return out
