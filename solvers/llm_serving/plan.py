"""Serving-plan and capacity search (APEX, Vidur-Search): for N GPUs of a type, a model and a workload with
SLOs, search TP x PP x replicas x scheduler x batch cap x chunk size, find each plan's capacity -- the
highest request rate at which at least 90 % of requests meet both the TTFT and the TPOT SLO (DistServe's
goodput) -- by binary search on the trace's rate, and rank plans by capacity and by capacity per dollar.
PP plans run with up to pp micro-batches in flight (`envs.llm_serving.pipeline`).

With `disaggregated=True` the search also tries prefill/decode disaggregation (DistServe, OSDI'24) on the
same N GPUs: every prefill pool (TP x PP x P replicas) and decode pool (TP x PP x D replicas) that use all
N GPUs, optionally only the P:D ratios in `pd_ratios`; each run is re-checked (`disagg.check_disagg`: GPU
count, KV blocks per pool, token order) before its attainment counts. Disaggregated plans run vLLM's
scheduler in both pools (prefill-only and decode-only batches) with the plan's batch cap in the decode pool.

Prices are an input (`price_per_gpu_hour`, $ per GPU-hour): the package ships no price list.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass
from typing import Any

from sysgym.envs.llm_serving.disagg import Pool, check_disagg, simulate_disagg
from sysgym.envs.llm_serving.memory import plan_memory
from sysgym.envs.llm_serving.metrics import ATTAINMENT_TARGET, DEFAULT_SLO_TPOT_S, DEFAULT_SLO_TTFT_S
from sysgym.envs.llm_serving.simulator import simulate
from sysgym.envs.llm_serving.traces import Trace
from sysgym.errors import InvalidArgumentError, InvalidInstanceError, UnknownNameError


def attainment(trace: Trace, factor: float, runner=simulate, **kw: Any) -> float:
    return runner(trace.scale_rate(factor), **kw).metrics["slo_attainment"]


def _disagg_checked(trace: Trace, *, num_gpus: int, **kw: Any):
    """A disaggregated run, re-checked against the plan's GPU budget before it is scored."""
    res = simulate_disagg(trace, **kw)
    check_disagg(res, num_gpus=num_gpus)
    return res


def max_rate(trace: Trace, *, slo_ttft_s: float = DEFAULT_SLO_TTFT_S, slo_tpot_s: float = DEFAULT_SLO_TPOT_S,
             target: float = ATTAINMENT_TARGET, bisect_steps: int = 6, max_doublings: int = 8, runner=simulate,
             **simulate_kwargs: Any) -> dict[str, float]:
    """DistServe goodput: the highest rate (req/s) at which `target` of the requests meet both SLOs.

    The trace's arrival times are scaled (its request mix is kept); exponential search brackets the
    rate, then `bisect_steps` bisections narrow it. `runner` is `simulate` (colocated replicas) or a
    disaggregated runner. Returns {'rate', 'factor', 'simulations'}."""
    base = trace.stats()["rate_rps"]
    kw = {"slo_ttft_s": slo_ttft_s, "slo_tpot_s": slo_tpot_s, **simulate_kwargs}
    sims = 0

    def ok(f: float) -> bool:
        nonlocal sims
        sims += 1
        return attainment(trace, f, runner, **kw) >= target

    lo, hi = 0.0, 1.0
    if ok(1.0):
        lo = 1.0
        hi = 2.0
        for _ in range(max_doublings):
            if not ok(hi):
                break
            lo, hi = hi, hi * 2
        else:
            return {"rate": hi / 2 * base, "factor": hi / 2, "simulations": sims}
    else:
        hi = 1.0
        f = 0.5
        for _ in range(max_doublings):
            if ok(f):
                lo = f
                break
            hi, f = f, f / 2
        else:
            return {"rate": 0.0, "factor": 0.0, "simulations": sims}
    for _ in range(bisect_steps):
        mid = (lo + hi) / 2
        if ok(mid):
            lo = mid
        else:
            hi = mid
    return {"rate": lo * base, "factor": lo, "simulations": sims}


@dataclass
class PlanResult:
    tp: int
    pp: int
    replicas: int
    scheduler: str
    max_num_seqs: int
    chunk_size: int | None
    gpus: int
    max_rate_rps: float
    rate_per_gpu: float
    qps_per_dollar: float | None  # requests per $ at the capacity rate
    simulations: int
    prefill: str | None = None  # disaggregated plans: the prefill pool ("P x TPa PPb"); tp/pp/replicas: decode
    pd_ratio: str | None = None  # disaggregated plans: prefill:decode replicas

    @property
    def mode(self) -> str:
        return "colocated" if self.prefill is None else "disaggregated"

    def describe(self) -> str:
        pool = f"{self.replicas} x TP{self.tp} PP{self.pp}"
        return pool if self.prefill is None else f"prefill {self.prefill} + decode {pool}"

    def to_dict(self) -> dict:
        return {**asdict(self), "mode": self.mode}


