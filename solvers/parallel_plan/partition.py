"""Layer-to-stage partition solvers: `parallel_plan.dp` (Galvatron-style dynamic program) and
`parallel_plan.cpsat` (OR-Tools CP-SAT).

Both search the same space: every configuration of global knobs (t, p, d, b, sequence parallelism, base
recomputation, optimizer sharding; v = 1, any pipeline depth up to the layer count) times every split of the
layers into p contiguous stages and every per-stage count of fully recomputed layers. Stages are not alike:
the first holds the embedding and p in-flight micro-batches, the last the LM head and the logits, so unequal
splits can win. The iteration time of a split is (m - 1) max_i tau_i + sum_i tau_i + max_i end_i
(1F1B plus the gradient sync of the slowest stage), exactly what `estimate_training` computes.

On a heterogeneous cluster the configurations also carry a placement (a node group per stage): the DP
enumerates Megatron's rank order and every contiguous assignment of stages to groups (`space.placement_options`),
so it is exact over those; CP-SAT assigns every stage to a group itself (any assignment that fills each group's
GPUs with whole-node stages), the exchanges between stages priced by whether their groups differ.

Configurations are visited in order of a valid lower bound and skipped once the bound reaches the incumbent,
so both methods are exact over this space. The incumbent starts as the best equal-stage plan of the vectorised
enumeration, with interleaving when `interleaving=True` (default): the result is then optimal over the union
of the interleaved equal-stage plans and all v = 1 partitions.

* DP (Galvatron, Miao et al. VLDB'23, adapted to a Megatron pipeline): per stage and layer count, the
  layer-wise choice between the base strategy and full recomputation under the stage's memory budget (for
  identical layers, the fewest recomputed layers that fit); then a DP over stages and layers that minimises
  sum tau under bottleneck thresholds on max tau and max end, enumerated in increasing order with bounds.
* CP-SAT: per configuration, an integer variable per stage for its (layers, recomputed layers) pair, restricted
  to the pairs that fit in memory (and, with `dominance=True`, to the fewest recomputed layers per layer count,
  which loses no optimum), element constraints for their times, and the max terms as bottleneck variables;
  the solver's bound gives the gap.
"""
from __future__ import annotations

import math
import time

import numpy as np
from ortools.sat.python import cp_model

from sysgym.envs.parallel_plan.cost import memory_limit_bytes
from sysgym.envs.parallel_plan.space import infeasible_report, placement_options
from sysgym.solvers.base import Solver, register
from sysgym.solvers.cpsat_params import set_limits
from sysgym.solvers.parallel_plan.common import (
    cfg_row,
    partition_configs,
    plan_from,
    row_placement,
    scored_solution,
    stage_tables,
)
from sysgym.solvers.parallel_plan.exhaustive import best_uniform

NS = 1e9  # CP-SAT works in integer nanoseconds


def _incumbent(inst, max_zero_stage: int, interleaving: bool):
    """The best equal-stage plan (enumerated exactly): the starting incumbent, and with interleaving the
    interleaved plans that the v = 1 partition search cannot express."""
    space, out, k = best_uniform(inst, interleaving=interleaving, max_zero_stage=max_zero_stage)
    if k is None:
        return None, math.inf
    plan = space.plan(k)
    return plan, inst.estimate(plan).iteration_time_s


def _assignable(inst, row) -> list:
    """The contiguous placements of a configuration on a heterogeneous cluster (empty when its stages cannot be
    placed on node groups: not whole nodes, or groups not filled exactly)."""
    if not inst.cluster.heterogeneous:
        return []
    return placement_options(inst, row["t"], row["c"], row["p"], row["d"])[1:]


def _ordered_configs(inst, max_zero_stage: int, deadline: float | None = None, placements: bool = True):
    """(lower bound, index, config) sorted by the bound; the bound needs only the no-recompute stage times. With
    placements=False (CP-SAT) a configuration that CP-SAT may place on node groups is bounded over every group."""
    configs = partition_configs(inst, max_zero_stage=max_zero_stage, placements=placements)
    cm = inst.cost_model()
    L = inst.model.num_layers
    n = np.arange(1, L + 1)[None, :]
    items = []
    for k in range(len(configs)):
        if deadline is not None and time.perf_counter() > deadline:
            break
        row = cfg_row(configs, k)
        rows = [row]
        if not placements and _assignable(inst, row):
            rows = [{**row, "pl": cm.placement_id((g,) * row["p"])} for g in range(cm.G)]
        per_layer, end = math.inf, math.inf
        for r in rows:
            st = cm.stage_terms(r, np.arange(r["p"])[:, None], n, 0)
            per_layer = min(per_layer, float(np.min(st["tau"] / n)))  # tau_i(n) >= n * this for every split
            end = min(end, float(np.min(st["end"])))
        s_lb = L * per_layer
        lb = (row["m"] - 1) * s_lb / row["p"] + s_lb + end
        items.append((lb, k, row))
    items.sort(key=lambda x: (x[0], x[1]))
    return items


