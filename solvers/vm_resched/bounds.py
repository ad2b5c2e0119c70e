"""Proven lower bounds on the fragment rate a migration plan can reach (every exact method reports one).

* `remainder_bound`: no solver. With R = sum over nodes of (free CPU mod u) and F the total free CPU (which
  migrations never change), a single-NUMA VM of c cores moving from node s to node d changes s's remainder by
  a or a - u and d's by -a or u - a (a = c mod u), so R changes by -u, 0 or +u; a double-NUMA VM (h cores per
  node) does so on each of its two node pairs: -2u..+2u, and nothing at all when h mod u = 0 (64-core VMs: 32 per
  node). A VM whose half fills a node exactly, when no node is larger (88-core VMs on 44-core nodes), only
  moves from a full PM to an empty one, which swaps remainders: no change either. Memory only forbids moves,
  so it cannot lower R further. Hence after at most MNL migrations R >= R0 - MNL * D (D the largest drop one
  migration of any VM of the instance can make, 16 on generated instances) and R = R0 (mod u):
  FR >= max(R0 mod u, R0 - MNL * D) / F.
* `model_bound`: the best bound CP-SAT proves on the exact model (`model.py`) within a deterministic time.
"""
from __future__ import annotations

import numpy as np

from sysgym.envs.vm_resched.instance import VmInstance


def max_drop(inst: VmInstance) -> int:
    """The most one migration can lower the sum of remainders (see the module doc)."""
    u = int(inst.frag_unit)
    if inst.num_vms == 0:
        return 0
    drop = 0
    single = ~inst.vm_double
    if single.any() and (inst.vm_cpu[single] % u != 0).any():
        drop = u
    if inst.vm_double.any():
        half = inst.vm_cpu[inst.vm_double] // 2
        cap = inst.node_cpu
        for h in np.unique(half[half % u != 0]):
            fits = cap[cap >= h]
            if len(fits) and (fits == h).all():
                continue  # fills a node exactly and no node is larger: full PM <-> empty PM, no change
            drop = 2 * u
            break
    return drop


def remainder_bound_sum(inst: VmInstance) -> int:
    u = int(inst.frag_unit)
    used = inst.node_usage()[0]
    free = inst.node_cpu - used
    r0 = int((free % u).sum())
    return max(r0 % u, r0 - int(inst.mnl) * max_drop(inst))


def remainder_bound(inst: VmInstance) -> float:
    """FR >= max(R0 mod u, R0 - MNL * D) / F (module doc)."""
    free = int((inst.node_cpu - inst.node_usage()[0]).sum())
    return 0.0 if free <= 0 else remainder_bound_sum(inst) / free


