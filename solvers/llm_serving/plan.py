"""Serving-plan and capacity search (APEX, Vidur-Search): for N GPUs of a type, a model and a workload with
SLOs, search TP x PP x replicas x scheduler x batch cap x chunk size, find each plan's capacity -- the
highest request rate at which at least 90 % of requests meet both the TTFT and the TPOT SLO (DistServe's
goodput) -- by binary search on the trace's rate, and rank plans by capacity and by capacity per dollar.

Prices are an input (`price_per_gpu_hour`, $ per GPU-hour): the package ships no price list.
"""
from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from typing import Any

from sysgym.envs.llm_serving.memory import plan_memory
from sysgym.envs.llm_serving.metrics import ATTAINMENT_TARGET, DEFAULT_SLO_TPOT_S, DEFAULT_SLO_TTFT_S
from sysgym.envs.llm_serving.simulator import simulate
from sysgym.envs.llm_serving.traces import Trace
from sysgym.errors import InvalidInstanceError, UnknownNameError


def attainment(trace: Trace, factor: float, **kw: Any) -> float:
    return simulate(trace.scale_rate(factor), **kw).metrics["slo_attainment"]


def max_rate(trace: Trace, *, slo_ttft_s: float = DEFAULT_SLO_TTFT_S, slo_tpot_s: float = DEFAULT_SLO_TPOT_S,
             target: float = ATTAINMENT_TARGET, bisect_steps: int = 6, max_doublings: int = 8,
             **simulate_kwargs: Any) -> dict[str, float]:
    """DistServe goodput: the highest rate (req/s) at which `target` of the requests meet both SLOs.

    The trace's arrival times are scaled (its request mix is kept); exponential search brackets the
    rate, then `bisect_steps` bisections narrow it. Returns {'rate', 'factor', 'simulations'}."""
    base = trace.stats()["rate_rps"]
    kw = {"slo_ttft_s": slo_ttft_s, "slo_tpot_s": slo_tpot_s, **simulate_kwargs}
    sims = 0

    def ok(f: float) -> bool:
        nonlocal sims
        sims += 1
        return attainment(trace, f, **kw) >= target

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

    def to_dict(self) -> dict:
        return asdict(self)


def _parallel_options(num_gpus: int, max_tp: int, max_pp: int):
    for tp in (1, 2, 4, 8):
        for pp in (1, 2, 4, 8):
            if tp <= max_tp and pp <= max_pp and tp * pp <= num_gpus and num_gpus % (tp * pp) == 0:
                yield tp, pp, num_gpus // (tp * pp)


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
                 bisect_steps: int = 5, progress: bool = True) -> list[PlanResult]:
    """All (grid) or `trials` Optuna-TPE-sampled plans, best capacity first."""
    if search not in ("grid", "optuna"):
        raise UnknownNameError("plan search", search, ("grid", "optuna"))
    par = list(_parallel_options(num_gpus, max_tp, max_pp))
    space = []
    for (tp, pp, rep), sched, cap in itertools.product(par, schedulers, batch_caps):
        for chunk in (chunk_sizes if sched == "sarathi" else (None,)):
            space.append((tp, pp, rep, sched, cap, chunk))
    common = dict(price_per_gpu_hour=price_per_gpu_hour, slo_ttft_s=slo_ttft_s, slo_tpot_s=slo_tpot_s,
                  bisect_steps=bisect_steps)
    results: list[PlanResult] = []
    if search == "grid":
        from rich.console import Console
        from rich.progress import track

        # progress on stderr, gone when done: stdout keeps only what the caller prints
        it = track(space, description="serving plans", console=Console(stderr=True), transient=True) \
            if progress else space
        for tp, pp, rep, sched, cap, chunk in it:
            res = evaluate_plan(trace, model, gpu, tp, pp, rep, sched, cap, chunk, **common)
            if res is not None:
                results.append(res)
    else:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
        seen: dict[tuple, PlanResult | None] = {}

        def objective(trial: optuna.Trial) -> float:
            tp, pp, rep = par[trial.suggest_categorical("parallel", list(range(len(par))))]
            sched = trial.suggest_categorical("scheduler", list(schedulers))
            cap = trial.suggest_categorical("max_num_seqs", list(batch_caps))
            chunk = trial.suggest_categorical("chunk_size", list(chunk_sizes)) if sched == "sarathi" else None
            key = (tp, pp, rep, sched, cap, chunk)
            if key not in seen:
                seen[key] = evaluate_plan(trace, model, gpu, tp, pp, rep, sched, cap, chunk, **common)
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
    for col in ("rank", "TP", "PP", "replicas", "scheduler", "batch cap", "chunk", "capacity req/s", "req/s per GPU",
                "req per $", "sims"):
        table.add_column(col)
    by_cost = sorted(results, key=lambda r: -(r.qps_per_dollar or 0))
    for i, r in enumerate(results, 1):
        table.add_row(str(i), str(r.tp), str(r.pp), str(r.replicas), r.scheduler, str(r.max_num_seqs),
                      str(r.chunk_size or "-"), f"{r.max_rate_rps:.2f}", f"{r.rate_per_gpu:.2f}",
                      "-" if r.qps_per_dollar is None else f"{r.qps_per_dollar:,.0f}", str(r.simulations))
    buf = StringIO()
    console = Console(file=buf, width=150)
    console.print(table)
    if results and results[0].qps_per_dollar is not None:
        best = by_cost[0]
        console.print(f"cheapest per request: TP{best.tp} x PP{best.pp} x {best.replicas} replicas, {best.scheduler}, "
                      f"{best.qps_per_dollar:,.0f} requests per $")
    return buf.getvalue().rstrip("\n")  # print() adds the last newline


