"""Prefill/decode disaggregation: `simulate_disagg(...)` (DistServe, Zhong et al. OSDI'24; Splitwise, Patel
et al. ISCA'24).

Two replica pools, each with its own TP x PP, replica count, scheduler and router (`Pool`):

* a request is routed to a prefill replica when it arrives; that replica runs its prompt's prefill (the
  same `Replica` iteration loop as colocated serving, each request with one output token) and emits the
  first token;
* its KV cache (prompt tokens x `kernels.kv_bytes_per_token`, fp16, all layers and KV heads) is then sent
  to a decode replica (`kv_transfer_seconds`): every GPU of the prefill replica sends its shard to a peer
  in parallel (min of the two replicas' GPU counts links), on NVLink when a prefill and a decode replica fit
  in one node together (DistServe's intra-node placement; `kv_link="auto"`) and otherwise on the nodes'
  NICs; bandwidths are the hardware model's (`kernels.Cluster`: NVLink = the GPU's scale-up link from
  kernels' GPU table, network = 200 Gb/s HDR InfiniBand per GPU, DGX A100 whitepaper), with the
  send/recv efficiencies kernels fitted on vidur's A100 profiles (`predict_collective_time("send_recv")`);
* when the KV has arrived the request is routed to a decode replica (`DecodeReplica`), which admits it
  only with free KV blocks for its prompt and next token under its scheduler's memory rule, and decodes
  the remaining output tokens. A request preempted there by recomputation recomputes its prefill locally.

Simplifications (stated, not hidden): the whole transfer is charged after the prefill (Splitwise streams
it layer by layer during the prefill, hiding most of it); transfers do not contend for a link; the
prefill replica frees the request's blocks when its prefill ends (the KV waits in a transfer buffer
charged to neither pool). Requests with one output token never reach the decode pool.

Metrics come from `metrics.compute_metrics` on the merged per-request records (the first token from the
prefill pool, the rest from the decode pool); `check_disagg` re-checks a run (GPU counts, KV blocks per
pool, token counts and order) before the serving-plan search ranks it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from sysgym import kernels
from sysgym.envs.llm_serving.metrics import DEFAULT_SLO_TPOT_S, DEFAULT_SLO_TTFT_S, compute_metrics
from sysgym.envs.llm_serving.pipeline import PipelineReplica
from sysgym.envs.llm_serving.replica import Replica, make_scheduler, request_arrays
from sysgym.envs.llm_serving.simulator import ROUTERS, RequestRecords, ServingResult, build_replicas, dispatch
from sysgym.envs.llm_serving.traces import Trace, as_trace
from sysgym.errors import InfeasibleSolutionError, InvalidArgumentError, UnknownNameError

KV_LINKS = ("auto", "nvlink", "network")
GPUS_PER_NODE = 8  # DGX A100/H100 nodes (as BatchLatency's cluster)


@dataclass(frozen=True)
class Pool:
    """One pool of identical replicas: `tp` x `pp` GPUs each, `replicas` of them."""

    tp: int = 1
    pp: int = 1
    replicas: int = 1
    scheduler: str = "vllm"
    router: str = "least_outstanding"

    @property
    def gpus_per_replica(self) -> int:
        return self.tp * self.pp

    @property
    def gpus(self) -> int:
        return self.tp * self.pp * self.replicas

    def to_dict(self) -> dict:
        return asdict(self)


def as_pool(value: Pool | dict | tuple, name: str) -> Pool:
    """A `Pool` from a Pool, a dict of its fields or a (tp, pp, replicas) tuple; bad fields are named errors."""
    if isinstance(value, dict):
        bad = sorted(set(value) - set(Pool.__dataclass_fields__))
        if bad:
            raise UnknownNameError(f"{name} pool field", bad[0], tuple(Pool.__dataclass_fields__))
        pool = Pool(**value)
    elif isinstance(value, (tuple, list)):
        pool = Pool(*value)
    elif isinstance(value, Pool):
        pool = value
    else:
        raise InvalidArgumentError(f"{name} pool must be a Pool, a dict or a (tp, pp, replicas) tuple, got {value!r}")
    for key in ("tp", "pp", "replicas"):
        v = getattr(pool, key)
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise InvalidArgumentError(f"{name} pool: {key} must be an integer >= 1, got {v!r}")
    if pool.router not in ROUTERS:
        raise UnknownNameError(f"{name}-pool router", pool.router, ROUTERS)
    make_scheduler(pool.scheduler)  # an unknown scheduler is a named error before any work
    return pool


def kv_transfer_seconds(model: str, gpu: str, prompt_tokens, prefill: Pool, decode: Pool, *, kv_link: str = "auto",
                        gpus_per_node: int = GPUS_PER_NODE, calibration=None) -> np.ndarray:
    """Seconds to move each prompt's KV cache from a prefill replica to a decode replica (module doc)."""
    if kv_link not in KV_LINKS:
        raise UnknownNameError("KV-transfer link", kv_link, KV_LINKS)
    spec = kernels.models.get(model)
    dev = kernels.get_gpu(gpu)
    links = min(prefill.gpus_per_replica, decode.gpus_per_replica)
    nvlink = kv_link == "nvlink" or (kv_link == "auto" and
                                     prefill.gpus_per_replica + decode.gpus_per_replica <= gpus_per_node)
    cluster = (kernels.Cluster(gpu=dev, num_nodes=1, gpus_per_node=gpus_per_node) if nvlink
               else kernels.Cluster(gpu=dev, num_nodes=2, gpus_per_node=1))  # one GPU's NIC to its peer's
    nbytes = np.asarray(prompt_tokens, float) * kernels.kv_bytes_per_token(spec, "fp16") / links
    return np.asarray(kernels.predict_collective_time("send_recv", nbytes, 2, cluster, calibration=calibration),
                      float) * 1e-3


