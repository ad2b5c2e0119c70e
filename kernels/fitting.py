"""Fits the efficiency parameters of each operator class on profiles, and scores a calibration.

Residuals are log(predicted / measured), so every row weighs by its relative error (a 5 µs norm and a
30 ms GEMM count alike) and the fit minimises what MAPE reports.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import math
from pathlib import Path

import numpy as np

from .calibration import DEFAULT_CLASS_PARAMS, Calibration
from .collectives import DEFAULT_PARAMS as COLLECTIVE_DEFAULTS
from .collectives import collective_seconds
from .fitting_lm import levenberg_marquardt
from .hardware import GPU, Cluster, get_cluster, get_gpu
from .layer import OP_CLASS, gemm_shapes, memory_op_bytes
from .memory import dtype_bytes
from .operators import gemm_seconds, memory_bound_seconds
from .profiles import (
    compute_profile_files,
    network_profile_files,
    read_compute_profile,
    read_network_profile,
)

# Parameter name -> (initial value, transform). "log": value = exp(x); "p": value = 1 + exp(x).
CLASS_SPACES = {
    "gemm": {"eta_compute": (0.7, "log"), "eta_memory": (0.8, "log"), "overhead_us": (3.0, "log"),
             "sharpness": (2.5, "p"), "fill_waves": (0.05, "log")},
    "memory": {"eta_memory": (0.5, "log"), "overhead_us": (2.0, "log"), "fill_bytes": (2e6, "log"),
               "l2_gain": (0.3, "log")},
}
COLLECTIVE_SPACE = {name: (COLLECTIVE_DEFAULTS[name], "log") for name in (
    "intra_eff", "inter_eff", "inter_cap_nics", "intra_reduce_eff", "inter_reduce_eff",
    "intra_latency_us", "inter_latency_us", "base_latency_us", "ll_bandwidth_frac")}
SMALL_TOKENS = 128  # MAPE is reported separately below this: those kernels run a few µs, timed to 1 µs


def _decode(space: dict, x) -> dict:
    # Clipped so a wild trial step of the optimiser cannot overflow.
    vals = np.exp(np.clip(np.asarray(x, dtype=float), -40.0, 40.0))
    return {name: float(v if kind == "log" else 1.0 + v) for (name, (_, kind)), v in zip(space.items(), vals)}


def _encode(space: dict) -> np.ndarray:
    return np.array([math.log(v) if kind == "log" else math.log(v - 1.0) for v, kind in space.values()])


def _fit(space: dict, predict, measured_s: np.ndarray) -> dict:
    ok = np.isfinite(measured_s) & (measured_s > 0)
    target = np.log(measured_s[ok])

    def residuals(x):
        pred = predict(_decode(space, x))[ok]
        return np.log(np.maximum(pred, 1e-15)) - target

    return _decode(space, levenberg_marquardt(residuals, _encode(space)))


def _mape(pred, measured) -> float:
    ok = np.isfinite(measured) & (measured > 0)
    return float(100.0 * np.mean(np.abs(pred[ok] / measured[ok] - 1.0))) if ok.any() else float("nan")


class _Rows:
    """All (op, shape, tokens, tp, time) rows of a set of compute profiles, as flat arrays."""

    def __init__(self, files):
        self.op, self.tokens, self.tp, self.seconds, self.n, self.k, self.nbytes_per_tok = [], [], [], [], [], [], []
        self.model = []
        for path in files:
            prof = read_compute_profile(path)
            spec = prof["model"]
            for op, ms in prof["times_ms"].items():
                if op not in OP_CLASS:
                    continue  # an operator this model does not price (e.g. a new vidur column)
                for tp in np.unique(prof["tp"]):
                    sel = prof["tp"] == tp
                    tok = prof["num_tokens"][sel]
                    if op in gemm_shapes(spec, int(tp)):
                        n, k = gemm_shapes(spec, int(tp))[op]
                        per_tok = np.full(tok.shape, np.nan)
                    else:
                        n = k = np.nan
                        # bytes scale linearly in tokens except the norm's weight vector: keep both terms
                        per_tok = memory_op_bytes(spec, tok, int(tp), 1.0)[op]
                    self.op += [op] * tok.size
                    self.model += [spec.name] * tok.size
                    self.tokens.append(tok)
                    self.tp.append(np.full(tok.shape, tp))
                    self.seconds.append(ms[sel] * 1e-3)
                    self.n.append(np.full(tok.shape, n))
                    self.k.append(np.full(tok.shape, k))
                    self.nbytes_per_tok.append(per_tok)
        if not self.op:
            raise ValueError("no operator rows found in the compute profiles")
        self.op, self.model = np.array(self.op), np.array(self.model)
        for name in ("tokens", "tp", "seconds", "n", "k", "nbytes_per_tok"):
            setattr(self, name, np.concatenate(getattr(self, name)))


def _predict_rows(rows: _Rows, gpu: GPU, params: dict, dtype: str) -> np.ndarray:
    b = dtype_bytes(dtype)
    out = np.full(rows.seconds.shape, np.nan)
    for op in np.unique(rows.op):
        sel = rows.op == op
        cls = OP_CLASS[op]
        if cls not in params:
            continue
        if cls == "gemm":
            out[sel] = gemm_seconds(gpu, rows.tokens[sel], rows.n[sel], rows.k[sel], params[cls], b, dtype)
        else:
            out[sel] = memory_bound_seconds(gpu, rows.nbytes_per_tok[sel] * b, params[cls])
    return out


def fit_compute(files, gpu: GPU, dtype: str) -> dict[str, dict]:
    rows = _Rows(files)
    b = dtype_bytes(dtype)
    params = {}
    for cls in sorted({OP_CLASS[op] for op in np.unique(rows.op)}):
        sel = np.isin(rows.op, [op for op, c in OP_CLASS.items() if c == cls])
        if cls == "gemm":
            def predict(p, sel=sel):
                return gemm_seconds(gpu, rows.tokens[sel], rows.n[sel], rows.k[sel], p, b, dtype)
            params[cls] = _fit(CLASS_SPACES["gemm"], predict, rows.seconds[sel])
        else:
            def predict(p, sel=sel):
                return memory_bound_seconds(gpu, rows.nbytes_per_tok[sel] * b, p)
            params[cls] = _fit(CLASS_SPACES["memory"], predict, rows.seconds[sel])
    return params


def evaluate_compute(calibration: Calibration, files, gpu: GPU | None = None) -> dict[str, dict[str, float]]:
    """Per-operator MAPE (%) of a calibration on profile files: tokens >= 128, < 128 and per model."""
    rows = _Rows(files)
    gpu = gpu or calibration.device
    pred = _predict_rows(rows, gpu, calibration.params, calibration.dtype)
    report = {}
    for op in sorted(np.unique(rows.op)):
        sel = rows.op == op
        big = sel & (rows.tokens >= SMALL_TOKENS)
        report[op] = {"tokens>=128": _mape(pred[big], rows.seconds[big]),
                      "tokens<128": _mape(pred[sel & ~big], rows.seconds[sel & ~big])}
        for model in sorted(np.unique(rows.model)):
            m = big & (rows.model == model)
            report[op][f"{model} tokens>=128"] = _mape(pred[m], rows.seconds[m])
    return report


def _network_groups(files):
    groups = []
    for path in files:
        prof = read_network_profile(path)
        keys = sorted(set(zip(prof["num_workers"], prof["devices_per_node"])))
        for workers, per_node in keys:
            sel = (prof["num_workers"] == workers) & (prof["devices_per_node"] == per_node)
            groups.append((prof["kind"], int(workers), int(per_node), prof["size_bytes"][sel],
                           prof["times_ms"][sel] * 1e-3))
    return groups


def _group_cluster(base: Cluster, workers: int, per_node: int) -> Cluster:
    return get_cluster(base, gpus_per_node=per_node, num_nodes=max(1, -(-workers // per_node)))


def fit_collectives(files, cluster: Cluster | str = "dgx-a100-pod") -> dict:
    base = get_cluster(cluster)
    groups = _network_groups(files)
    kinds = {g[0] for g in groups}
    multi_node = any(w > p for _, w, p, _, _ in groups)
    space = {k: v for k, v in COLLECTIVE_SPACE.items()
             if ("reduce" not in k or kinds & {"all_reduce", "reduce_scatter"})
             and ("inter" not in k or multi_node)}
    measured = np.concatenate([g[4] for g in groups])

    def predict(p):
        full = {**COLLECTIVE_DEFAULTS, **p}
        return np.concatenate([collective_seconds(kind, size, w, _group_cluster(base, w, per), params=full)
                               for kind, w, per, size, _ in groups])

    return {**COLLECTIVE_DEFAULTS, **_fit(space, predict, measured)}


def evaluate_collectives(params: dict, files, cluster: Cluster | str = "dgx-a100-pod") -> dict[str, float]:
    base = get_cluster(cluster)
    report, preds, meas = {}, [], []
    for kind, w, per, size, seconds in _network_groups(files):
        pred = collective_seconds(kind, size, w, _group_cluster(base, w, per), params=params)
        report[f"{kind} workers={w} per_node={per}"] = _mape(pred, seconds)
        preds.append(pred)
        meas.append(seconds)
    if preds:
        report["all"] = _mape(np.concatenate(preds), np.concatenate(meas))
    return report


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fit_calibration(profile_dir: str | Path, gpu: str | GPU, *, dtype: str = "fp16",
                    models: list[str] | None = None, cluster: Cluster | str = "dgx-a100-pod",
                    command: str = "", source: str = "", out: str | Path | None = None) -> Calibration:
    """Fits every operator class found under profile_dir (compute/, network/) and returns a Calibration.

    `models` restricts compute/ to those file stems (to hold others out). With `out`, also writes JSON.
    """
    profile_dir = Path(profile_dir)
    if not profile_dir.is_dir():
        raise FileNotFoundError(f"profile folder not found: {profile_dir}")
    gpu = get_gpu(gpu)
    compute = compute_profile_files(profile_dir)
    if models is not None:
        missing = sorted(set(models) - {p.stem for p in compute})
        if missing:
            raise KeyError(f"no compute profile for {missing}; found: {[p.stem for p in compute]}")
        compute = [p for p in compute if p.stem in models]
    network = network_profile_files(profile_dir)
    if not compute and not network:
        raise ValueError(f"{profile_dir} has no compute/*.csv or network/*.csv profiles")
    params = fit_compute(compute, gpu, dtype) if compute else {}
    params.update(_fit_attention(profile_dir, gpu, dtype))
    if network:
        params["collective"] = fit_collectives(network, cluster)
    cal = Calibration(device=gpu, dtype=dtype, params=params)
    if compute:
        cal.mape = {op: v["tokens>=128"] for op, v in evaluate_compute(cal, compute).items()}
    if network:
        cal.mape["collectives"] = evaluate_collectives(params["collective"], network, cluster)["all"]
    cal.provenance = {
        "fitted_on": [{"file": str(p.relative_to(profile_dir)), "sha256": _sha256(p)} for p in compute + network],
        "profile_dir": str(profile_dir),
        "source": source,
        "date": _dt.date.today().isoformat(),
        "command": command or f"sysgym calibrate --profiles {profile_dir} --gpu {gpu.name}",
        "mape_note": "MAPE in percent over rows with num_tokens >= 128 (all rows for collectives)",
    }
    if out is not None:
        cal.save(out)
    return cal


def _fit_attention(profile_dir: Path, gpu: GPU, dtype: str) -> dict:
    """Refits attention efficiencies when the profile folder has attention/*.csv (from `profile`)."""
    from .attention_profiles import fit_attention_profiles  # local: only used with local profiles

    files = sorted((profile_dir / "attention").glob("*.csv")) if (profile_dir / "attention").is_dir() else []
    return fit_attention_profiles(files, gpu, dtype, DEFAULT_CLASS_PARAMS) if files else {}