def _min_plus_dp(tau: np.ndarray, allowed: np.ndarray, L: int):
    """min sum_i tau[i, n_i] s.t. sum n_i = L, allowed[i, n_i]; returns (value, parts) or (inf, None)."""
    p = tau.shape[0]
    f = np.full(L + 1, np.inf)
    f[0] = 0.0
    choices = []
    li = np.arange(L + 1)[:, None]
    ni = np.arange(L + 1)[None, :]
    prev_idx = np.clip(li - ni, 0, L)
    valid = ni <= li
    for i in range(p):
        w = np.where(allowed[i], tau[i], np.inf)
        w[0] = np.inf
        cand = np.where(valid, f[prev_idx] + w[None, :], np.inf)
        arg = np.argmin(cand, axis=1)
        f = cand[np.arange(L + 1), arg]
        choices.append(arg)
    if not np.isfinite(f[L]):
        return math.inf, None
    parts, left = [], L
    for i in range(p - 1, -1, -1):
        n = int(choices[i][left])
        parts.append(n)
        left -= n
    return float(f[L]), parts[::-1]


def _first_feasible(cands: np.ndarray, feasible) -> int:
    """Index of the smallest candidate threshold for which `feasible` holds (monotone), or len(cands)."""
    lo, hi = 0, len(cands)
    while lo < hi:
        mid = (lo + hi) // 2
        if feasible(cands[mid]):
            hi = mid
        else:
            lo = mid + 1
    return lo


def dp_config(tab, L: int, best: float):
    """Exact best split of one configuration (or None when it cannot beat `best`).

    Enumerates the bottleneck max tau = T1 in increasing order (starting at the smallest feasible one, found by
    bisection) and, for each, max end = T2; a DP over stages minimises sum tau under both caps. Any split is
    found at its own (T1, T2), so the minimum over the enumeration is exact; bounds stop it early.
    """
    m = tab.m
    finite = np.isfinite(tab.tau)
    if not finite.any():
        return None
    s_free, _ = _min_plus_dp(tab.tau, finite, L)
    if not math.isfinite(s_free):
        return None
    e_min = float(np.min(np.where(finite, tab.end, np.inf)))
    cand_tau = np.unique(tab.tau[finite])
    cand_end = np.unique(tab.end[finite])
    start = _first_feasible(cand_tau, lambda t1: math.isfinite(
        _min_plus_dp(tab.tau, finite & (tab.tau <= t1), L)[0]))
    found = None
    cache: dict[bytes, tuple[float, list | None]] = {}

    def run(allowed):
        key = allowed.tobytes()
        if key not in cache:
            cache[key] = _min_plus_dp(tab.tau, allowed, L)
        return cache[key]

    for t1 in cand_tau[start:]:
        if (m - 1) * t1 + s_free + e_min >= best:
            break
        cap1 = finite & (tab.tau <= t1)
        s_t1, parts = run(cap1)
        if parts is None:
            continue
        j0 = _first_feasible(cand_end, lambda t2, c=cap1: math.isfinite(run(c & (tab.end <= t2))[0]))
        for t2 in cand_end[j0:]:
            if (m - 1) * t1 + s_t1 + t2 >= best:
                break
            s, parts = run(cap1 & (tab.end <= t2))
            if parts is None:
                continue
            taus = [tab.tau[i, n] for i, n in enumerate(parts)]
            ends = [tab.end[i, n] for i, n in enumerate(parts)]
            obj = (m - 1) * max(taus) + sum(taus) + max(ends)
            if obj < best:
                best, found = obj, (parts, [int(tab.r[i, n]) for i, n in enumerate(parts)], obj)
    return found


def _result(inst, t0, plan, status, stats, bound=None):
    if plan is None:  # a finished search proves its space empty; an unfinished one only ran out of time
        return scored_solution(inst, None, t0, "infeasible" if status == "optimal" else "timeout",
                               stats={**stats, **infeasible_report(inst)})
    return scored_solution(inst, plan, t0, status, bound=bound, stats=stats)