class KVArrivals:
    """Decode-pool admission: a request whose KV was transferred joins the decodes (no prefill) once its
    blocks fit; after a recompute preemption it is an ordinary request again (prefill recomputed here)."""

    transferred: np.ndarray

    def admissible(self, rid: int, prefills: list, budget: int) -> tuple[bool, int]:
        if not self.transferred[rid]:
            return super().admissible(rid, prefills, budget)
        if budget <= 0 or len(self.running) >= self.max_num_seqs:
            return False, 0
        need = self.sched.admit_blocks(rid)
        return self.sched.fits(rid, need), need

    def admit(self, rid: int, need: int, prefills: list, budget: int) -> int:
        if not self.transferred[rid]:
            return super().admit(rid, need, prefills, budget)
        st, sched = self.st, self.sched
        sched.pop(rid)
        st.blocks[rid] = need
        self.used += need
        if np.isnan(st.first_scheduled[rid]):
            st.first_scheduled[rid] = self.now
        self.running.append(rid)
        sched.on_admit(rid)
        return budget - 1  # its decode token joins this iteration

    def preempt(self, rid: int) -> float:
        if self.sched.preemption_mode != "swap" or self.st.in_prefill[rid]:
            self.transferred[rid] = False
        return super().preempt(rid)


class DecodeReplica(KVArrivals, Replica):
    pass


class PipelinedDecodeReplica(KVArrivals, PipelineReplica):
    pass


def _pool_kwargs(model, gpu, pool: Pool, common: dict, scheduler_params: dict, num_blocks: int | None) -> dict:
    probe = make_scheduler(pool.scheduler, **scheduler_params)
    return dict(model=model, gpu=gpu, tp=pool.tp, pp=pool.pp, pipeline="micro_batch", num_blocks=num_blocks, **common,
                schedulers=[probe] + [probe.clone() for _ in range(pool.replicas - 1)])


