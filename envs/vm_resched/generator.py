"""Seeded generator of fragmented VM-rescheduling instances, calibrated on VMR2L's published data.

Sources of every constant:
* PM shape: VMR2L dataset files (github.com/zhykoties/VMR2L_eurosys, `reset_vm_pm*.json`, `host_info`):
  `node_cpu` 88 = 2 NUMA x 44 cores, `node_mem_mb` 368776 = 2 x 184388 MB of huge-page memory.
* VM types: VMR2L's `vm_type_index` (ecs.c1.large ... ecs.c1.22xlarge) = 2, 4, 8, 16, 32, 64, 88 cores;
  memory 2048 MB per core, which is what the dataset files imply (a NUMA node full of VMs, 44 cores used,
  shows 94276 of 184388 MB free: 90112 MB = 44 x 2048). VMs of 64 and 88 cores exceed a 44-core node and
  are double-NUMA.
* VM-size mix and utilisation: VMR2L's feature statistics for the medium dataset (`dataset_meta_info['M']`,
  279 PMs, 2089 VMs): mean per-NUMA VM CPU 0.0631 x 88 = 5.55 cores, i.e. about 11.1 cores per VM, which
  puts 2089 VMs at about 94 % of 279 x 88 cores. The mix below has mean 11.4 cores; small VMs dominate as in
  the Azure VM traces (Cortez et al., SOSP'17, Resource Central: most VMs have 1-4 cores).
* Fragmentation: a churn process (arrivals placed best-fit with probability `best_fit_prob`, else
  random-fit; random departures; `churn_rounds` population replacements). `best_fit_prob=0.4` and
  `churn_rounds=1` were chosen (scan in the closing note of the foundation issue) so the medium preset's
  initial fragment rate sits at VMR2L's published value (about 0.555, arXiv 2505.17359) with about 88 %
  of cores allocated. A test checks the FR range.
* Time-aware dynamics: VM lifetimes are exponential with `mean_lifetime_s` (default 3600 s) and arrivals
  keep the population stationary. This rate is our assumption (Resource Central reports that many VMs
  live under an hour; no per-cluster churn rate is published for VMR2L's data); it is a parameter.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from sysgym.envs.vm_resched.instance import VmInstance
from sysgym.envs.vm_resched.state import ClusterState
from sysgym.errors import InvalidInstanceError, UnknownNameError
from sysgym.generators import Generator
from sysgym.specs import format_spec

NUMA_CPU = 44  # cores per NUMA node (VMR2L host_info total_cpu)
NUMA_MEM_MIB = 184388  # MB of huge-page memory per NUMA node (VMR2L host_info memory_huge_total_mb)
MEM_PER_CORE_MIB = 2048  # ecs.c1 family, as implied by VMR2L's files (see module docstring)
VM_CORES = (2, 4, 8, 16, 32, 64, 88)  # ecs.c1.large ... ecs.c1.22xlarge
VM_MIX = (0.22, 0.26, 0.22, 0.17, 0.09, 0.035, 0.005)  # mean 11.4 cores (VMR2L medium: ~11.1)
DOUBLE_NUMA_MIN_CORES = 64  # larger than one 44-core node

PRESETS: dict[str, dict[str, Any]] = {
    # Exact solvers prove optimality here (tests).
    "tiny": {"num_pms": 4, "num_vms": 28, "mnl": 3},
    "small": {"num_pms": 10, "num_vms": 75, "mnl": 5},
    # VMR2L's datasets: medium 279-280 PMs / 2089 VMs, large 1176 PMs / 4546 VMs; MNL 50.
    "medium": {"num_pms": 280, "num_vms": 2089, "mnl": 50},
    "large": {"num_pms": 1176, "num_vms": 4546, "mnl": 50},
}


def generate_v0(*, seed: int = 0, preset: str | None = None, num_pms: int | None = None, num_vms: int | None = None,
             mnl: int | None = None, churn_rounds: float = 1.0, best_fit_prob: float = 0.4, numa_cpu: int = NUMA_CPU,
             numa_mem_mib: int = NUMA_MEM_MIB, vm_mix: tuple[float, ...] | list[float] | None = None,
             frag_unit: int = 16, mean_lifetime_s: float = 3600.0, anti_affinity_groups: int = 0,
             anti_affinity_size: int = 3) -> VmInstance:
    """A fragmented but feasible start state.

    `preset` fills defaults (`tiny`, `small`, `medium`, `large`); explicit arguments override them.
    `churn_rounds` is how many times the population is replaced by departures and arrivals before the
    snapshot; `best_fit_prob` is the share of arrivals placed best-fit (less of it, more fragmentation).
    `anti_affinity_groups` groups of `anti_affinity_size` VMs (replicas) must stay on distinct PMs.
    """
    explicit = {k: v for k, v in locals().items() if k in _DEFAULTS and k != "seed" and k != "preset"
                and v is not None and v != _DEFAULTS[k]}
    params: dict[str, Any] = {}
    if preset is not None:
        if preset not in PRESETS:
            raise UnknownNameError("vm_resched preset", preset, PRESETS)
        params.update(PRESETS[preset])
    overrides = {"num_pms": num_pms, "num_vms": num_vms, "mnl": mnl}
    params.update({k: v for k, v in overrides.items() if v is not None})
    if "num_pms" not in params:
        raise TypeError("generate() needs num_pms (or a preset)")
    p = int(params["num_pms"])
    if p <= 0:
        raise InvalidInstanceError(f"num_pms must be positive, got {p}")
    v_target = int(params.get("num_vms", round(p * 2089 / 280)))
    mnl_value = int(params.get("mnl", max(1, round(0.025 * v_target))))
    mix = np.asarray(VM_MIX if vm_mix is None else vm_mix, float)
    if len(mix) != len(VM_CORES) or (mix < 0).any() or mix.sum() <= 0:
        raise InvalidInstanceError(f"vm_mix needs {len(VM_CORES)} non-negative weights for cores {VM_CORES}")
    mix = mix / mix.sum()
    rng = np.random.default_rng([int(seed), 0x564D52])  # "VMR": keeps this stream apart from others

    node_cpu = np.full(2 * p, numa_cpu, np.int64)
    node_mem = np.full(2 * p, numa_mem_mib, np.int64)
    state = _ChurnState(node_cpu, node_mem, capacity=int(v_target * (2 + churn_rounds)) + 16)
    live: list[int] = []
    # rng.choice(VM_CORES, p=mix) draws one rng.random() and searches the CDF; doing that directly gives
    # the same stream (the same instances) without choice()'s per-call checks (env resets generate often).
    cdf = mix.cumsum()
    cdf /= cdf[-1]

    def arrive() -> bool:
        cores = VM_CORES[int(cdf.searchsorted(rng.random(), side="right"))]
        if cores > 2 * numa_cpu:
            return False
        double = cores >= DOUBLE_NUMA_MIN_CORES or cores > numa_cpu
        mem = cores * MEM_PER_CORE_MIB
        spot = place_new_vm(state, rng, cores, mem, double, best_fit_prob)
        if spot is None:
            return False
        live.append(state.add(cores, mem, double, *spot))
        return True

    failures = 0
    while len(live) < v_target and failures < 50 * v_target + 100:
        failures += not arrive()
    for _ in range(int(churn_rounds * len(live))):
        if not live:
            break
        state.remove(live.pop(int(rng.integers(len(live)))))
        tries = 0
        while len(live) < v_target and tries < 50:
            tries += 1
            arrive()
    idx = np.array(sorted(live), np.int64)
    if isinstance(explicit.get("vm_mix"), np.ndarray):
        explicit["vm_mix"] = explicit["vm_mix"].tolist()
    name = format_spec("vm_resched", preset or "custom", seed, explicit)
    vm_pm = state.vm_pm[idx]
    groups = _anti_affinity_groups(vm_pm, int(anti_affinity_groups), int(anti_affinity_size), seed)
    return VmInstance(node_cpu=node_cpu, node_mem=node_mem, vm_cpu=state.vm_cpu[idx], vm_mem=state.vm_mem[idx],
                      vm_double=state.vm_double[idx], vm_pm=vm_pm, vm_numa=state.vm_numa[idx],
                      mnl=mnl_value, frag_unit=frag_unit, name=name, vm_group=groups,
                      dynamics={"seed": int(seed), "mean_lifetime_s": float(mean_lifetime_s),
                                "vm_mix": mix.tolist()})


class _ChurnState:
    """The generator's cluster: `ClusterState`'s add/remove/feasible_nodes on preallocated arrays (the
    churn adds hundreds of VMs per instance; growing arrays one VM at a time dominated env resets)."""

    def __init__(self, node_cpu: np.ndarray, node_mem: np.ndarray, capacity: int):
        self.free_cpu, self.free_mem = node_cpu.copy(), node_mem.copy()
        self.vm_cpu = np.zeros(capacity, np.int64)
        self.vm_mem = np.zeros(capacity, np.int64)
        self.vm_double = np.zeros(capacity, bool)
        self.vm_pm = np.zeros(capacity, np.int64)
        self.vm_numa = np.zeros(capacity, np.int64)
        self.n = 0

    def _nodes(self, v: int) -> tuple[int, ...]:
        pm = int(self.vm_pm[v])
        return (2 * pm, 2 * pm + 1) if self.vm_double[v] else (2 * pm + int(self.vm_numa[v]),)

    def add(self, cpu: int, mem: int, double: bool, pm: int, numa: int) -> int:
        v = self.n
        if v == len(self.vm_cpu):
            for name in ("vm_cpu", "vm_mem", "vm_double", "vm_pm", "vm_numa"):
                arr = getattr(self, name)
                setattr(self, name, np.concatenate([arr, np.zeros_like(arr)]))
        self.vm_cpu[v], self.vm_mem[v], self.vm_double[v] = cpu, mem, double
        self.vm_pm[v], self.vm_numa[v] = pm, -1 if double else numa
        self.n += 1
        per = 2 if double else 1
        for node in self._nodes(v):
            self.free_cpu[node] -= cpu // per
            self.free_mem[node] -= mem // per
        return v

    def remove(self, v: int) -> None:
        per = 2 if self.vm_double[v] else 1
        for node in self._nodes(v):
            self.free_cpu[node] += int(self.vm_cpu[v]) // per
            self.free_mem[node] += int(self.vm_mem[v]) // per

    feasible_nodes = ClusterState.feasible_nodes


def _anti_affinity_groups(vm_pm: np.ndarray, n_groups: int, size: int, seed: int) -> np.ndarray:
    """Groups of `size` VMs on distinct PMs (a service's replicas); -1 for ungrouped VMs."""
    groups = np.full(len(vm_pm), -1, np.int64)
    if n_groups <= 0:
        return groups
    if size < 2:
        raise InvalidInstanceError(f"anti_affinity_size must be >= 2, got {size}")
    rng = np.random.default_rng([int(seed), 0x414646])  # "AFF": its own stream, other draws unchanged
    order = rng.permutation(len(vm_pm))
    g = 0
    members: list[int] = []
    for v in order:
        if g >= n_groups:
            break
        if groups[v] >= 0 or any(vm_pm[m] == vm_pm[v] for m in members):
            continue
        members.append(int(v))
        if len(members) == size:
            groups[members] = g
            g, members = g + 1, []
    if g < n_groups:
        raise InvalidInstanceError(f"cannot form {n_groups} anti-affinity groups of {size} VMs on distinct PMs")
    return groups


_DEFAULTS = {k: p.default for k, p in __import__("inspect").signature(generate_v0).parameters.items()}


def place_new_vm(state: ClusterState, rng: np.random.Generator, cores: int, mem: int, double: bool,
                 best_fit_prob: float = 0.4) -> tuple[int, int] | None:
    """The arrival scheduler: best fit (fewest free cores left) with probability `best_fit_prob`, else a
    random feasible node (spreading). The mix is the knob that sets how fragmented the cluster gets."""
    cand = state.feasible_nodes(cores, mem, double)
    if len(cand) == 0:
        return None
    if rng.random() < best_fit_prob:
        free = state.free_cpu.reshape(-1, 2).min(axis=1)[cand] if double else state.free_cpu[cand]
        cand = cand[free == free.min()]
    pick = int(cand[rng.integers(len(cand))])
    return (pick, -1) if double else (pick // 2, pick % 2)


def arrival_events(inst: VmInstance, horizon_s: float) -> list[tuple[float, str, int]]:
    """The churn after t=0 for the time-aware evaluator, as (time, 'arrive'|'depart', draw) events.

    The stream depends only on the instance (common random numbers): every method sees the same
    arrivals and departures, and a longer horizon extends a shorter one.
    """
    dyn = inst.dynamics or {}
    lifetime = float(dyn.get("mean_lifetime_s", 3600.0))
    rate = max(inst.num_vms, 1) / lifetime  # stationary population: arrivals = departures
    rng = np.random.default_rng([int(dyn.get("seed", 0)), 0x44594E])  # "DYN"
    events, t = [], 0.0
    while True:
        t += float(rng.exponential(1.0 / (2 * rate)))  # superposed arrival + departure processes
        if t > horizon_s:
            return events
        events.append((t, "arrive" if rng.random() < 0.5 else "depart", int(rng.integers(2**31))))


# The family's generator: v0 is what every spec without a version suffix names.
GENERATOR = Generator("vm_resched", presets=PRESETS, versions={0: generate_v0}, default_preset="small")
generate = GENERATOR
