"""Pieces the VM-rescheduling methods share: remainders, ordering final placements into migrations."""
from __future__ import annotations

import numpy as np

from sysgym.envs.vm_resched.instance import VmInstance
from sysgym.envs.vm_resched.state import ClusterState


def objective_fr(inst: VmInstance, state: ClusterState) -> float:
    return state.fragment_rate()


def order_migrations(inst: VmInstance, final_pm: np.ndarray, final_numa: np.ndarray
                     ) -> tuple[list[tuple[int, int, int]], list[int]]:
    """Turn a final placement into an ordered, replayable list of migrations.

    A final placement may need VM u to leave node n before VM v can arrive there; repeatedly applying
    any pending migration that fits now finds such an order. What is left when nothing fits is a cycle:
    returned as the VMs that could not be ordered (the caller repairs the model and solves again).
    """
    state = ClusterState(inst)
    pending = [v for v in range(inst.num_vms) if not state.is_current(v, int(final_pm[v]), int(final_numa[v]))]
    order: list[tuple[int, int, int]] = []
    progress = True
    while pending and progress:
        progress = False
        rest = []
        for v in pending:
            pm, numa = int(final_pm[v]), int(final_numa[v])
            if state.why_not(v, pm, numa) is None:
                state.move(v, pm, numa)
                order.append((v, pm, max(numa, 0)))
                progress = True
            else:
                rest.append(v)
        pending = rest
    return order, pending


def to_fr(inst: VmInstance, remainder_sum: float) -> float:
    total = int(ClusterState(inst).free_cpu.sum())  # migrations never change total free CPU
    return 0.0 if total <= 0 else float(remainder_sum) / total
