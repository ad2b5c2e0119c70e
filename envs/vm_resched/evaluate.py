"""The VM-rescheduling evaluator: the only scorer of every method (DESIGN.md contract 2).

A solution is an ordered list of migrations `(vm, pm, numa)` (numa is ignored for double-NUMA VMs).
They are replayed in order on a fresh state; each must fit when it happens, and at most MNL of them may
move a VM (moving a VM back to where it is is a no-op and is not counted; a NUMA change on the same PM
counts as one migration).

Time-aware mode (`wall_time_s=...`): while a method thinks, VMs arrive and leave (the instance's
churn process, identical for every method). The cluster is advanced by that interval, migrations whose
VM left or whose destination no longer fits are skipped, and the fragment rate actually reached is
reported beside the static one (VMR2L's point that decision time changes the result).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from sysgym.envs.vm_resched.generator import (
    DOUBLE_NUMA_MIN_CORES,
    MEM_PER_CORE_MIB,
    VM_CORES,
    arrival_events,
    place_new_vm,
)
from sysgym.envs.vm_resched.instance import VmInstance
from sysgym.envs.vm_resched.state import ClusterState
from sysgym.errors import FamilyMismatchError, InfeasibleSolutionError
from sysgym.solution import Solution

Migration = tuple[int, int, int]


def as_migrations(solution: Solution | Iterable[Sequence[int]] | None) -> list[Migration]:
    decisions = solution.decisions if isinstance(solution, Solution) else solution
    out = []
    for i, m in enumerate(decisions or []):
        try:
            v, pm, numa = (int(x) for x in m)
        except (TypeError, ValueError):
            raise InfeasibleSolutionError("format", f"migration {i} is {m!r}, expected (vm, pm, numa)") from None
        out.append((v, pm, numa))
    return out


def replay(inst: VmInstance, migrations: list[Migration], state: ClusterState | None = None,
           skip_invalid: bool = False) -> tuple[ClusterState, int, int]:
    """Apply migrations in order; returns (state, migrations made, migrations skipped)."""
    state = ClusterState(inst) if state is None else state
    made = skipped = 0
    for i, (v, pm, numa) in enumerate(migrations):
        if not 0 <= v < state.num_vms:
            if skip_invalid:
                skipped += 1
                continue
            raise InfeasibleSolutionError("VM index",
                                          f"migration {i} names VM {v}; the instance has {inst.num_vms} VMs")
        if state.alive[v] and state.is_current(v, pm, numa):
            continue  # a no-op uses no migration
        if made >= inst.mnl:
            if skip_invalid:
                skipped += 1
                continue
            raise InfeasibleSolutionError("migration number limit",
                                          f"migration {i} would be migration {made + 1}; MNL is {inst.mnl}")
        reason = state.why_not(v, pm, numa)
        if reason is not None:
            if skip_invalid:
                skipped += 1
                continue
            raise InfeasibleSolutionError(reason.split(":")[0],
                                          f"migration {i} (VM {v} -> PM {pm} NUMA {numa}): {reason}")
        state.move(v, pm, numa)
        made += 1
    return state, made, skipped


def advance(inst: VmInstance, state: ClusterState, horizon_s: float) -> int:
    """Apply the instance's churn during [0, horizon_s]; returns the number of events applied."""
    mix = np.asarray(inst.dynamics.get("vm_mix", []), float) if inst.dynamics else np.array([])
    if len(mix) != len(VM_CORES):
        mix = None
    best_fit = float((inst.dynamics or {}).get("best_fit_prob", 0.4))  # version 0 instances: 0.4
    applied = 0
    for _t, kind, draw in arrival_events(inst, horizon_s):
        rng = np.random.default_rng(draw)
        if kind == "depart":
            alive = np.flatnonzero(state.alive)
            if len(alive):
                state.remove(int(alive[rng.integers(len(alive))]))
                applied += 1
            continue
        if mix is None:
            alive = np.flatnonzero(state.alive)  # resample the instance's own VM sizes
            cores = int(state.vm_cpu[alive[rng.integers(len(alive))]]) if len(alive) else 2
        else:
            cores = int(rng.choice(VM_CORES, p=mix / mix.sum()))
        double = cores >= DOUBLE_NUMA_MIN_CORES or cores > int(inst.node_cpu.max())
        mem = cores * MEM_PER_CORE_MIB
        spot = place_new_vm(state, rng, cores, mem, double, best_fit)
        if spot is not None:
            state.add(cores, mem, double, *spot)
            applied += 1
    return applied


def evaluate(inst: VmInstance, solution: Solution | Iterable[Sequence[int]] | None, *,
             wall_time_s: float | None = None, raise_on_infeasible: bool = True) -> dict[str, Any]:
    """Metrics of a solution: `fragment_rate` (after), `fragment_rate_before`, `num_migrations`,
    `feasible`; with `wall_time_s`, also the time-aware `fragment_rate_timed` and friends."""
    if not isinstance(inst, VmInstance):
        raise FamilyMismatchError("vm_resched", inst, "vm_resched.evaluate")
    migrations = as_migrations(solution)
    before = ClusterState(inst).fragment_rate()
    metrics: dict[str, Any] = {"fragment_rate_before": before}
    try:
        state, made, _ = replay(inst, migrations)
    except InfeasibleSolutionError as exc:
        if raise_on_infeasible:
            raise
        return {**metrics, "feasible": False, "violation": str(exc), "fragment_rate": None, "num_migrations": None}
    after = state.fragment_rate()
    metrics.update(fragment_rate=after, num_migrations=made, feasible=True, fr_reduction=before - after,
                   free_cpu_total=int(state.free_cpu.sum()))
    if wall_time_s is not None:
        metrics.update(evaluate_timed(inst, migrations, wall_time_s))
    return metrics


def evaluate_timed(inst: VmInstance, migrations: list[Migration], wall_time_s: float) -> dict[str, Any]:
    base = ClusterState(inst)
    events = advance(inst, base, wall_time_s)
    idle_fr = base.fragment_rate()
    state = ClusterState(inst)
    advance(inst, state, wall_time_s)
    state, made, skipped = replay(inst, migrations, state=state, skip_invalid=True)
    return {"decision_time_s": float(wall_time_s), "churn_events": events,
            "fragment_rate_before_timed": idle_fr, "fragment_rate_timed": state.fragment_rate(),
            "num_migrations_timed": made, "skipped_migrations": skipped}