def simulate_disagg(requests, *, model: str = "llama-2-7b", gpu: str = "a100-80gb", prefill=Pool(),
                    decode=Pool(), kv_link: str = "auto", seed: int = 0, block_size: int = 16,
                    max_tokens: int | None = None, memory_margin: float = 0.1, memory_semantics: str = "vllm",
                    oversize: str = "truncate", slo_ttft_s: float = DEFAULT_SLO_TTFT_S,
                    slo_tpot_s: float = DEFAULT_SLO_TPOT_S, calibration=None, prefill_params: dict | None = None,
                    decode_params: dict | None = None, num_blocks: dict | None = None) -> ServingResult:
    """Serve `requests` on a prefill pool and a decode pool (module doc); the result's records merge both.

    `prefill` / `decode`: `Pool`s (or dicts / (tp, pp, replicas) tuples); `*_params` go to each pool's
    scheduler; `num_blocks` ({"prefill": n, "decode": n}) overrides a pool's planned KV blocks per replica
    (small experiments). Replica indices: prefill replicas 0..P-1, decode replicas P..P+D-1."""
    prefill, decode = as_pool(prefill, "prefill"), as_pool(decode, "decode")
    blocks = dict(num_blocks or {})
    if set(blocks) - {"prefill", "decode"} or any(int(v) < 1 for v in blocks.values()):
        raise InvalidArgumentError(f"num_blocks must map 'prefill'/'decode' to block counts >= 1, got {num_blocks!r}")
    if kv_link not in KV_LINKS:
        raise UnknownNameError("KV-transfer link", kv_link, KV_LINKS)
    trace: Trace = as_trace(requests)
    spec = kernels.models.get(model)
    max_tokens = int(max_tokens or spec.max_seq_len)
    prompt, output, truncated = request_arrays(trace, max_tokens, oversize)
    n = len(trace)
    common = dict(block_size=block_size, max_tokens=max_tokens, memory_margin=memory_margin,
                  memory_semantics=memory_semantics, calibration=calibration)
    # prefill pool: every request with one output token (its first)
    tr_p = Trace(trace.arrival, prompt, np.ones(n, np.int64), trace.client, name=f"{trace.name}/prefill")
    st_p, reps_p, plan_p, _ = build_replicas(tr_p, **_pool_kwargs(model, gpu, prefill, common, prefill_params or {},
                                                                    blocks.get("prefill")))
    dispatch(reps_p, tr_p.arrival, prefill.router, seed)
    first = st_p.token_time.copy()  # one token per request: the prefill's end
    xfer = kv_transfer_seconds(model, gpu, prompt, prefill, decode, kv_link=kv_link, calibration=calibration)
    ready = first + xfer
    # decode pool: the requests with more tokens to go, in the order their KV arrives
    need = np.flatnonzero(output > 1)
    order = need[np.argsort(ready[need], kind="stable")]
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(output, out=offsets[1:])
    token_time = np.empty(int(offsets[-1]))
    token_time[offsets[:-1]] = first
    finish = st_p.finish.copy()
    preemptions = st_p.preemptions.copy()
    decode_replica = np.full(n, -1, np.int64)
    reps_d: list[Replica] = []
    plan_d = None
    if len(order):
        tr_d = Trace(ready[order], prompt[order], output[order], trace.client[order], name=f"{trace.name}/decode")
        st_d, reps_d, plan_d, _ = build_replicas(tr_d, **_pool_kwargs(model, gpu, decode, common, decode_params or {},
                                                                          blocks.get("decode")),
                                                 classes=(DecodeReplica, PipelinedDecodeReplica),
                                                 first_index=prefill.replicas)
        st_d.generated[:] = 1  # the prefill pool emitted token 0 and computed the prompt's KV
        st_d.kv[:] = st_d.prompt
        shared = np.ones(len(order), bool)
        for r in reps_d:
            r.transferred = shared
        dispatch(reps_d, tr_d.arrival, decode.router, seed + 1)
        # tokens 1.. of decode-local request j are those of request order[j]
        lens = output[order] - 1
        src = np.repeat(st_d.offsets[:-1] + 1 - np.cumsum(lens) + lens, lens) + np.arange(int(lens.sum()))
        dst = np.repeat(offsets[order] + 1 - np.cumsum(lens) + lens, lens) + np.arange(int(lens.sum()))
        token_time[dst] = st_d.token_time[src]
        finish[order] = st_d.finish
        preemptions[order] += st_d.preemptions
        decode_replica[order] = st_d.replica
    reps = reps_p + reps_d
    logs = [r.log.arrays() for r in reps]
    iters = {k: np.concatenate([lg[k] for lg in logs]) for k in logs[0]}
    iters["replica"] = np.concatenate([np.full(len(lg["start"]), r.index) for r, lg in zip(reps, logs)])
    arrays = {"arrival": trace.arrival.copy(), "prompt": prompt, "output": output, "client": trace.client.copy(),
              "first_scheduled": st_p.first_scheduled, "first_token": first, "finish": finish,
              "num_preemptions": preemptions, "replica": st_p.replica, "decode_replica": decode_replica,
              "kv_transfer_s": xfer}
    gpus = prefill.gpus + decode.gpus
    stats = {"kv_area": float(sum(r.kv_area for r in reps)), "tokens_processed": int(sum(r.tokens_processed
                                                                                        for r in reps)),
             "num_iterations": int(sum(r.iterations for r in reps)), "num_truncated": truncated}
    config = {"model": spec.name, "gpu": kernels.get_gpu(gpu).name, "disaggregated": True,
              "prefill": prefill.to_dict(), "decode": decode.to_dict(), "kv_link": kv_link, "seed": int(seed),
              "num_replicas": prefill.replicas + decode.replicas, "num_gpus": gpus, "block_size": int(block_size),
              "max_tokens": max_tokens, "num_blocks_prefill": plan_p.num_blocks,
              "num_blocks_decode": plan_d.num_blocks if plan_d else None}
    result = ServingResult({}, RequestRecords(arrays, token_time, offsets), iters,
                           [np.asarray(r.memory_trace, float).reshape(-1, 2) for r in reps], plan_d or plan_p,
                           config, stats)
    check_disagg(result)
    m = compute_metrics(result.records(), slo_ttft_s=slo_ttft_s, slo_tpot_s=slo_tpot_s, model=spec.name,
                        gpu=config["gpu"], num_gpus=gpus)
    pool_blocks = prefill.replicas * plan_p.num_blocks + (decode.replicas * plan_d.num_blocks if plan_d else 0)
    m.update(num_truncated=truncated, num_iterations=stats["num_iterations"], num_gpus=gpus,
             kv_util_mean=stats["kv_area"] / (m["makespan_s"] * pool_blocks),
             kv_transfer_mean_s=float(xfer.mean()) if n else 0.0,
             kv_transfer_p99_s=float(np.percentile(xfer, 99)) if n else 0.0)
    result.metrics = m
    return result


