"""The online keep-alive policies, one implementation each, driven by the simulator (`simulate`) and, through
`PolicyAgent`, by the env `sysgym/ServerlessKeepAlive-v0` (a test checks both give identical metrics).

* `FixedKeepAlive`: keep every idle instance for a fixed window (AWS Lambda 10 min, Azure 20 min: Shahrad et
  al., ATC'20 Sec. 4.1; Huawei 1 min: Joosen et al., EuroSys'25 Sec. 2.2); 0 = unload at once.
* `HybridHistogram`: Shahrad et al.'s hybrid histogram policy (ATC'20 Sec. 4.2), per application (the unit of an
  instance). It records each application's idle times (from the end of its last execution to its next invocation)
  in a histogram of 1-minute bins over a 4-hour range, and after each execution chooses, in this order:
  - *out of bounds*: when at least half of the idle times so far exceeded the range (`oob_threshold` 0.5), it
    forecasts the next idle time from the idle-time series (the paper fits ARIMA; here an AR(p) fit, p <= 2 chosen
    by AICc: `sysgym.solvers.serverless.forecast`) and pre-warms 15 % before it, keeping the instance warm until
    15 % after it (`forecast_margin` 0.15: the window is 30 % of the forecast);
  - *not representative*: with fewer than `min_idle_times` idle times in range, or when the coefficient of
    variation of the bin counts is below 2 (`cv_threshold`: a flat histogram has none, a spike a high one), the
    standard keep-alive: no pre-warming, keep alive for the histogram's range (4 hours);
  - *histogram*: pre-warm at the 5th-percentile idle time (the head, its bin's lower edge) less 10 % (`margin`),
    and keep warm until the 99th percentile (the tail, its bin's upper edge) plus 10 %; a head of 0 keeps the
    instance loaded from the end of the execution.
  Sources of the defaults: bins, range, head, tail, the 10 % and 15 % margins, the CV threshold of 2 and the order of
  the three cases are those of the paper as read in three independent reproductions (dslab,
  github.com/osukhoroslov/dslab, examples/serverless-in-the-wild, whose `HybridHistogramPolicy` defaults to bins of
  60 s, CV 2, OOB share 0.5, ARIMA margin 0.15, histogram margin 0.1, head 0.05, tail 0.99, and keeps a forecast
  window from 0.85 to 1.15 x the forecast; OpenDC's serverless `HybridHistogramPolicy` (the same windows, CV 2); a
  review of the paper, mikhail.io/2020/06/eliminate-cold-starts-by-predicting-invocations-of-serverless-functions:
  "4 hours", "one-minute granularity", the head "5th percentile minus 10% margin", the fallback "no shutdown and a
  long keep-alive window" when the application "may not have enough points yet" or has "no definite shape", and
  ARIMA beyond the 4 hours). ASSUMPTIONS, where the paper gives no number: the out-of-bounds share 0.5 (dslab's
  default: "most" idle times); `min_idle_times`, the "enough points": by default n_bins / cv_threshold^2 = 60, from the
  CV test itself: idle times spread over the bins at random give bin counts with a CV of about sqrt(n_bins / n),
  which exceeds the threshold for fewer than n_bins / threshold^2 of them, so below that count the CV test cannot
  tell a pattern from none. The forecast is fit on the last `forecast_history` (1000) idle times. Windows are
  snapped outward onto the family's decision grid by default (pre-warm never later, keep-alive never shorter than
  the paper's), so the env can express every plan the policy makes; `snap_to_grid=False` plays the paper's
  windows exactly (to the second), which the env's grid cannot express. A keep-alive counts from when the
  pre-warmed instance is ready (the paper's from when it is loaded: the cold-start time later).
* `GreedyDual`: FaasCache's Greedy-Dual keep-alive (Fuerst and Sharma, ASPLOS'21): keep every instance warm
  until memory is needed, then evict the lowest priority `clock + frequency x cold-start cost / memory`
  (GreedyDual-Size-Frequency); the clock becomes the victim's priority. Frequency counts the invocations since
  the instance was loaded.

Under memory pressure the other policies evict the least recently used idle instance.
"""
from __future__ import annotations

import bisect
import math
import time
from typing import Any

import numpy as np

