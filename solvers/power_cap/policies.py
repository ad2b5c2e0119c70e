"""Online cap controllers for `sysgym/PowerCap-v0`, one implementation each, driven interval by interval on the
family's `Row` (the simulator the env steps and the evaluator replays).

* `Polca`: POLCA's threshold controller (Patel et al., ASPLOS'24, Sec. 5-6): row power telemetry is compared
  with two thresholds of the budget; above the upper one the servers' GPU frequencies are capped, below the
  lower one the caps are lifted, and between them nothing changes (hysteresis, so the controller does not
  oscillate). POLCA reacts to the last telemetry sample (here: the last interval's average row power) and steps
  frequency caps rather than power caps, because frequency caps act quickly and predictably. ASSUMPTION: the
  thresholds' values (cap above 90 % of the budget, uncap below 80 %) and the one-level step per interval are
  our reading of the scheme, not numbers copied from the paper; POLCA also caps low-priority workloads first,
  which a row of one priority does not need.
* `NoCap`: never cap (the unprotected oversubscribed row).
* `StaticCap`: every server at one fixed level all the time (the conservative provisioning POLCA improves on).
* `Lookahead`: a clairvoyant controller: for every interval it simulates the coming interval at each uniform
  level from uncapped down and keeps the fastest one that stays within the budget (the slowest level if none
  does). It sees the future, so it is a reference point, not a deployable policy; it is not a bound either
  (one interval ahead, greedy).
"""
from __future__ import annotations

import copy
import time
from typing import Any

import numpy as np

from sysgym.envs.power_cap.evaluate import evaluate
from sysgym.envs.power_cap.instance import PowerCapInstance
from sysgym.envs.power_cap.simulator import Row
from sysgym.errors import InvalidArgumentError
from sysgym.solution import Solution
from sysgym.solvers.base import Solver, register


class CapPolicy:
    """Base: `levels(row)` returns every server's level for the interval `row` is about to run."""

    name = "base"

    def reset(self, inst: PowerCapInstance) -> None:
        self.inst = inst

    def levels(self, row: Row) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError


class Uniform(CapPolicy):
    def __init__(self, level: int = 0):
        if int(level) < 0:
            raise InvalidArgumentError(f"level must be >= 0, got {level}")
        self.level = int(level)

    def reset(self, inst: PowerCapInstance) -> None:
        super().reset(inst)
        if self.level >= inst.num_levels:
            raise InvalidArgumentError(f"level {self.level} is not one of the instance's {inst.num_levels} levels")

    def levels(self, row: Row) -> np.ndarray:
        return np.full(self.inst.num_servers, self.level)


class PolcaThreshold(CapPolicy):
    name = "polca"

    def __init__(self, cap_threshold: float = 0.9, uncap_threshold: float = 0.8, step: int = 1):
        if not 0 < uncap_threshold <= cap_threshold:
            raise InvalidArgumentError(f"need 0 < uncap_threshold <= cap_threshold, got {uncap_threshold}, "
                                       f"{cap_threshold}")
        if int(step) < 1:
            raise InvalidArgumentError(f"step must be >= 1, got {step}")
        self.cap, self.uncap, self.step = float(cap_threshold), float(uncap_threshold), int(step)

    def reset(self, inst: PowerCapInstance) -> None:
        super().reset(inst)
        self.level = 0

    def levels(self, row: Row) -> np.ndarray:
        k = row.interval
        if k:
            power = float(row.power[k - 1].sum())
            if power > self.cap * self.inst.budget_w:
                self.level = min(self.inst.num_levels - 1, self.level + self.step)
            elif power < self.uncap * self.inst.budget_w:
                self.level = max(0, self.level - self.step)
        return np.full(self.inst.num_servers, self.level)


class Lookahead(CapPolicy):
    name = "lookahead"

    def levels(self, row: Row) -> np.ndarray:
        inst = self.inst
        for lv in range(inst.num_levels):
            trial = copy.deepcopy(row)
            if trial.step(np.full(inst.num_servers, lv)).sum() <= inst.budget_w:
                return np.full(inst.num_servers, lv)
        return np.full(inst.num_servers, inst.num_levels - 1)


def drive(inst: PowerCapInstance, policy: CapPolicy) -> np.ndarray:
    """Run `policy` over the horizon; the cap schedule it made."""
    row = Row(inst)
    policy.reset(inst)
    while not row.done:
        row.step(policy.levels(row))
    return row.levels


class _PolicySolver(Solver):
    family = "power_cap"
    kind = "heuristic"

    def policy(self) -> CapPolicy:  # pragma: no cover - abstract
        raise NotImplementedError

    def solve(self, instance, *, time_limit=None, seed=0) -> Solution:
        t0 = time.perf_counter()
        schedule = drive(instance, self.policy())
        m = evaluate(instance, schedule)
        stats: dict[str, Any] = {k: m[k] for k in ("slo_attainment", "overbudget_rate", "energy_j", "mean_clock")}
        return Solution(schedule.tolist(), m["cost"], "feasible", time.perf_counter() - t0, stats=stats)


@register
class Polca(_PolicySolver):
    """POLCA's threshold controller: cap GPU clocks above a row-power threshold, uncap below a lower one."""

    name = "power_cap.polca"

    def __init__(self, cap_threshold: float = 0.9, uncap_threshold: float = 0.8, step: int = 1):
        super().__init__(cap_threshold=cap_threshold, uncap_threshold=uncap_threshold, step=step)
        PolcaThreshold(**self.config)  # a bad value fails here, before any work

    def policy(self) -> PolcaThreshold:
        return PolcaThreshold(**self.config)


@register
class NoCap(_PolicySolver):
    """No capping: every server at its maximum clock (the unprotected oversubscribed row)."""

    name = "power_cap.none"
    kind = "baseline"

    def __init__(self):
        super().__init__()

    def policy(self) -> Uniform:
        return Uniform(0)


@register
class StaticCap(_PolicySolver):
    """A static cap: every server at clock level `level` all the time."""

    name = "power_cap.static"
    kind = "baseline"

    def __init__(self, level: int = 1):
        super().__init__(level=level)
        Uniform(level)

    def policy(self) -> Uniform:
        return Uniform(**self.config)


@register
class LookaheadSolver(_PolicySolver):
    """A clairvoyant controller: per interval, the fastest uniform level whose simulated power fits the budget."""

    name = "power_cap.lookahead"
    kind = "search"

    def __init__(self):
        super().__init__()

    def policy(self) -> Lookahead:
        return Lookahead()
