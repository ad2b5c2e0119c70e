"""Attention profiles (vidur's attention.csv columns) and the fit of the attention efficiencies.

Columns: n_q_head, n_kv_head, n_embd, num_tensor_parallel_workers, batch_size, prefill_chunk_size,
kv_cache_size (past tokens per request), is_prefill, block_size, time_stats.attn_prefill.median or
time_stats.attn_decode.median (ms), per attention layer on one GPU.

The cost functions are `operators.prefill_attention_seconds` (FLOPs quadratic in the chunk, linear in the past
context, a fill term for small problems, a KV-read memory term) and `operators.decode_attention_seconds`
(split-KV CTAs streaming the KV cache in rounds over the SMs). Their parameters are efficiencies relative to the
GPU's peak FLOP/s and HBM bandwidth plus a launch overhead, so a fit on one GPU predicts another from its
catalogue specs. The fit holds out half the measured shapes (HOLDOUT_RULE) and reports the error on both halves;
`attention_report` prints it (`sysgym calibrate ... --kinds attention` stores it in the calibration file).
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
HOLDOUT_RULE = ("held out: prefill rows whose chunk size is at an odd position of the sorted distinct chunk sizes, "
                "decode rows whose batch size is at an odd position of the sorted distinct batch sizes")
# The error targets: prefill rows with at least 256 new tokens, decode rows with at least 8 requests.
MIN_PREFILL_CHUNK, MIN_DECODE_BATCH = 256, 8
# With fewer rows than this, a class fits only its efficiency (a `profile --quick` run has 2-3 rows per class,
# too few to separate an overhead from an efficiency).
FULL_FIT_ROWS = 8
PREFILL_FULL = ("eta_compute", "causal_factor", "diag_tiles", "fill_waves", "overhead_us")
DECODE_FULL = ("eta_memory", "sm_share", "overhead_us")
# A fitted value beyond these factors of its starting point means the model lets it run off (a modelling
# error the fit refuses to ship); LM works on log-parameters, so this is its only "bound".
RUNAWAY = 1e3


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


def concat_profiles(files) -> dict:
    parts = [read_attention_profile(p) for p in files]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def predict_rows(d: dict, gpu: GPU, dtype: str, prefill: dict, decode: dict) -> np.ndarray:
    """Predicted seconds per row (launch overhead included, once per row's kernel)."""
    b = dtype_bytes(dtype)
    tp = d["num_tensor_parallel_workers"]
    heads = d["n_q_head"] / tp
    kv_heads = np.maximum(1.0, d["n_kv_head"] / tp)
    head_dim = d["n_embd"] / d["n_q_head"]
    chunk, past, batch = d["prefill_chunk_size"], d["kv_cache_size"], d["batch_size"]
    pre = prefill["overhead_us"] * 1e-6 + batch * prefill_attention_seconds(
        gpu, chunk, chunk + past, heads, kv_heads, head_dim, prefill, b, dtype)
    dec = np.full(len(batch), np.nan)
    rows = ~d["is_prefill"]
    # The decode step reads the past context plus the new token, in whole blocks of the profiled cache.
    ctx = np.ceil((past + 1) / d["block_size"]) * d["block_size"]
    for key in {(int(n), float(k), float(h)) for n, k, h in zip(batch[rows], kv_heads[rows], head_dim[rows])}:
        sel = rows & (batch == key[0]) & (kv_heads == key[1]) & (head_dim == key[2])
        kv = key[0] * decode_attention_bytes(ctx[sel], key[1], key[2], b, 1)
        dec[sel] = decode_attention_seconds(gpu, kv, decode, key[0], key[1], int(key[2]), b)
    dec = decode["overhead_us"] * 1e-6 + dec
    return np.where(d["is_prefill"], pre, dec)


def row_masks(d: dict) -> dict[str, np.ndarray]:
    """Boolean row masks: usable prefill/decode rows, the held-out half (HOLDOUT_RULE), the target rows."""
    measured = np.where(d["is_prefill"], d["attn_prefill"], d["attn_decode"])
    ok = np.isfinite(measured) & (measured > 0)
    pre, dec = d["is_prefill"] & ok, ~d["is_prefill"] & ok

    def odd_position(values, rows):
        distinct = np.unique(values[rows])
        return rows & np.isin(values, distinct[1::2])

    held = odd_position(d["prefill_chunk_size"], pre) | odd_position(d["batch_size"], dec)
    target = (pre & (d["prefill_chunk_size"] >= MIN_PREFILL_CHUNK)) | (dec & (d["batch_size"] >= MIN_DECODE_BATCH))
    return {"prefill": pre, "decode": dec, "held_out": held, "target": target, "measured": measured}


def _fit_one(names, start, residual_fn):
    x = levenberg_marquardt(lambda x: residual_fn(dict(zip(names, np.exp(x)))), np.log(start))
    fitted = {n: float(v) for n, v in zip(names, np.exp(x))}
    for n, s in zip(names, start):
        if not s / RUNAWAY < fitted[n] < s * RUNAWAY:
            raise ValueError(f"attention fit: {n} ran off to {fitted[n]:.3g} (start {s:g}); the model does not "
                             "describe these rows")
    return fitted


def fit_attention_profiles(files, gpu: GPU, dtype: str, defaults: dict, *, holdout: bool = True) -> dict:
    """Fits attn_decode, then attn_prefill (which shares the decode kernel's KV streaming efficiency) on the
    rows the holdout leaves (all rows with holdout=False). Log-residuals: every row weighs by its relative error.
    """
    d = concat_profiles(files)
    m = row_masks(d)
    train = ~m["held_out"] if holdout else np.ones(len(m["measured"]), bool)
    measured = m["measured"]
    out = {}
    pre_p, dec_p = dict(defaults["attn_prefill"]), dict(defaults["attn_decode"])
    dec_rows, pre_rows = m["decode"] & train, m["prefill"] & train
    if dec_rows.any():
        names = DECODE_FULL if dec_rows.sum() >= FULL_FIT_ROWS else ("eta_memory",)

        def res(p):
            pred = predict_rows(d, gpu, dtype, pre_p, {**dec_p, **p})
            return np.log(pred[dec_rows]) - np.log(measured[dec_rows])

        dec_p.update(_fit_one(names, [dec_p[n] for n in names], res))
        pre_p["eta_memory"] = dec_p["eta_memory"]
        out["attn_decode"] = dec_p
    if pre_rows.any():
        names = PREFILL_FULL if pre_rows.sum() >= FULL_FIT_ROWS else ("eta_compute",)

        def res(p):
            pred = predict_rows(d, gpu, dtype, {**pre_p, **p}, dec_p)
            return np.log(pred[pre_rows]) - np.log(measured[pre_rows])

        pre_p.update(_fit_one(names, [pre_p[n] for n in names], res))
        out["attn_prefill"] = pre_p
    return out


def attention_report(files, gpu: GPU, dtype: str, prefill: dict, decode: dict) -> dict[str, float]:
    """MAPE (percent) of the given parameters on the target rows (prefill chunk >= 256, decode batch >= 8),
    split into the rows the fit used and the held-out rows, plus the worst held-out row."""
    d = concat_profiles(files)
    m = row_masks(d)
    ape = np.abs(predict_rows(d, gpu, dtype, prefill, decode) / m["measured"] - 1.0) * 100.0
    out = {}
    for kind in ("prefill", "decode"):
        for part, sel in (("fit", ~m["held_out"]), ("heldout", m["held_out"])):
            rows = m[kind] & m["target"] & sel
            if rows.any():
                out[f"attn_{kind}_{part}"] = float(ape[rows].mean())
        rows = m[kind] & m["target"] & m["held_out"]
        if rows.any():
            out[f"attn_{kind}_heldout_max"] = float(ape[rows].max())
    return out