def check_disagg(result: ServingResult, num_gpus: int | None = None) -> None:
    """Re-check a disaggregated run: GPU count (at most `num_gpus`), KV blocks in use per pool never above
    that pool's plan, every request's tokens present, ordered, after its arrival and its KV transfer.
    Raises InfeasibleSolutionError naming the broken constraint."""
    cfg, rec = result.config, result.requests
    p, d = Pool(**cfg["prefill"]), Pool(**cfg["decode"])
    gpus = p.gpus + d.gpus
    if gpus != cfg["num_gpus"] or (num_gpus is not None and gpus > num_gpus):
        raise InfeasibleSolutionError("GPU count", f"{p.gpus} prefill + {d.gpus} decode GPUs, "
                                                   f"{num_gpus or cfg['num_gpus']} available")
    it = result.iterations
    for name, lo, hi, nb in (("prefill", 0, p.replicas, cfg["num_blocks_prefill"]),
                             ("decode", p.replicas, p.replicas + d.replicas, cfg["num_blocks_decode"])):
        sel = (it["replica"] >= lo) & (it["replica"] < hi)
        if sel.any() and it["blocks_max"][sel].max() > nb:
            raise InfeasibleSolutionError("KV memory", f"a {name} replica uses {int(it['blocks_max'][sel].max())} "
                                                       f"blocks, its pool plans {nb}")
    tt, off = rec.token_time, rec.token_offsets
    if not np.all(np.isfinite(tt)) or np.any(np.diff(off) != rec.output):
        raise InfeasibleSolutionError("token count", "a request lacks a token timestamp")
    first = tt[off[:-1]]
    if np.any(first <= rec.arrival):
        raise InfeasibleSolutionError("causality", "a first token precedes its request's arrival")
    multi = rec.output > 1
    if np.any(tt[off[:-1][multi] + 1] < first[multi] + rec.kv_transfer_s[multi] - 1e-9):
        raise InfeasibleSolutionError("causality", "a decode token precedes the KV transfer")
    d_ = np.diff(tt)
    inside = np.ones(len(d_), bool)
    inside[off[1:-1] - 1] = False
    if np.any(inside & ~(d_ > 0)):
        raise InfeasibleSolutionError("token order", "a request emits two tokens at once or out of order")
    if np.any(np.abs(rec.finish - tt[off[1:] - 1]) > 1e-9):
        raise InfeasibleSolutionError("finish", "a finish time is not its last token's")


__all__ = ["KV_LINKS", "Pool", "as_pool", "check_disagg", "kv_transfer_seconds", "simulate_disagg"]