@register
class GalvatronDP(Solver):
    """Galvatron-style dynamic program over layer-to-stage splits and per-stage recomputation (exact)."""

    name = "parallel_plan.dp"
    family = "parallel_plan"
    kind = "exact"

    def __init__(self, max_zero_stage: int = 3, interleaving: bool = True):
        super().__init__(max_zero_stage=max_zero_stage, interleaving=interleaving)
        self.max_zero_stage, self.interleaving = max_zero_stage, interleaving

    def solve(self, instance, *, time_limit: float | None = None, seed: int = 0):
        t0 = time.perf_counter()
        deadline = None if time_limit is None else t0 + float(time_limit)
        L = instance.model.num_layers
        plan, best = _incumbent(instance, self.max_zero_stage, self.interleaving)
        items = _ordered_configs(instance, self.max_zero_stage, deadline)
        visited, complete = 0, True
        for lb, _, row in items:
            if lb >= best:
                break
            if deadline is not None and time.perf_counter() > deadline:
                complete = False
                break
            visited += 1
            found = dp_config(stage_tables(instance, row), L, best)
            if found is not None:
                parts, rs, obj = found
                cand = plan_from(row, parts, rs, row_placement(instance, row))
                score = instance.estimate(cand).iteration_time_s
                if score < best:
                    plan, best = cand, score
        stats = {"configs": len(items), "configs_searched": visited}
        status = "optimal" if complete else "timeout"
        return _result(instance, t0, plan, status, stats, bound=best if complete else None)