class PatternRelaxation:
    """The Lagrangian relaxation behind `lagrangian_bound` (see its docstring).

    Item classes: the per-node CPU of each single-NUMA VM size (budget weight 1 per departure) and of each
    double-NUMA VM size's half (weight 1/2: a double migration leaves two nodes). `hosted[k, n]` counts
    class-k items on node n (a double VM counts once on each of its nodes).
    """

    def __init__(self, inst: VmInstance):
        self.inst = inst
        self.unit = int(inst.frag_unit)
        self.free = (inst.node_cpu - inst.node_usage()[0]).astype(np.int64)
        self.cap = int(inst.node_cpu.max())
        single = ~inst.vm_double
        classes: list[tuple[int, bool]] = sorted({(int(c), False) for c in inst.vm_cpu[single]}
                                                  | {(int(c) // 2, True) for c in inst.vm_cpu[inst.vm_double]})
        self.sizes = np.array([c for c, _ in classes], np.int64)
        self.weights = np.array([0.5 if d else 1.0 for _, d in classes])
        index = {cls: k for k, cls in enumerate(classes)}
        n = len(inst.node_cpu)
        self.hosted = np.zeros((len(classes), n), np.int64)
        for k, (c, d) in enumerate(classes):
            if d:
                sel = inst.vm_double & (inst.vm_cpu // 2 == c)
                pm = inst.vm_pm[sel]
                np.add.at(self.hosted[k], 2 * pm, 1)
                np.add.at(self.hosted[k], 2 * pm + 1, 1)
            else:
                sel = single & (inst.vm_cpu == c)
                np.add.at(self.hosted[k], 2 * inst.vm_pm[sel] + inst.vm_numa[sel], 1)
        del index

    def evaluate(self, lam: np.ndarray, mu: float) -> tuple[float, np.ndarray, float]:
        """(L(lam, mu), its subgradient in lam, its subgradient in mu). Arrays are (net change, node): one row
        per net change of free CPU in [-cap, cap] (row = change + cap), so a row update is contiguous."""
        n, cap, u = len(self.free), self.cap, self.unit
        width = 2 * cap + 1
        cols = np.arange(n)
        cost = np.full((width, n), np.inf)
        cost[cap] = 0.0
        dep_pick, arr_count = [], []
        for k, c in enumerate(self.sizes):
            c = int(c)
            pick = np.zeros((width, n), np.int64)
            count = np.zeros((width, n), np.int64)
            dep_pick.append(pick)
            arr_count.append(count)
            if c <= 0 or c > cap:
                continue
            # Departures (change +j c, j at most what the node hosts), each costing lam + mu * weight.
            dep_cost = lam[k] + mu * self.weights[k]
            base = cost
            cost = base.copy()
            for j in range(1, int(self.hosted[k].max()) + 1):
                allowed = self.hosted[k] >= j
                cand = base[: width - j * c] + j * dep_cost
                better = (cand < cost[j * c:]) & allowed
                cost[j * c:] = np.where(better, cand, cost[j * c:])
                pick[j * c:][better] = j
            # Arrivals (change -c each, any number: the final range check keeps them within capacity),
            # one row at a time from the high end (an unbounded knapsack).
            for i in range(width - 1, c - 1, -1):
                cand = cost[i] - lam[k]
                better = cand < cost[i - c]
                if better.any():
                    cost[i - c] = np.where(better, cand, cost[i - c])
                    count[i - c] = np.where(better, count[i] + 1, count[i - c])
        final = self.free[None, :] + np.arange(-cap, cap + 1)[:, None]
        ok = (final >= 0) & (final <= self.inst.node_cpu[None, :])
        total = np.where(ok, cost + np.where(ok, final % u, 0), np.inf)
        at = np.argmin(total, axis=0)
        value = float(total[at, cols].sum()) - mu * int(self.inst.mnl)
        self.last_change = at - cap  # each node's net change of free CPU in the relaxed optimum
        net = np.zeros(len(self.sizes))
        departures = 0.0
        for k in range(len(self.sizes) - 1, -1, -1):
            c = int(self.sizes[k])
            a = arr_count[k][at, cols]
            at = at + a * c
            d = dep_pick[k][at, cols]
            at = at - d * c
            net[k] = float(d.sum() - a.sum())
            departures += self.weights[k] * float(d.sum())
        return value, net, departures - int(self.inst.mnl)


def lagrangian_bound(inst: VmInstance, upper: int | None = None, *, max_iter: int = 300, patience: int = 60,
                     deadline: float | None = None) -> tuple[int, dict]:
    """A lower bound on the final sum of remainders from a Lagrangian relaxation of the exact model.

    Every node chooses on its own how many VMs of each class leave it and arrive (final free CPU within its
    capacity, departures at most what it hosts), paying its final remainder; the coupling constraints --
    as many VMs of each class arrive as leave, at most MNL migrations (a double-NUMA migration leaves two
    nodes: weight 1/2 each) -- are priced by multipliers lam (per class) and mu >= 0 (budget). For any lam, mu
    the relaxed minimum L(lam, mu) is a lower bound (weak duality); memory and anti-affinity are dropped,
    which only lowers it. Each node's problem is a knapsack-like dynamic program over its net change of free
    CPU, solved for all nodes at once; (lam, mu) follow subgradient steps (Polyak's, towards `upper`, a known
    solution's sum when given). Since every migration changes the sum by a multiple of u, the bound is
    raised to the next value congruent to R0 mod u. Stops after `max_iter` steps, after `patience` steps
    without raising the (rounded) bound, at `deadline` (time.perf_counter(), a wall-clock limit), or once it
    reaches `upper` (then `upper` is optimal). Without a deadline it is deterministic. Returns (bound on
    the sum, info).
    """
    import time

    u = int(inst.frag_unit)
    relax = PatternRelaxation(inst)
    r0 = int((relax.free % u).sum())
    target = float(r0 if upper is None else upper)
    lam = np.zeros(len(relax.sizes))
    mu = 0.0
    best = -np.inf
    best_change = np.zeros(len(relax.free), np.int64)
    theta, stall, steps = 1.0, 0, 0
    ceiling, since = -(10 ** 12), 0
    while steps < int(max_iter):
        steps += 1
        value, g_lam, g_mu = relax.evaluate(lam, mu)
        if value > best + 1e-9:
            best, stall = value, 0
            best_change = relax.last_change
        else:
            stall += 1
            if stall >= 8:
                theta, stall = theta / 2, 0
        now = congruent_ceiling(best, r0, u)
        ceiling, since = (now, 0) if now > ceiling else (ceiling, since + 1)
        if now >= target or since >= patience or (deadline is not None and time.perf_counter() >= deadline):
            break
        norm = float((g_lam ** 2).sum() + g_mu ** 2)
        if norm == 0:
            break  # the relaxed optimum is feasible for the coupling constraints: L is the optimum
        step = theta * max(target - value, 1.0) / norm
        lam = lam + step * g_lam
        mu = max(0.0, mu + step * g_mu)
    bound = max(r0 % u, congruent_ceiling(best, r0, u)) if np.isfinite(best) else r0 % u
    return int(bound), {"iterations": steps, "lagrangian": float(best), "multipliers": lam.tolist(), "mu": mu,
                        "node_change": best_change}


def congruent_ceiling(value: float, r0: int, u: int) -> int:
    """The smallest integer >= value congruent to r0 modulo u (the final sum always is)."""
    if not np.isfinite(value):
        return -(10 ** 12)
    lo = int(np.ceil(value - 1e-7))
    return lo + ((r0 - lo) % u)
