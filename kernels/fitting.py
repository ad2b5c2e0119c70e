"""Fits the efficiency parameters of each operator class on profiles, and scores a calibration.

Residuals are log(predicted / measured), so every row weighs by its relative error (a 5 µs norm and a
30 ms GEMM count alike) and the fit minimises what MAPE reports.
"""
from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import math
from pathlib import Path

import numpy as np

from .attention_profiles import HOLDOUT_RULE, attention_report, fit_attention_profiles
from .calibration import DEFAULT_CLASS_PARAMS, Calibration
from .collectives import DEFAULT_PARAMS as COLLECTIVE_DEFAULTS
from .collectives import NETWORK_KEYS, collective_seconds
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
    "memory": {"eta_memory": (0.5, "log"), "fill_bytes": (2e6, "log"), "l2_gain": (0.3, "log")},
}
# Not fitted for bandwidth-bound kernels: at small sizes their `fill` term already costs a constant
# fill_bytes / (bandwidth x eta_memory) (3.5 us for act on A100, a launch's worth), so a separate launch
# overhead is the same term twice: a free fit drove it to 4e-18 us, the optimiser's clip, for every
# bandwidth-bound class (act, add, emb, norm, rope). It is 0 by construction; the fill term is the launch cost.
MEMORY_FIXED = {"overhead_us": 0.0}
COLLECTIVE_SPACE = {name: (COLLECTIVE_DEFAULTS[name], "log") for name in (
    "intra_eff", "reduce_eff", "intra_latency_us", "coll_base_us", "p2p_base_us", "ll_bandwidth_frac",
    "ll_latency_frac", "ll128_bandwidth_frac", "ll128_latency_frac")}
# The profiled network's terms (collectives.NETWORK_KEYS), fitted from multi-node rows and stored under the
# profiled cluster's inter-node link name. Starting values as before the networks table existed.
NETWORK_SPACE = {"inter_eff": (0.3, "log"), "inter_reduce_eff": (0.8, "log"), "nic_cap": (1.5, "log"),
                 "tree_eff": (1.0, "log")}
# Not fitted: GPUs sharing one PCIe switch / network path (DGX A100: 2), and the extra per-step latency of a
# network step, which vidur's profiles do not resolve next to the per-call latency (a free fit drove it to
# 4e-18 us, the optimiser's clip, so it is 0 by construction now).
NETWORK_FIXED = {"pcie_share": 2.0, "net_latency_extra_us": 0.0}
# Which profile content identifies a parameter: reductions, several nodes, send/recv, one node.
_NEEDS = {"reduce_eff": "reduce", "inter_reduce_eff": "reduce_multi", "inter_eff": "multi", "nic_cap": "multi",
          "tree_eff": "ar_multi",
          "p2p_base_us": "p2p", "coll_base_us": "coll", "ll128_bandwidth_frac": "single",
          "ll128_latency_frac": "single"}
# Collectives: Levenberg-Marquardt stops only once a step moves no parameter by more than this (relative, in
# log space), so a refit reproduces the shipped file to ~1e-9 whatever BLAS the machine has (a stop on cost
# improvement alone left parameters in flat valleys a few 1e-6 apart between builds).
COLLECTIVE_XTOL = 1e-10
# The tuner's choice is piecewise in tuner_tree (NCCL's correction table is a step function), so the
# fit starts from a few values of it and keeps the best; IRLS_PASSES re-weight the log residuals to
# minimise their absolute value (what MAPE measures) rather than their square.
TUNER_GRID = (1.5, 1.75, 2.0)
IRLS_PASSES = 2
SMALL_TOKENS = 128  # MAPE is reported separately below this: those kernels run a few µs, timed to 1 µs


def _decode(space: dict, x) -> dict:
    # Clipped so a wild trial step of the optimiser cannot overflow.
    vals = np.exp(np.clip(np.asarray(x, dtype=float), -40.0, 40.0))
    return {name: float(v if kind == "log" else 1.0 + v) for (name, (_, kind)), v in zip(space.items(), vals)}


def _encode(space: dict) -> np.ndarray:
    return np.array([math.log(v) if kind == "log" else math.log(v - 1.0) for v, kind in space.values()])


def _fit(space: dict, predict, measured_s: np.ndarray, weights: np.ndarray | None = None,
         xtol: float | None = None) -> dict:
    ok = np.isfinite(measured_s) & (measured_s > 0)
    target = np.log(measured_s[ok])
    w = np.ones(target.size) if weights is None else np.asarray(weights, dtype=float)[ok]

    def residuals(x):
        pred = predict(_decode(space, x))[ok]
        return (np.log(np.maximum(pred, 1e-15)) - target) * w

    return _decode(space, levenberg_marquardt(residuals, _encode(space), xtol=xtol))


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
                return memory_bound_seconds(gpu, rows.nbytes_per_tok[sel] * b, {**MEMORY_FIXED, **p})
            params[cls] = {**_fit(CLASS_SPACES["memory"], predict, rows.seconds[sel]), **MEMORY_FIXED}
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


