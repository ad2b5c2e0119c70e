"""The row: every server of an instance advanced one control interval at a time under its clock level.

`Row(inst).step(levels)` runs one interval and returns each server's average power over it; the env steps it
once per action, and the evaluator replays a whole schedule through the same object, so both score alike.
`Row.metrics()` turns what happened into the family's metrics (see `evaluate`).
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from sysgym.envs.power_cap.instance import PowerCapInstance
from sysgym.envs.power_cap.server import IterationCost, Server


@lru_cache(maxsize=16)
def iteration_cost(model: str, gpu: str, tp: int, max_batched_tokens: int) -> IterationCost:
    """Kernels' cost tables are the same for every server of a model/GPU/TP: build them once per process."""
    return IterationCost(model, gpu, tp, max_batched_tokens)


class Row:
    """A row of servers under a power budget (see the module doc)."""

    def __init__(self, inst: PowerCapInstance):
        self.inst = inst
        cost = iteration_cost(inst.model, inst.gpu, inst.tp, inst.max_batched_tokens)
        cap = inst.kv_capacity_tokens()
        self.index = [np.flatnonzero(inst.server_of == s) for s in range(inst.num_servers)]
        self.servers = [Server(cost, inst.arrival[ix], inst.prompt[ix], inst.output[ix], kv_capacity=cap,
                               max_num_seqs=inst.max_num_seqs, max_batched_tokens=inst.max_batched_tokens,
                               exponent=inst.dvfs_exponent) for ix in self.index]
        self.interval = 0
        self.power = np.zeros((inst.num_intervals, inst.num_servers))  # average W per interval and server
        self.busy = np.zeros((inst.num_intervals, inst.num_servers))  # busy share of each interval
        self.levels = np.zeros((inst.num_intervals, inst.num_servers), np.int64)

    @property
    def done(self) -> bool:
        return self.interval >= self.inst.num_intervals

    def step(self, levels) -> np.ndarray:
        """Run the next interval with `levels[s]` (an index into `inst.levels`) on server s."""
        inst, k = self.inst, self.interval
        if k >= inst.num_intervals:
            raise RuntimeError("the row's horizon is over")
        t0, t1 = k * inst.interval_s, (k + 1) * inst.interval_s
        for s, server in enumerate(self.servers):
            lv = int(levels[s])
            energy, busy = server.advance(t0, t1, inst.levels[lv])
            self.power[k, s] = energy / inst.interval_s
            self.busy[k, s] = busy / inst.interval_s
            self.levels[k, s] = lv
        self.interval += 1
        return self.power[k]

    # -- outcomes ------------------------------------------------------------------------------------------
    def request_times(self) -> tuple[np.ndarray, np.ndarray]:
        """(first-token time, finish time) of every request, NaN where it has not happened yet."""
        n = self.inst.num_requests
        first, finish = np.full(n, np.nan), np.full(n, np.nan)
        for ix, server in zip(self.index, self.servers):
            first[ix], finish[ix] = server.first, server.finish
        return first, finish

    def slo_met(self) -> np.ndarray:
        """Per request: finished inside the horizon with TTFT and TPOT within their SLOs."""
        inst = self.inst
        first, finish = self.request_times()
        done = np.isfinite(finish)
        ttft = first - inst.arrival
        tpot = np.where(inst.output > 1, (finish - first) / np.maximum(inst.output - 1, 1), 0.0)
        with np.errstate(invalid="ignore"):
            return done & (ttft <= inst.slo_ttft_s + 1e-9) & (tpot <= inst.slo_tpot_s + 1e-9)

    def metrics(self) -> dict[str, Any]:
        inst = self.inst
        k = self.interval
        row = self.power[:k].sum(axis=1)
        over = np.maximum(0.0, row - inst.budget_w)
        first, finish = self.request_times()
        met = self.slo_met()
        n = inst.num_requests
        done = np.isfinite(finish)
        ttft = (first - inst.arrival)[np.isfinite(first)]
        tpot = ((finish - first) / np.maximum(inst.output - 1, 1))[done & (inst.output > 1)]
        attainment = float(met.mean()) if n else 1.0
        over_rate = float((over > 0).mean()) if k else 0.0
        pct = (lambda x, q: float(np.quantile(x, q)) if len(x) else 0.0)  # noqa: E731 - two uses below
        return {
            "feasible": True,
            "cost": (1.0 - attainment) + inst.overbudget_weight * over_rate,
            "slo_attainment": attainment,
            "overbudget_rate": over_rate,
            "overbudget_energy_share": float(over.sum() / max(row.sum(), 1e-12)) if k else 0.0,
            "peak_row_power_w": float(row.max()) if k else 0.0,
            "mean_row_power_w": float(row.mean()) if k else 0.0,
            "peak_power_share_of_budget": float(row.max() / inst.budget_w) if k else 0.0,
            "budget_w": inst.budget_w,
            "nameplate_w": inst.nameplate_w,
            "energy_j": float(self.power[:k].sum() * inst.interval_s),
            "requests": n,
            "finished": int(done.sum()),
            "ttft_p50_s": pct(ttft, 0.5),
            "ttft_p99_s": pct(ttft, 0.99),
            "tpot_p50_s": pct(tpot, 0.5),
            "tpot_p99_s": pct(tpot, 0.99),
            "capped_share": float((self.levels[:k] > 0).mean()) if k else 0.0,
            "mean_clock": float(np.asarray(inst.levels)[self.levels[:k]].mean()) if k else 1.0,
            "row_power_w": [round(float(x), 3) for x in row],
        }