from sysgym.envs.serverless.env import ServerlessKeepAliveEnv
from sysgym.envs.serverless.simulator import (
    INF,
    KEEP_ALIVE_S,
    PREWARM_S,
    Request,
    Simulator,
    drive,
    snap_down,
    snap_up,
)
from sysgym.errors import InvalidArgumentError
from sysgym.solution import Solution
from sysgym.solvers.base import Solver, register
from sysgym.solvers.serverless.forecast import MAX_ORDER, ar_forecast


class KeepAlivePolicy:
    """Base: least-recently-used eviction; subclasses choose the plan."""

    name = "base"

    def reset(self, sim: Simulator, seed: int = 0) -> None:
        self.rng = np.random.default_rng([int(seed), 0x4B4150])  # "KAP"

    def plan(self, sim: Simulator, f: int) -> tuple[float, float]:  # pragma: no cover - abstract
        raise NotImplementedError

    def victim(self, sim: Simulator, request: Request) -> int:
        def idle_since(g: int) -> float:
            s = sim.idle_since[g]
            return sim.busy_end[g] if s is None else s

        return min(request.candidates, key=lambda g: (idle_since(g), g))

    def __repr__(self) -> str:
        return f"<policy {self.name}>"


class FixedKeepAlive(KeepAlivePolicy):
    name = "fixed"

    def __init__(self, keep_alive_min: float = 10.0):
        if not keep_alive_min >= 0:
            raise InvalidArgumentError(f"keep_alive_min must be >= 0 (inf: forever), got {keep_alive_min}")
        self.keep_s = 60.0 * float(keep_alive_min)

    def plan(self, sim: Simulator, f: int) -> tuple[float, float]:
        return 0.0, self.keep_s