def _parallel_options(num_gpus: int, max_tp: int, max_pp: int):
    for tp in (1, 2, 4, 8):
        for pp in (1, 2, 4, 8):
            if tp <= max_tp and pp <= max_pp and tp * pp <= num_gpus and num_gpus % (tp * pp) == 0:
                yield tp, pp, num_gpus // (tp * pp)


def _disagg_options(num_gpus: int, max_tp: int, max_pp: int, pd_ratios=None):
    """(prefill (tp, pp, P), decode (tp, pp, D)) pools that use all `num_gpus` GPUs (P, D >= 1), limited to
    the P:D ratios `pd_ratios` ((p, d) pairs) when given."""
    par = [(tp, pp) for tp in (1, 2, 4, 8) for pp in (1, 2, 4, 8) if tp <= max_tp and pp <= max_pp]
    want = None if pd_ratios is None else {_reduce(p, d) for p, d in pd_ratios}
    for (tp_p, pp_p), (tp_d, pp_d) in itertools.product(par, par):
        gp, gd = tp_p * pp_p, tp_d * pp_d
        for n_p in range(1, num_gpus // gp + 1):
            rest = num_gpus - n_p * gp
            if rest >= gd and rest % gd == 0 and (want is None or _reduce(n_p, rest // gd) in want):
                yield (tp_p, pp_p, n_p), (tp_d, pp_d, rest // gd)


def _reduce(p: int, d: int) -> tuple[int, int]:
    g = math.gcd(p, d)
    return p // g, d // g


def parse_pd_ratios(text: str | None) -> list[tuple[int, int]] | None:
    """"1:1,1:2" -> [(1, 1), (1, 2)]; each side an integer >= 1 (a named error otherwise)."""
    if text is None:
        return None
    out = []
    for part in str(text).split(","):
        try:
            p, d = (int(x) for x in part.split(":"))
        except ValueError:
            raise InvalidArgumentError(f"P:D ratio {part!r} is not two integers like '1:2'") from None
        if p < 1 or d < 1:
            raise InvalidArgumentError(f"P:D ratio {part!r}: both pools need at least one replica")
        out.append((p, d))
    return out


def evaluate_disagg_plan(trace: Trace, model: str, gpu: str, prefill: tuple, decode: tuple, max_num_seqs: int, *,
                         num_gpus: int, price_per_gpu_hour: float | None, slo_ttft_s: float, slo_tpot_s: float,
                         bisect_steps: int = 5) -> PlanResult | None:
    for tp, pp, _ in (prefill, decode):
        try:
            plan_memory(model, gpu, tp=tp, pp=pp)
        except InvalidInstanceError:
            return None  # the model does not fit this pool's split
    pools = {name: Pool(tp, pp, n, "vllm", "least_outstanding" if n > 1 else "round_robin")
             for name, (tp, pp, n) in (("prefill", prefill), ("decode", decode))}
    r = max_rate(trace, runner=_disagg_checked, num_gpus=num_gpus, model=model, gpu=gpu, **pools,
                 decode_params={"max_num_seqs": max_num_seqs}, slo_ttft_s=slo_ttft_s, slo_tpot_s=slo_tpot_s,
                 bisect_steps=bisect_steps)
    gpus = pools["prefill"].gpus + pools["decode"].gpus
    qpd = r["rate"] * 3600 / (gpus * price_per_gpu_hour) if price_per_gpu_hour else None
    p, d = _reduce(prefill[2], decode[2])
    return PlanResult(decode[0], decode[1], decode[2], "vllm", max_num_seqs, None, gpus, r["rate"], r["rate"] / gpus,
                      qpd, r["simulations"], prefill=f"{prefill[2]} x TP{prefill[0]} PP{prefill[1]}",
                      pd_ratio=f"{p}:{d}")


def evaluate_plan(trace: Trace, model: str, gpu: str, tp: int, pp: int, replicas: int, scheduler: str,
                  max_num_seqs: int, chunk_size: int | None, *, price_per_gpu_hour: float | None,
                  slo_ttft_s: float, slo_tpot_s: float, bisect_steps: int = 5) -> PlanResult | None:
    try:
        plan_memory(model, gpu, tp=tp, pp=pp)
    except InvalidInstanceError:
        return None  # the model does not fit this split
    sched_kw: dict[str, Any] = {"max_num_seqs": max_num_seqs}
    if scheduler == "sarathi" and chunk_size:
        sched_kw["chunk_size"] = chunk_size
    r = max_rate(trace, model=model, gpu=gpu, tp=tp, pp=pp, num_replicas=replicas, scheduler=scheduler,
                 router="least_outstanding" if replicas > 1 else "round_robin", slo_ttft_s=slo_ttft_s,
                 slo_tpot_s=slo_tpot_s, bisect_steps=bisect_steps, **sched_kw)
    gpus = tp * pp * replicas
    qpd = r["rate"] * 3600 / (gpus * price_per_gpu_hour) if price_per_gpu_hour else None
    return PlanResult(tp, pp, replicas, scheduler, max_num_seqs, chunk_size if scheduler == "sarathi" else None,
                      gpus, r["rate"], r["rate"] / gpus, qpd, r["simulations"])


def search_plans(trace: Trace, *, model: str = "llama-2-7b", gpu: str = "a100-80gb", num_gpus: int = 4,
                 schedulers=("vllm", "sarathi"), batch_caps=(64, 256), chunk_sizes=(256, 512), max_tp: int = 8,
                 max_pp: int = 2, price_per_gpu_hour: float | None = None, slo_ttft_s: float = DEFAULT_SLO_TTFT_S,
                 slo_tpot_s: float = DEFAULT_SLO_TPOT_S, search: str = "grid", trials: int = 20, seed: int = 0,
                 bisect_steps: int = 5, progress: bool = True, disaggregated: bool = False,
                 pd_ratios=None, colocated: bool = True) -> list[PlanResult]:
    """All (grid) or `trials` Optuna-TPE-sampled plans, best capacity first. `disaggregated` adds
    prefill/decode pools (module doc) with P:D ratios from `pd_ratios` ((p, d) pairs or "1:1,1:2"; None:
    every split of the GPUs); `colocated=False` searches only those."""
    if search not in ("grid", "optuna"):
        raise UnknownNameError("plan search", search, ("grid", "optuna"))
    if isinstance(pd_ratios, str):
        pd_ratios = parse_pd_ratios(pd_ratios)
    elif pd_ratios is not None:
        pd_ratios = parse_pd_ratios(",".join(f"{p}:{d}" for p, d in pd_ratios))
    if int(num_gpus) < 1:
        raise InvalidArgumentError(f"num_gpus must be >= 1, got {num_gpus}")
    if not colocated and not disaggregated:
        raise InvalidArgumentError("nothing to search: colocated=False and disaggregated=False")
    par = list(_parallel_options(num_gpus, max_tp, max_pp)) if colocated else []
    space: list[tuple] = []
    for (tp, pp, rep), sched, cap in itertools.product(par, schedulers, batch_caps):
        for chunk in (chunk_sizes if sched == "sarathi" else (None,)):
            space.append((tp, pp, rep, sched, cap, chunk))
    if disaggregated:
        for (pre, dec), cap in itertools.product(_disagg_options(num_gpus, max_tp, max_pp, pd_ratios), batch_caps):
            space.append(("disagg", pre, dec, cap))
    common = dict(price_per_gpu_hour=price_per_gpu_hour, slo_ttft_s=slo_ttft_s, slo_tpot_s=slo_tpot_s,
                  bisect_steps=bisect_steps)

    def run(key: tuple) -> PlanResult | None:
        if key[0] == "disagg":
            return evaluate_disagg_plan(trace, model, gpu, key[1], key[2], key[3], num_gpus=num_gpus, **common)
        return evaluate_plan(trace, model, gpu, *key, **common)

    results: list[PlanResult] = []
    if search == "grid":
        from rich.console import Console
        from rich.progress import track

        # progress on stderr, gone when done: stdout keeps only what the caller prints
        it = track(space, description="serving plans", console=Console(stderr=True), transient=True) \
            if progress else space
        for key in it:
            res = run(key)
            if res is not None:
                results.append(res)
    else:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
        seen: dict[tuple, PlanResult | None] = {}

        def objective(trial: optuna.Trial) -> float:
            key = space[trial.suggest_categorical("plan", list(range(len(space))))]
            if key not in seen:
                seen[key] = run(key)
            return seen[key].max_rate_rps if seen[key] is not None else 0.0

        study.optimize(objective, n_trials=int(trials), show_progress_bar=progress)
        results = [r for r in seen.values() if r is not None]
    results.sort(key=lambda r: (-r.max_rate_rps, r.gpus, r.tp, r.pp))
    return results


def format_table(results: list[PlanResult], *, title: str = "serving plans") -> str:
    from io import StringIO

    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    disagg = any(r.prefill is not None for r in results)
    cols = ("rank", "TP", "PP", "replicas", *(("prefill pool", "P:D") if disagg else ()), "scheduler", "batch cap",
            "chunk", "capacity req/s", "req/s per GPU", "req per $", "sims")
    for col in cols:
        table.add_column(col)
    by_cost = sorted(results, key=lambda r: -(r.qps_per_dollar or 0))
    for i, r in enumerate(results, 1):
        pools = (r.prefill or "- (colocated)", r.pd_ratio or "-") if disagg else ()
        table.add_row(str(i), str(r.tp), str(r.pp), str(r.replicas), *pools, r.scheduler, str(r.max_num_seqs),
                      str(r.chunk_size or "-"), f"{r.max_rate_rps:.2f}", f"{r.rate_per_gpu:.2f}",
                      "-" if r.qps_per_dollar is None else f"{r.qps_per_dollar:,.0f}", str(r.simulations))
    buf = StringIO()
    console = Console(file=buf, width=150)
    console.print(table)
    if results and results[0].qps_per_dollar is not None:
        best = by_cost[0]
        console.print(f"cheapest per request: {best.describe()}, {best.scheduler}, "
                      f"{best.qps_per_dollar:,.0f} requests per $")
    return buf.getvalue().rstrip("\n")  # print() adds the last newline