def _network_groups(files, split: str | None = None):
    """(kind, workers, per_node, sizes, seconds) per measured group; `split` keeps the "even" or
    "odd" rows of each group in size order (a held-out split: fit on one, score on the other)."""
    if split not in (None, "even", "odd"):
        raise ValueError("split must be None, 'even' or 'odd'")
    groups = []
    for path in files:
        prof = read_network_profile(path)
        keys = sorted(set(zip(prof["num_workers"], prof["devices_per_node"])))
        for workers, per_node in keys:
            sel = np.flatnonzero((prof["num_workers"] == workers) & (prof["devices_per_node"] == per_node))
            sel = sel[np.argsort(prof["size_bytes"][sel], kind="stable")]
            if split is not None:
                sel = sel[(0 if split == "even" else 1)::2]
            groups.append((prof["kind"], int(workers), int(per_node), prof["size_bytes"][sel],
                           prof["times_ms"][sel] * 1e-3))
    return groups


def _group_cluster(base: Cluster, workers: int, per_node: int) -> Cluster:
    return get_cluster(base, gpus_per_node=per_node, num_nodes=max(1, -(-workers // per_node)))


PROFILED_CLUSTER = "vidur-a100-dgx"  # the cluster vidur's network profiles were measured on


def fit_collectives(files, cluster: Cluster | str = PROFILED_CLUSTER, *, split: str | None = None) -> dict:
    """Fits the collective parameters on network profiles (median time per row, see profiles.py).

    The NVLink / NCCL terms land at the top level; the network terms (multi-node rows) under
    `networks[<cluster's inter-node link name>]`, the network the profiles measured. Only parameters the
    profiles identify are fitted (e.g. no network without multi-node rows); the rest keep DEFAULT_PARAMS.
    `split` fits on half the rows (see _network_groups).
    """
    base = get_cluster(cluster)
    link = base.inter_node.name or "profiled"
    groups = _network_groups(files, split)
    has = set()
    for kind, w, per, _, _ in groups:
        multi = w > per
        has |= {"coll"} if kind != "send_recv" else {"p2p"}
        has |= {"multi"} if multi else {"single"}
        if kind in ("all_reduce", "reduce_scatter"):
            has |= {"reduce", "reduce_multi"} if multi else {"reduce"}
        if kind == "all_reduce" and multi:
            has.add("ar_multi")
    space = {k: v for k, v in {**COLLECTIVE_SPACE, **NETWORK_SPACE}.items() if k not in _NEEDS or _NEEDS[k] in has}
    measured = np.concatenate([g[4] for g in groups])
    clusters = [_group_cluster(base, w, per) for _, w, per, _, _ in groups]

    def assemble(p: dict, tuner_tree: float) -> dict:
        net = {k: v for k, v in p.items() if k in NETWORK_KEYS}
        out = {**COLLECTIVE_DEFAULTS, **{k: v for k, v in p.items() if k not in NETWORK_KEYS},
               "tuner_tree": tuner_tree}
        if "multi" in has:
            out["networks"] = {link: {**NETWORK_FIXED, **net}}
        return out

    def predict(p, tuner_tree):
        full = assemble(p, tuner_tree)
        return np.concatenate([collective_seconds(kind, size, w, c, params=full)
                               for (kind, w, _, size, _), c in zip(groups, clusters)])

    best = None
    grid = TUNER_GRID if "ar_multi" in has else (COLLECTIVE_DEFAULTS["tuner_tree"],)
    for tuner_tree in grid:
        sp = space
        predict_at = functools.partial(predict, tuner_tree=tuner_tree)
        weights = np.ones(measured.size)
        for _ in range(IRLS_PASSES + 1):
            params = _fit(sp, predict_at, measured, weights, xtol=COLLECTIVE_XTOL)
            resid = np.abs(np.log(predict_at(params) / measured))
            weights = 1.0 / np.sqrt(np.maximum(resid, 0.02))
            sp = {name: (params[name], kind) for name, (_, kind) in sp.items()}
        score = _mape(predict_at(params), measured)
        if best is None or score < best[0]:
            best = (score, assemble(params, tuner_tree))
    return best[1]


def evaluate_collectives(params: dict, files, cluster: Cluster | str = PROFILED_CLUSTER, *,
                         split: str | None = None) -> dict[str, float]:
    """MAPE (%) per (collective, workers, GPUs per node) group and pooled ("all") over every row."""
    base = get_cluster(cluster)
    report, preds, meas = {}, [], []
    for kind, w, per, size, seconds in _network_groups(files, split):
        pred = collective_seconds(kind, size, w, _group_cluster(base, w, per), params=params)
        report[f"{kind} workers={w} per_node={per}"] = _mape(pred, seconds)
        preds.append(pred)
        meas.append(seconds)
    if preds:
        report["all"] = _mape(np.concatenate(preds), np.concatenate(meas))
    return report


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


PROFILE_KINDS = ("compute", "attention", "network")


def fit_calibration(profile_dir: str | Path, gpu: str | GPU, *, dtype: str = "fp16",
                    models: list[str] | None = None, cluster: Cluster | str = PROFILED_CLUSTER,
                    kinds: tuple[str, ...] | list[str] | None = None,
                    command: str = "", source: str = "", out: str | Path | None = None) -> Calibration:
    """Fits every operator class found under profile_dir (compute/, attention/, network/) and returns a
    Calibration.

    `models` restricts compute/ to those file stems (to hold others out); `kinds` to some of PROFILE_KINDS
    (None: every kind the folder has; the provenance records which). `cluster` is the preset network/ was
    measured on: its inter-node link names the fitted network. With `out`, also writes JSON.
    """
    profile_dir = Path(profile_dir)
    if not profile_dir.is_dir():
        raise FileNotFoundError(f"profile folder not found: {profile_dir}")
    kinds = PROFILE_KINDS if kinds is None else tuple(kinds)
    unknown = sorted(set(kinds) - set(PROFILE_KINDS))
    if unknown:
        raise ValueError(f"unknown profile kind(s) {unknown}; known: {', '.join(PROFILE_KINDS)}")
    gpu = get_gpu(gpu)
    compute = compute_profile_files(profile_dir) if "compute" in kinds else []
    if models is not None:
        missing = sorted(set(models) - {p.stem for p in compute})
        if missing:
            raise KeyError(f"no compute profile for {missing}; found: {[p.stem for p in compute]}")
        compute = [p for p in compute if p.stem in models]
    network = network_profile_files(profile_dir) if "network" in kinds else []
    attention = _attention_files(profile_dir) if "attention" in kinds else []
    if not compute and not network:
        raise ValueError(f"{profile_dir} has no compute/*.csv or network/*.csv profiles")
    params = fit_compute(compute, gpu, dtype) if compute else {}
    params.update(_fit_attention(attention, gpu, dtype))
    if network:
        params["collective"] = fit_collectives(network, cluster)
    cal = Calibration(device=gpu, dtype=dtype, params=params)
    if compute:
        cal.mape = {op: v["tokens>=128"] for op, v in evaluate_compute(cal, compute).items()}
    if network:
        cal.mape["collectives"] = evaluate_collectives(params["collective"], network, cluster)["all"]
    if attention and {"attn_prefill", "attn_decode"} <= set(params):
        cal.mape.update(attention_report(attention, gpu, dtype, params["attn_prefill"], params["attn_decode"]))
    cal.provenance = {
        "fitted_on": [{"file": str(p.relative_to(profile_dir)), "sha256": _sha256(p)}
                      for p in compute + attention + network],
        "kinds": [k for k, files in (("compute", compute), ("attention", attention), ("network", network)) if files],
        "profile_dir": str(profile_dir),
        "source": source,
        "date": _dt.date.today().isoformat(),
        "command": command or f"sysgym calibrate --profiles {profile_dir} --gpu {gpu.name}",
        "mape_note": "MAPE in percent over rows with num_tokens >= 128 (all rows for collectives)"
                     + ("; attn_*: prefill rows with chunk >= 256 and decode rows with batch >= 8, on the rows "
                        "the fit used (_fit) and the held-out rows (_heldout)" if attention else ""),
        **({"attention_holdout": HOLDOUT_RULE} if attention else {}),
        "statistic": "median time per row (time_stats.<op>.median); collectives fitted by IRLS on "
                     "|log(predicted / measured)|",
    }
    if out is not None:
        cal.save(out)
    return cal


def _attention_files(profile_dir: Path) -> list[Path]:
    return sorted((profile_dir / "attention").glob("*.csv")) if (profile_dir / "attention").is_dir() else []


def _fit_attention(files: list[Path], gpu: GPU, dtype: str) -> dict:
    """Refits attention efficiencies from attention/*.csv (from `profile`) when there are any."""
    return fit_attention_profiles(files, gpu, dtype, DEFAULT_CLASS_PARAMS) if files else {}