class HybridHistogram(KeepAlivePolicy):
    name = "hybrid"

    def __init__(self, range_min: float = 240.0, bin_min: float = 1.0, head_percentile: float = 5.0,
                 tail_percentile: float = 99.0, margin: float = 0.10, cv_threshold: float = 2.0,
                 oob_threshold: float = 0.5, forecast_margin: float = 0.15, forecast_history: int = 1000,
                 forecast_max_order: int = MAX_ORDER, min_idle_times: int | None = None, snap_to_grid: bool = True):
        if not (range_min > 0 and bin_min > 0 and range_min >= bin_min):
            raise InvalidArgumentError(f"need range_min >= bin_min > 0, got {range_min}, {bin_min}")
        if not 0 <= head_percentile <= tail_percentile <= 100:
            raise InvalidArgumentError(f"need 0 <= head <= tail <= 100, got {head_percentile}, {tail_percentile}")
        if not (cv_threshold > 0 and 0 < oob_threshold <= 1 and 0 <= margin < 1 and 0 <= forecast_margin < 1):
            raise InvalidArgumentError("need cv_threshold > 0, 0 < oob_threshold <= 1 and margins in [0, 1), got "
                                       f"{cv_threshold}, {oob_threshold}, {margin}, {forecast_margin}")
        if int(forecast_history) < 1 or int(forecast_max_order) < 0:
            raise InvalidArgumentError(f"need forecast_history >= 1 and forecast_max_order >= 0, got "
                                       f"{forecast_history}, {forecast_max_order}")
        self.range_s, self.bin_s = 60.0 * range_min, 60.0 * bin_min
        self.n_bins = int(round(range_min / bin_min))
        self.head, self.tail = head_percentile / 100.0, tail_percentile / 100.0
        self.margin, self.cv_threshold, self.oob_threshold = margin, cv_threshold, oob_threshold
        self.forecast_margin, self.forecast_history = forecast_margin, int(forecast_history)
        self.forecast_max_order = int(forecast_max_order)
        # Too few idle times: below n_bins / cv_threshold^2 in-range idle times, idle times spread over the bins
        # without any pattern already pass the CV test (module doc), so the histogram cannot be told representative.
        self.min_idle_times = (math.ceil(self.n_bins / cv_threshold ** 2) if min_idle_times is None
                               else int(min_idle_times))
        if self.min_idle_times < 1:
            raise InvalidArgumentError(f"min_idle_times must be >= 1, got {min_idle_times}")
        self.snap_to_grid = bool(snap_to_grid)

    def reset(self, sim: Simulator, seed: int = 0) -> None:
        super().reset(sim, seed)
        n_f = sim.inst.num_functions
        self.tree = [[0] * (self.n_bins + 1) for _ in range(n_f)]  # Fenwick trees of the bin counts
        self.in_range = [0] * n_f
        self.oob = [0] * n_f
        self.sumsq = [0] * n_f  # sum of squared bin counts (for the CV)
        self.counts = [[0] * self.n_bins for _ in range(n_f)]
        self.seen = [0] * n_f
        self.patterns = {"uncertain": 0, "histogram": 0, "forecast": 0}
        self._step = 1 << (self.n_bins.bit_length() - 1)

    def _update(self, sim: Simulator, f: int) -> None:
        its = sim.idle_times[f]
        counts, tree, n = self.counts[f], self.tree[f], self.n_bins
        for it in its[self.seen[f]:]:
            b = int(it // self.bin_s)
            if b < n:
                c = counts[b]
                counts[b] = c + 1
                self.sumsq[f] += 2 * c + 1
                self.in_range[f] += 1
                i = b + 1
                while i <= n:
                    tree[i] += 1
                    i += i & -i
            else:
                self.oob[f] += 1
        self.seen[f] = len(its)

    def cv(self, f: int) -> float:
        """Coefficient of variation of function f's histogram bin counts."""
        n, total = self.n_bins, self.in_range[f]
        if total == 0:
            return 0.0
        mean = total / n
        var = max(0.0, (self.sumsq[f] - n * mean * mean) / (n - 1)) if n > 1 else 0.0
        return math.sqrt(var) / mean

    def _percentile_bin(self, f: int, p: float) -> int:
        """The first bin whose cumulative count reaches p x (in-range idle times)."""
        target = p * self.in_range[f] - 1e-9
        tree, pos, acc, step = self.tree[f], 0, 0, self._step
        while step:  # Fenwick descent: the largest prefix with a count below target
            nxt = pos + step
            if nxt <= self.n_bins and acc + tree[nxt] < target:
                pos, acc = nxt, acc + tree[nxt]
            step >>= 1
        return min(pos, self.n_bins - 1)

    def plan(self, sim: Simulator, f: int) -> tuple[float, float]:
        self._update(sim, f)
        total = self.in_range[f] + self.oob[f]
        if total and self.oob[f] / total >= self.oob_threshold:
            self.patterns["forecast"] += 1
            pred = ar_forecast(sim.idle_times[f][-self.forecast_history:], self.forecast_max_order)
            return self._window(pred * (1 - self.forecast_margin), pred * (1 + self.forecast_margin))
        if self.in_range[f] < self.min_idle_times or self.cv(f) < self.cv_threshold:
            self.patterns["uncertain"] += 1
            return 0.0, snap_up(self.range_s, KEEP_ALIVE_S) if self.snap_to_grid else self.range_s
        self.patterns["histogram"] += 1
        head_s = self._percentile_bin(f, self.head) * self.bin_s
        tail_s = (self._percentile_bin(f, self.tail) + 1) * self.bin_s
        return self._window(head_s * (1 - self.margin), tail_s * (1 + self.margin))

    def _window(self, prewarm_s: float, until_s: float) -> tuple[float, float]:
        """Pre-warm at `prewarm_s` after the idle start and stay warm until `until_s`, snapped outward onto the
        decision grid (or exactly, without `snap_to_grid`)."""
        if not self.snap_to_grid:
            p = max(0.0, prewarm_s)
            return p, max(0.0, until_s - p)
        p = snap_down(prewarm_s, PREWARM_S)
        return p, snap_up(max(0.0, until_s - p), KEEP_ALIVE_S if p == 0 else KEEP_ALIVE_S[1:])


class GreedyDual(KeepAlivePolicy):
    name = "greedy_dual"

    def reset(self, sim: Simulator, seed: int = 0) -> None:
        super().reset(sim, seed)
        self.clock_times: list[float] = [-INF]
        self.clock_values: list[float] = [0.0]

    def plan(self, sim: Simulator, f: int) -> tuple[float, float]:
        return 0.0, INF

    def priority(self, sim: Simulator, g: int) -> float:
        """clock (when g was last invoked) + frequency x cold-start seconds / memory MB."""
        k = bisect.bisect_right(self.clock_times, sim.last_arrival[g]) - 1
        return self.clock_values[k] + sim.count_since_load[g] * sim.cold[g] / sim.mem[g]

    def victim(self, sim: Simulator, request: Request) -> int:
        pri = {g: self.priority(sim, g) for g in request.candidates}
        v = min(request.candidates, key=lambda g: (pri[g], sim.last_arrival[g], g))
        self.clock_times.append(sim.now)
        self.clock_values.append(max(self.clock_values[-1], pri[v]))
        return v


class PolicyAgent:
    """Drives the env with a policy: each pending request is answered by the policy and encoded as an action."""

    def __init__(self, policy: KeepAlivePolicy):
        self.policy = policy

    def reset(self, env) -> None:
        self.policy.reset(env.unwrapped.sim)

    def act(self, env) -> int:
        base: ServerlessKeepAliveEnv = env.unwrapped
        req = base.request
        if req.kind == "plan":
            return base.encode_plan(*self.policy.plan(base.sim, req.function))
        return base.encode_eviction(self.policy.victim(base.sim, req))


# -- the policies as registered solvers ------------------------------------------------------------------------
class _PolicySolver(Solver):
    family = "serverless"
    kind = "heuristic"

    def policy(self) -> KeepAlivePolicy:  # pragma: no cover - abstract
        raise NotImplementedError

    def solve(self, instance, *, time_limit=None, seed=0) -> Solution:
        from sysgym.envs.serverless.evaluate import evaluate

        t0 = time.perf_counter()
        sim = Simulator(instance)
        pol = self.policy()
        pol.reset(sim, seed)
        drive(sim, pol)
        wall = time.perf_counter() - t0
        m = evaluate(instance, sim.schedule)
        stats: dict[str, Any] = {k: m[k] for k in ("cold_start_rate", "added_latency_p99_s", "wasted_gb_s")}
        stats.update(evictions=sim.evictions, prewarms=sim.prewarms, skipped_prewarms=sim.skipped_prewarms,
                     plans=sim.plans, sim_wall_s=wall)
        if isinstance(pol, HybridHistogram):
            stats["patterns"] = dict(pol.patterns)
        return Solution(sim.schedule, m["cost"], "feasible", time.perf_counter() - t0, stats=stats)


@register
class Fixed(_PolicySolver):
    """Fixed keep-alive: every idle instance stays warm keep_alive_min minutes (AWS Lambda's 10)."""

    name = "serverless.fixed"
    kind = "baseline"

    def __init__(self, keep_alive_min: float = 10.0):
        super().__init__(keep_alive_min=keep_alive_min)
        FixedKeepAlive(keep_alive_min)  # a bad value fails here, before any work

    def policy(self) -> FixedKeepAlive:
        return FixedKeepAlive(**self.config)


@register
class NoKeepAlive(_PolicySolver):
    """No keep-alive: an instance is unloaded as soon as it is idle (every gap is a cold start)."""

    name = "serverless.no_keepalive"
    kind = "baseline"

    def __init__(self):
        super().__init__()

    def policy(self) -> FixedKeepAlive:
        return FixedKeepAlive(0.0)


@register
class Hybrid(_PolicySolver):
    """Shahrad et al.'s hybrid histogram keep-alive and pre-warming policy (ATC'20)."""

    name = "serverless.hybrid"

    def __init__(self, range_min: float = 240.0, bin_min: float = 1.0, head_percentile: float = 5.0,
                 tail_percentile: float = 99.0, margin: float = 0.10, cv_threshold: float = 2.0,
                 oob_threshold: float = 0.5, forecast_margin: float = 0.15, forecast_history: int = 1000,
                 forecast_max_order: int = MAX_ORDER, min_idle_times: int | None = None, snap_to_grid: bool = True):
        super().__init__(range_min=range_min, bin_min=bin_min, head_percentile=head_percentile,
                         tail_percentile=tail_percentile, margin=margin, cv_threshold=cv_threshold,
                         oob_threshold=oob_threshold, forecast_margin=forecast_margin,
                         forecast_history=forecast_history, forecast_max_order=forecast_max_order,
                         min_idle_times=min_idle_times, snap_to_grid=snap_to_grid)
        HybridHistogram(**self.config)

    def policy(self) -> HybridHistogram:
        return HybridHistogram(**self.config)


@register
class GreedyDualSolver(_PolicySolver):
    """FaasCache's Greedy-Dual keep-alive: warm until memory is needed, evict by clock + freq x cost / size."""

    name = "serverless.greedy_dual"

    def __init__(self):
        super().__init__()

    def policy(self) -> GreedyDual:
        return GreedyDual()