@register
class PartitionCpSat(Solver):
    """OR-Tools CP-SAT over layer-to-stage splits and per-stage recomputation, with a bound and gap."""

    name = "parallel_plan.cpsat"
    family = "parallel_plan"
    kind = "exact"

    def __init__(self, workers: int = 2, max_zero_stage: int = 3, per_config_time_limit: float = 10.0,
                 dominance: bool = True, interleaving: bool = True):
        super().__init__(workers=workers, max_zero_stage=max_zero_stage,
                         per_config_time_limit=per_config_time_limit, dominance=dominance, interleaving=interleaving)
        self.workers, self.max_zero_stage, self.dominance = workers, max_zero_stage, dominance
        self.interleaving = interleaving
        self.per_config_time_limit = per_config_time_limit

    def solve(self, instance, *, time_limit: float | None = None, seed: int = 0):
        t0 = time.perf_counter()
        deadline = None if time_limit is None else t0 + float(time_limit)
        L = instance.model.num_layers
        plan, best = _incumbent(instance, self.max_zero_stage, self.interleaving)
        items = _ordered_configs(instance, self.max_zero_stage, deadline, placements=False)
        mem_limit = memory_limit_bytes(instance.cluster, instance.memory_limit_gib)
        bounds: list[float] = []
        visited, all_optimal, stopped_lb = 0, True, None
        for lb, _, row in items:
            if lb >= best:
                stopped_lb = lb
                break
            left = None if deadline is None else deadline - time.perf_counter()
            if left is not None and left <= 0:
                stopped_lb, all_optimal = lb, False
                break
            visited += 1
            limit = self.per_config_time_limit if left is None else min(self.per_config_time_limit, left)
            if _assignable(instance, row):
                res = self._solve_config_groups(instance, row, L, best, limit, seed)
            else:
                res = self._solve_config(stage_tables(instance, row), L, best, limit, seed, mem_limit)
                res = None if res is None else (*res, row_placement(instance, row))
            if res is None:
                continue
            parts, rs, cp_bound, optimal, placement = res
            bounds.append(cp_bound)
            all_optimal &= optimal
            if parts is not None:
                cand = plan_from(row, parts, rs, placement)
                score = instance.estimate(cand).iteration_time_s
                if score < best:
                    plan, best = cand, score
        # Lower bound over the whole space: solved configurations' CP-SAT bounds, and the first skipped one's
        # ordering bound (all later ones are larger).
        lower = min([best, *bounds] + ([stopped_lb] if stopped_lb is not None else []))
        stats = {"configs": len(items), "configs_searched": visited}
        status = "optimal" if all_optimal and (stopped_lb is None or stopped_lb >= best) else "timeout"
        return _result(instance, t0, plan, status, stats, bound=lower)

    def _solve_config(self, tab, L: int, best: float, limit: float, seed: int, mem_limit: float):
        p, m = tab.p, tab.m
        model = cp_model.CpModel()
        big = int(min(best, 1e6) * NS) + 1
        if self.dominance:
            # For each n only the fewest recomputed layers r*(n) can be optimal (more recomputation only adds
            # time; the end-of-iteration time does not depend on r): index the stage by n alone.
            size, n_of, r_of = L + 1, list(range(L + 1)), None
        else:
            size = (L + 1) * (L + 1)
            n_of = [k // (L + 1) for k in range(size)]
            r_of = [k % (L + 1) for k in range(size)]
        n_vars, taus, ends = [], [], []
        fits_any = False
        for i in range(p):
            if self.dominance:
                flat = np.flatnonzero(np.isfinite(tab.tau[i]))
                tau_tab = tab.tau[i]
            else:
                ok = np.isfinite(tab.tau_nr[i]) & (tab.mem_nr[i] <= mem_limit)
                flat = np.flatnonzero(ok.ravel())
                tau_tab = tab.tau_nr[i].ravel()
            if len(flat) == 0:
                return None
            fits_any = True
            tau_int = np.where(np.isfinite(tau_tab), np.round(np.nan_to_num(tau_tab, posinf=0.0) * NS), big)
            tau_int = np.minimum(tau_int, big).astype(np.int64).tolist()
            end_int = np.round(tab.end[i][n_of] * NS).astype(np.int64).tolist()
            idx = model.NewIntVarFromDomain(cp_model.Domain.FromValues(flat.tolist()), f"idx{i}")
            n = model.NewIntVar(1, L, f"n{i}")
            tau = model.NewIntVar(0, big, f"tau{i}")
            end = model.NewIntVar(min(min(end_int), 0), max(end_int) + 1, f"end{i}")  # < 0: cool-down lead
            model.AddElement(idx, n_of, n)
            model.AddElement(idx, tau_int, tau)
            model.AddElement(idx, end_int, end)
            n_vars.append((i, idx, n))
            taus.append(tau)
            ends.append(end)
        if not fits_any:
            return None
        model.Add(sum(n for _, _, n in n_vars) == L)
        tmax = model.NewIntVar(0, big, "tmax")
        end_lo = min(int(round(float(np.min(tab.end)) * NS)), 0)
        emax = model.NewIntVar(end_lo, max(int(round(float(np.max(tab.end)) * NS)) + 1, 1), "emax")
        model.Add(p * tmax >= sum(taus))  # redundant: tightens the relaxation's bound
        solver, code, bound = self._minimise(model, m, tmax, taus, emax, ends, best, m + p + 1, limit, seed)
        if code == cp_model.INFEASIBLE:
            return None
        if code not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            return None, None, bound, False
        parts, rs = [], []
        for i, idx, _ in n_vars:
            k = solver.Value(idx)
            parts.append(n_of[k])
            rs.append(int(tab.r[i, k]) if r_of is None else r_of[k])
        # Integer rounding can shift the bound by up to (m + p + 1) ns; keep it valid.
        return parts, rs, bound - (m + p + 1) / NS, code == cp_model.OPTIMAL

    def _minimise(self, model, m: int, tmax, taus, emax, ends, best: float, slack: int, limit: float, seed: int):
        """Minimise (m - 1) max tau + sum tau + max end (ns) under the incumbent; (solver, status, bound in s)."""
        model.AddMaxEquality(tmax, taus)
        model.AddMaxEquality(emax, ends)
        objective = (m - 1) * tmax + sum(taus) + emax
        if math.isfinite(best):  # only splits that beat the incumbent matter
            model.Add(objective <= int(best * NS) + slack)
        model.Minimize(objective)
        solver = cp_model.CpSolver()
        # `per_config_time_limit` is deterministic work (cpsat_params.py), so a run without a wall-clock
        # time_limit gives the same plan on any machine; with one, what is left of it also caps the wall time.
        set_limits(solver, time_limit=max(self.per_config_time_limit, 0.01), workers=self.workers, seed=seed)
        if limit < self.per_config_time_limit:  # the run's wall-clock deadline is nearer
            solver.parameters.max_time_in_seconds = float(max(limit, 0.01))
        code = solver.Solve(model)
        return solver, code, solver.BestObjectiveBound() / NS

    def _solve_config_groups(self, inst, row: dict, L: int, best: float, limit: float, seed: int):
        """One configuration on a heterogeneous cluster: CP-SAT picks each stage's layers and node group.

        Each group k holds exactly its GPUs / (t c d) stages. A stage's time is its time with every stage in its
        group (compute, its group's data-parallel reduction in the end term) without its exchanges, plus one
        exchange per neighbour priced by the pair of groups (same group: that group's NICs; else the link
        between groups). Layer counts use the fewest fully recomputed layers that fit (memory does not depend
        on the group). Returns (parts, recomputed layers, bound, optimal, placement) or None."""
        cm = inst.cost_model()
        G, p, m = cm.G, int(row["p"]), int(row["m"])
        per_stage = int(row["t"] * row["c"] * row["d"])
        caps = [g.num_nodes * cm.gpn // per_stage for g in inst.cluster.groups]
        tabs = [stage_tables(inst, {**row, "pl": cm.placement_id((k,) * p)}) for k in range(G)]
        lt = cm.layer_terms(row["t"], row["b"], row["sp"], row["c"])
        q_same = [float(lt["q"][2 + k]) for k in range(G)]
        q_cross = float(lt["q"][cm.CROSS])
        neighbours = np.array([(i > 0) + (i < p - 1) for i in range(p)], float)[:, None]
        tau0 = [np.where(np.isfinite(tab.tau), tab.tau - q_same[k] * neighbours, np.inf) for k, tab in enumerate(tabs)]
        big = int(min(best, 1e6) * NS) + 1
        size = G * (L + 1)
        n_of = [f % (L + 1) for f in range(size)]
        g_of = [f // (L + 1) for f in range(size)]
        model = cp_model.CpModel()
        idxs, ns, gs, taus0, ends = [], [], [], [], []
        end_hi, end_lo = 1, 0
        for i in range(p):
            tau_tab = np.concatenate([tau0[k][i] for k in range(G)])
            end_tab = np.concatenate([tabs[k].end[i] for k in range(G)])
            flat = np.flatnonzero(np.isfinite(tau_tab))
            if len(flat) == 0:
                return None
            tau_int = np.minimum(np.round(np.nan_to_num(tau_tab, posinf=0.0) * NS), big).astype(np.int64).tolist()
            end_int = np.round(end_tab * NS).astype(np.int64)
            lo_end = int(min(end_int.min(), 0))
            end_hi, end_lo = max(end_hi, int(end_int.max()) + 1), min(end_lo, lo_end)
            idx = model.NewIntVarFromDomain(cp_model.Domain.FromValues(flat.tolist()), f"idx{i}")
            n = model.NewIntVar(1, L, f"n{i}")
            g = model.NewIntVar(0, G - 1, f"g{i}")
            tau = model.NewIntVar(0, big, f"tau0_{i}")
            end = model.NewIntVar(lo_end, int(end_int.max()) + 1, f"end{i}")
            model.AddElement(idx, n_of, n)
            model.AddElement(idx, g_of, g)
            model.AddElement(idx, tau_int, tau)
            model.AddElement(idx, end_int.tolist(), end)
            idxs.append(idx)
            ns.append(n)
            gs.append(g)
            taus0.append(tau)
            ends.append(end)
        for k in range(G):
            in_k = []
            for i in range(p):
                x = model.NewBoolVar(f"x{i}_{k}")
                model.Add(gs[i] == k).OnlyEnforceIf(x)
                model.Add(gs[i] != k).OnlyEnforceIf(x.Not())
                in_k.append(x)
            model.Add(sum(in_k) == caps[k])
        q_tab = [int(round((q_same[a] if a == b else q_cross) * NS)) for a in range(G) for b in range(G)]
        qb = []
        for i in range(p - 1):
            pair = model.NewIntVar(0, G * G - 1, f"pair{i}")
            model.Add(pair == G * gs[i] + gs[i + 1])
            q = model.NewIntVar(0, max(q_tab), f"q{i}")
            model.AddElement(pair, q_tab, q)
            qb.append(q)
        taus = []
        for i in range(p):
            tau = model.NewIntVar(0, big + 2 * max(q_tab), f"tau{i}")
            model.Add(tau == taus0[i] + (qb[i - 1] if i > 0 else 0) + (qb[i] if i < p - 1 else 0))
            taus.append(tau)
        model.Add(sum(ns) == L)
        tmax = model.NewIntVar(0, big + 2 * max(q_tab), "tmax")
        emax = model.NewIntVar(end_lo, end_hi, "emax")
        solver, code, bound = self._minimise(model, m, tmax, taus, emax, ends, best, m + 3 * p + 1, limit, seed)
        if code == cp_model.INFEASIBLE:
            return None
        if code not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            return None, None, bound, False, None
        parts, rs, place = [], [], []
        for i in range(p):
            f = solver.Value(idxs[i])
            parts.append(n_of[f])
            place.append(g_of[f])
            rs.append(int(tabs[g_of[f]].r[i, n_of[f]]))
        # Integer rounding can shift the bound by up to (m + 3p + 1) ns; keep it valid.
        return parts, rs, bound - (m + 3 * p + 1) / NS, code == cp_model.OPTIMAL, tuple(place)
