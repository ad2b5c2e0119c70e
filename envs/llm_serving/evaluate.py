"""The LLM-serving evaluator: the only scorer of every scheduler, bound and learned policy.

A solution's `decisions` are per-request records (what `ServingResult.records()` returns): arrival,
prompt, output, first_scheduled, finish, num_preemptions, replica, every token's timestamp (flat array
with offsets) and the iteration log (start, end, iterations, batch size, blocks in use). The evaluator
re-checks them against the instance -- every request served exactly its (effective) output tokens after it
arrived and after it was scheduled, tokens strictly ordered in time, finish = last token, replicas'
iterations never overlapping (with pipeline parallelism: at most pp micro-batches in flight), KV blocks
in use never above the pool -- then recomputes all metrics from
the records with `metrics.compute_metrics`. Objective: `e2e_mean` (mean end-to-end latency, s; minimise).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from sysgym import kernels
from sysgym.envs.llm_serving.instance import ServingInstance
from sysgym.envs.llm_serving.memory import plan_memory
from sysgym.envs.llm_serving.metrics import compute_metrics
from sysgym.envs.llm_serving.replica import request_arrays
from sysgym.errors import InfeasibleSolutionError
from sysgym.solution import Solution

TOL = 1e-9
REQUIRED = ("arrival", "prompt", "output", "first_scheduled", "finish", "num_preemptions", "replica", "token_time",
            "token_offsets", "iterations")


def num_blocks_of(inst: ServingInstance) -> int:
    if inst.num_blocks is not None:
        return int(inst.num_blocks)
    spec = kernels.models.get(inst.model)
    return plan_memory(spec, inst.gpu, tp=inst.tp, pp=inst.pp, block_size=inst.block_size,
                       max_tokens=int(inst.max_tokens or spec.max_seq_len), semantics=inst.memory_semantics).num_blocks


def check_records(inst: ServingInstance, rec: dict[str, Any]) -> None:
    """Raise InfeasibleSolutionError naming the first broken constraint."""
    missing = [k for k in REQUIRED if k not in rec]
    if missing:
        raise InfeasibleSolutionError("format", f"records lack field(s) {missing}")
    n = len(inst.trace)
    spec = kernels.models.get(inst.model)
    prompt, output, _ = request_arrays(inst.trace, int(inst.max_tokens or spec.max_seq_len))
    for key in ("arrival", "prompt", "output", "first_scheduled", "finish", "replica"):
        if len(rec[key]) != n:
            raise InfeasibleSolutionError("format", f"{key} has {len(rec[key])} entries for {n} requests")
    if not np.allclose(rec["arrival"], inst.trace.arrival, rtol=0, atol=TOL):
        i = int(np.argmax(~np.isclose(rec["arrival"], inst.trace.arrival, rtol=0, atol=TOL)))
        raise InfeasibleSolutionError("arrival", f"request {i} arrives at {rec['arrival'][i]}, "
                                                 f"the trace says {inst.trace.arrival[i]}")
    for key, want in (("prompt", prompt), ("output", output)):
        bad = np.flatnonzero(np.asarray(rec[key]) != want)
        if len(bad):
            raise InfeasibleSolutionError(f"{key} tokens", f"request {bad[0]} has {rec[key][bad[0]]}, "
                                                            f"the instance needs {want[bad[0]]}")
    off = np.asarray(rec["token_offsets"])
    if len(off) != n + 1 or off[0] != 0 or np.any(np.diff(off) != output):
        raise InfeasibleSolutionError("token count", "token_offsets must be [0, cumsum(output tokens)]: every "
                                                     "request emits exactly its output tokens")
    tt = np.asarray(rec["token_time"], float)
    if len(tt) != off[-1] or not np.all(np.isfinite(tt)):
        bad = int(np.argmax(~np.isfinite(tt))) if len(tt) == off[-1] else -1
        req = int(np.searchsorted(off, bad, side="right") - 1) if bad >= 0 else -1
        raise InfeasibleSolutionError("token count", f"request {req} has a missing token timestamp")
    first = tt[off[:-1]]
    fs = np.asarray(rec["first_scheduled"], float)
    arr = inst.trace.arrival
    bad = np.flatnonzero(~(fs >= arr - TOL))
    if len(bad):
        raise InfeasibleSolutionError("causality", f"request {bad[0]} is scheduled at {fs[bad[0]]} before it "
                                                   f"arrives at {arr[bad[0]]}")
    bad = np.flatnonzero(~(first > fs + TOL))
    if len(bad):
        raise InfeasibleSolutionError("causality", f"request {bad[0]} emits its first token at {first[bad[0]]}, "
                                                   f"not after it was scheduled at {fs[bad[0]]}")
    d = np.diff(tt)
    inside = np.ones(len(d), bool)
    inside[off[1:-1] - 1] = False
    bad = np.flatnonzero(inside & ~(d > 0))
    if len(bad):
        req = int(np.searchsorted(off, bad[0], side="right") - 1)
        raise InfeasibleSolutionError("token order", f"request {req} emits two tokens at once or out of order "
                                                     f"(token {bad[0] - off[req]})")
    last = tt[off[1:] - 1]
    bad = np.flatnonzero(np.abs(np.asarray(rec["finish"], float) - last) > TOL)
    if len(bad):
        raise InfeasibleSolutionError("finish", f"request {bad[0]} finishes at {rec['finish'][bad[0]]}, its last "
                                                f"token is at {last[bad[0]]}")
    rep = np.asarray(rec["replica"])
    if np.any((rep < 0) | (rep >= inst.num_replicas)):
        raise InfeasibleSolutionError("replica", f"replica indices must be in [0, {inst.num_replicas})")
    it = rec["iterations"]
    nb = num_blocks_of(inst)
    blocks = np.asarray(it["blocks_max"])
    if len(blocks) and blocks.max() > nb:
        i = int(np.argmax(blocks))
        raise InfeasibleSolutionError("KV memory", f"step {i} uses {blocks[i]} blocks, the pool has {nb}")
    seqs = np.asarray(it["seqs"])
    if inst.max_num_seqs is not None and len(seqs) and seqs.max() > inst.max_num_seqs:
        i = int(np.argmax(seqs))
        raise InfeasibleSolutionError("batch cap", f"step {i} batches {seqs[i]} requests, the cap is "
                                                   f"{inst.max_num_seqs}")
    for r in range(inst.num_replicas):
        sel = np.asarray(it["replica"]) == r
        s, e = np.asarray(it["start"])[sel], np.asarray(it["end"])[sel]
        # a pipeline holds up to pp micro-batches in flight (launched in order): batch i + pp starts after
        # batch i left the last stage; without PP iterations never overlap
        k = max(1, int(inst.pp))
        if np.any(e < s - TOL) or np.any(s[1:] < s[:-1] - TOL) or np.any(s[k:] < e[:-k] - TOL):
            raise InfeasibleSolutionError("iterations", f"replica {r} runs overlapping iterations"
                                          + (f" (more than pp={k} micro-batches in flight)" if k > 1 else ""))
        toks = tt[np.repeat(rep == r, np.diff(off))]
        if len(toks) and len(e) and toks.max() > e.max() + TOL:
            raise InfeasibleSolutionError("iterations", f"replica {r} emits a token after its last iteration")


_FLOAT = ("arrival", "first_scheduled", "finish", "token_time", "first_token")
_INT = ("prompt", "output", "num_preemptions", "replica", "token_offsets", "client")
_ITER_FLOAT = ("start", "end")


def as_arrays(rec: dict[str, Any]) -> dict[str, Any]:
    """Records with numpy columns (records reloaded from JSON result files hold lists)."""
    out = dict(rec)
    for key in _FLOAT:
        if key in out:
            out[key] = np.asarray([np.nan if v is None else v for v in out[key]] if isinstance(out[key], list)
                                  else out[key], float)
    for key in _INT:
        if key in out:
            out[key] = np.asarray(out[key], np.int64)
    it = out.get("iterations")
    if isinstance(it, dict):
        out["iterations"] = {k: np.asarray(v, float if k in _ITER_FLOAT else np.int64) for k, v in it.items()}
    return out


def evaluate(inst: ServingInstance, solution: Solution | dict[str, Any], *,
             raise_on_infeasible: bool = True) -> dict[str, Any]:
    """Check the records and compute the metrics (`e2e_mean` is the objective)."""
    rec = solution.decisions if isinstance(solution, Solution) else solution
    if not isinstance(rec, dict):
        raise InfeasibleSolutionError("format", f"decisions must be the per-request records dict, got {type(rec)}")
    rec = as_arrays(rec)
    try:
        check_records(inst, rec)
    except InfeasibleSolutionError as exc:
        if raise_on_infeasible:
            raise
        return {"feasible": False, "violation": str(exc), "e2e_mean": None}
    rec = {**rec, "client": inst.trace.client}
    metrics = compute_metrics(rec, slo_ttft_s=inst.slo_ttft_s, slo_tpot_s=inst.slo_tpot_s, model=inst.model,
                              gpu=inst.gpu, num_gpus=inst.tp * inst.pp * inst.num_replicas,
                              num_blocks=num_blocks_of(inst))
    metrics["feasible"] = True
    metrics["objective"] = metrics["e2e_mean"]  # the family objective under the generic name the CLI prints
    return metrics
