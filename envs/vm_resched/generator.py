"""Seeded generators of fragmented VM-rescheduling instances, calibrated on VMR2L's published data.

Two versions (`sysgym.generators`): specs without a suffix (`vm_resched/medium?seed=0`) name version 0, which
stays reproducible; `generate(preset=...)` gives version 1 (`vm_resched-v1/medium?seed=0`).

Sources of the constants both versions share:
* PM shape: VMR2L dataset files (github.com/zhykoties/VMR2L_eurosys, `reset_vm_pm*.json`, `host_info`):
  `node_cpu` 88 = 2 NUMA x 44 cores, `node_mem_mb` 368776 = 2 x 184388 MB of huge-page memory.
* VM types: VMR2L's `vm_type_index` (ecs.c1.large ... ecs.c1.22xlarge) = 2, 4, 8, 16, 32, 64, 88 cores;
  memory 2048 MB per core, which is what the dataset files imply (a NUMA node full of VMs, 44 cores used,
  shows 94276 of 184388 MB free: 90112 MB = 44 x 2048), and what VMR2L's feature statistics give (below:
  0.0308 x 368776 MB per 0.0631 x 88 cores = 2,045 MB per core). VMs of 64 and 88 cores exceed a 44-core
  node and are double-NUMA.
* Fragmentation: a churn process (arrivals placed best-fit with probability `best_fit_prob`, else
  random-fit; random departures; `churn_rounds` population replacements).
* Time-aware dynamics: VM lifetimes are exponential with `mean_lifetime_s` (default 3600 s) and arrivals
  keep the population stationary. This rate is our assumption (Resource Central reports that many VMs
  live under an hour; no per-cluster churn rate is published for VMR2L's data); it is a parameter.

Version 0 (`generate_v0`) places a fixed number of VMs (`num_vms`) with the mix `VM_MIX`; `best_fit_prob=0.4`
and `churn_rounds=1` were chosen (scan in the closing note of the foundation issue) so the medium preset's
mean initial FR sits near VMR2L's 0.555. Its clusters keep 10-15 % of their CPU free and the start FR varies
from seed to seed (0.52 / 0.59 / 0.67 on medium seeds 0-2), so at VMR2L's scale they are too easy (issue 16).

Version 1 (`generate_v1`) matches VMR2L's medium dataset in what makes the problem hard:
* CPU utilisation 94 %: VMR2L's feature statistics for the medium dataset (`dataset_meta_info['M']` in
  `vm_rescheduler_env.py`, 279 PMs, 2089 VMs) give a mean per-NUMA VM CPU of 0.0631 x 88 = 5.55 cores,
  i.e. 11.1 cores per VM, and 2089 x 11.1 / (279 x 88) = 94.4 % of the cores allocated. (VMR2L uses the same
  numbers as its PM statistics `pm_mean`, where they would read as 12.6 % of each node's CPU and 6.2 % of its
  memory free; the two readings cannot both hold. We follow the VM reading, which the 2 GiB per core of the
  dataset files confirms.) The cluster is filled to `cpu_util` of its cores, not to a VM count: ~2,200 VMs
  on 280 PMs (VMR2L: 2,089, whose larger VMs our churn cannot keep placed at 94 %).
* Memory utilisation follows from 2 GiB per core: ~47 % (VMR2L's statistics under the VM reading: 46 %).
* VM size mix: 88.27 % of VMR2L's VM requests are for 16 or fewer cores (VMR2L project page,
  dingxianzhong.github.io/VMR2Lhomepage); `VM_MIX_V1` keeps version 0's shares within the <= 16 and the
  > 16 cores groups and rescales the groups to 88.27 % / 11.73 % (request mean 11.06 cores). VMR2L does not
  publish the shares per type.
* Start FR 0.555 +- 0.02 on every seed (VMR2L's medium dataset starts at 0.555: arXiv 2505.17359, its FR
  vs. migration-number figure, `readme-figures/fr_migration.png`). At 94 % the churn's mean FR depends
  steeply on the share of best-fit placements (medium, 6-16 runs each: best_fit_prob 0.4 / 0.55 / 0.7 /
  0.85 -> mean FR 0.76 / 0.64 / 0.54 / 0.44; at 93.5 % and 0.4 it is 0.56), so version 1 places 70 % of
  arrivals best-fit; runs still spread +-0.05 around the mean, so an instance is the first of the seed's
  churn runs (attempt k = 0, 1, ...) whose snapshot lies in the band: the process conditioned on VMR2L's
  observed FR.
* Large: VMR2L's large dataset has 1,176 PMs (`dataset_meta_info['L']`); filled the same way that is
  ~9,300 VMs (VMR2L's: 4,546 VMs; its utilisation is not published) and MNL 200, 2-3 % of the VMs as
  VMR2L's README says MNL is typically chosen.
* Tiny and small stay version 0's instances (`generate_v1(preset="small")` returns them, named by their
  version-0 spec): at 94 % a 4-10 PM cluster has 20-50 free cores, so its FR is a coarse, seed-dominated
  number; those presets serve exact-solver checks and quick agent runs, which keep their published figures.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from sysgym.envs.vm_resched.instance import VmInstance
from sysgym.envs.vm_resched.state import ClusterState, fragment_rate
from sysgym.errors import InvalidInstanceError, UnknownNameError
from sysgym.generators import Generator
from sysgym.specs import format_spec

NUMA_CPU = 44  # cores per NUMA node (VMR2L host_info total_cpu)
NUMA_MEM_MIB = 184388  # MB of huge-page memory per NUMA node (VMR2L host_info memory_huge_total_mb)
MEM_PER_CORE_MIB = 2048  # ecs.c1 family, as implied by VMR2L's files (see module docstring)
VM_CORES = (2, 4, 8, 16, 32, 64, 88)  # ecs.c1.large ... ecs.c1.22xlarge
VM_MIX = (0.22, 0.26, 0.22, 0.17, 0.09, 0.035, 0.005)  # version 0; mean 11.4 cores (VMR2L medium: ~11.1)
SMALL_VM_SHARE = 0.8827  # VMR2L project page: 88.27 % of VM requests are for 16 or fewer cores
VM_MIX_V1 = tuple(float(x) for x in np.concatenate([
    np.array(VM_MIX[:4]) / sum(VM_MIX[:4]) * SMALL_VM_SHARE,
    np.array(VM_MIX[4:]) / sum(VM_MIX[4:]) * (1 - SMALL_VM_SHARE)]))  # mean 11.06 cores
DOUBLE_NUMA_MIN_CORES = 64  # larger than one 44-core node
CPU_UTIL = 0.94  # VMR2L medium: 2089 VMs x 11.1 cores / (279 x 88 cores) = 94.4 % (module docstring)
UTIL_BAND = 0.005  # an instance's CPU utilisation lies in [cpu_util, cpu_util + UTIL_BAND]
START_FR = 0.555  # VMR2L medium's initial fragment rate (arXiv 2505.17359)

PRESETS_V0: dict[str, dict[str, Any]] = {
    # Exact solvers prove optimality here (tests).
    "tiny": {"num_pms": 4, "num_vms": 28, "mnl": 3},
    "small": {"num_pms": 10, "num_vms": 75, "mnl": 5},
    # VMR2L's datasets: medium 279-280 PMs / 2089 VMs, large 1176 PMs / 4546 VMs; MNL 50.
    "medium": {"num_pms": 280, "num_vms": 2089, "mnl": 50},
    "large": {"num_pms": 1176, "num_vms": 4546, "mnl": 50},
}
# What `generate(preset=...)` (version 1) makes. `vm_slots` bounds the VM count (the env's VM rows); the
# generator never returns more VMs than that.
PRESETS: dict[str, dict[str, Any]] = {
    "tiny": PRESETS_V0["tiny"],  # version 0's instances (module docstring)
    "small": PRESETS_V0["small"],
    "medium": {"num_pms": 280, "cpu_util": CPU_UTIL, "fr_target": START_FR, "mnl": 50, "vm_slots": 2400},
    # best_fit_prob 0.68: at 0.7 large's process mean is 0.52 (8 runs: 0.68 -> 0.545 +- 0.018), so most runs
    # would miss the band.
    "large": {"num_pms": 1176, "cpu_util": CPU_UTIL, "fr_target": START_FR, "mnl": 200, "vm_slots": 9900,
              "best_fit_prob": 0.68},
}
V0_PRESETS = ("tiny", "small")  # version 1 serves version 0's instances for these


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
        if preset not in PRESETS_V0:
            raise UnknownNameError("vm_resched preset", preset, PRESETS_V0)
        params.update(PRESETS_V0[preset])
    overrides = {"num_pms": num_pms, "num_vms": num_vms, "mnl": mnl}
    params.update({k: v for k, v in overrides.items() if v is not None})
    p = _num_pms(params)
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
    if isinstance(explicit.get("vm_mix"), np.ndarray):
        explicit["vm_mix"] = explicit["vm_mix"].tolist()
    name = format_spec("vm_resched", preset or "custom", seed, explicit)
    return _assemble(state, live, node_cpu, node_mem, mnl_value, frag_unit, name, seed, anti_affinity_groups,
                     anti_affinity_size, {"seed": int(seed), "mean_lifetime_s": float(mean_lifetime_s),
                                          "vm_mix": mix.tolist()})


def _assemble(state, live, node_cpu, node_mem, mnl: int, frag_unit: int, name: str, seed: int, groups: int,
              group_size: int, dynamics: dict[str, Any]) -> VmInstance:
    """The instance of a churn run's live VMs (in creation order), with its anti-affinity groups."""
    idx = np.array(sorted(live), np.int64)
    vm_pm = state.vm_pm[idx]
    vm_group = _anti_affinity_groups(vm_pm, int(groups), int(group_size), seed)
    return VmInstance(node_cpu=node_cpu, node_mem=node_mem, vm_cpu=state.vm_cpu[idx], vm_mem=state.vm_mem[idx],
                      vm_double=state.vm_double[idx], vm_pm=vm_pm, vm_numa=state.vm_numa[idx],
                      mnl=mnl, frag_unit=frag_unit, name=name, vm_group=vm_group, dynamics=dynamics)


def _num_pms(params: dict[str, Any]) -> int:
    if "num_pms" not in params:
        raise TypeError("generate() needs num_pms (or a preset)")
    p = int(params["num_pms"])
    if p <= 0:
        raise InvalidInstanceError(f"num_pms must be positive, got {p}")
    return p


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


def generate_v1(*, seed: int = 0, preset: str | None = None, num_pms: int | None = None,
                num_vms: int | None = None, cpu_util: float | None = None, mnl: int | None = None,
                fr_target: float | None = None, fr_tol: float = 0.02, vm_slots: int | None = None,
                churn_rounds: float = 1.0, best_fit_prob: float = 0.7, numa_cpu: int = NUMA_CPU,
                numa_mem_mib: int = NUMA_MEM_MIB, vm_mix: tuple[float, ...] | list[float] | None = None,
                frag_unit: int = 16, mean_lifetime_s: float = 3600.0, anti_affinity_groups: int = 0,
                anti_affinity_size: int = 3, max_attempts: int = 200) -> VmInstance:
    """A fragmented cluster at VMR2L's utilisation and start FR (presets medium, large; see the module doc).

    The cluster is filled to `cpu_util` of its cores (default 0.94) with VMs of the mix `vm_mix` (default
    `VM_MIX_V1`), or to exactly `num_vms` VMs when that is given instead. With `fr_target`, the instance is the
    first churn run of the seed whose fragment rate lies within `fr_tol` of it (and whose VM count is at most
    `vm_slots`); `max_attempts` runs without one raise InvalidInstanceError. `tiny` and `small` return version
    0's instances. Other parameters as in version 0.
    """
    explicit = {k: v for k, v in locals().items() if k in _DEFAULTS_V1 and k not in ("seed", "preset")
                and v is not None and v != _DEFAULTS_V1[k]}
    if preset in V0_PRESETS:
        v1_only = sorted(set(explicit) - set(_DEFAULTS))
        if v1_only:
            raise InvalidInstanceError(f"preset {preset!r} is version 0's (generate_v1 docstring); "
                                       f"{', '.join(v1_only)} need a version-1 preset or custom parameters")
        return generate_v0(seed=seed, preset=preset, **{k: v for k, v in explicit.items() if k in _DEFAULTS})
    params: dict[str, Any] = {}
    if preset is not None:
        if preset not in PRESETS:
            raise UnknownNameError("vm_resched preset", preset, PRESETS)
        params.update(PRESETS[preset])
    if num_vms is not None:
        if cpu_util is not None:
            raise InvalidInstanceError("give num_vms (fill to a VM count) or cpu_util (fill to a utilisation), "
                                       "not both")
        params.pop("cpu_util", None)
    overrides = {"num_pms": num_pms, "num_vms": num_vms, "cpu_util": cpu_util, "mnl": mnl, "fr_target": fr_target,
                 "vm_slots": vm_slots}
    params.update({k: v for k, v in overrides.items() if v is not None})
    p = _num_pms(params)
    count = params.get("num_vms")
    util = None if count is not None else float(params.get("cpu_util", CPU_UTIL))
    if util is not None and not 0 < util < 1:
        raise InvalidInstanceError(f"cpu_util must lie in (0, 1), got {util}")
    target, slots = params.get("fr_target"), params.get("vm_slots")
    if "best_fit_prob" not in explicit:
        best_fit_prob = float(params.get("best_fit_prob", best_fit_prob))
    mix = np.asarray(VM_MIX_V1 if vm_mix is None else vm_mix, float)
    if len(mix) != len(VM_CORES) or (mix < 0).any() or mix.sum() <= 0:
        raise InvalidInstanceError(f"vm_mix needs {len(VM_CORES)} non-negative weights for cores {VM_CORES}")
    mix = mix / mix.sum()
    cdf = mix.cumsum()
    cdf /= cdf[-1]
    node_cpu = np.full(2 * p, numa_cpu, np.int64)
    node_mem = np.full(2 * p, numa_mem_mib, np.int64)
    closest = None
    for attempt in range(int(max_attempts)):
        rng = np.random.default_rng([int(seed), 0x564D52, 1, attempt])  # v1's own streams, one per attempt
        state, live, used = _churn_v1(rng, node_cpu, node_mem, cdf, best_fit_prob, churn_rounds, util, count)
        fr = fragment_rate(state.free_cpu, frag_unit)
        total = int(node_cpu.sum())
        fits = (slots is None or len(live) <= slots) and (util is None or util * total <= used <= (
            util + UTIL_BAND) * total) and (count is None or len(live) == count)
        if fits and (target is None or abs(fr - target) <= fr_tol):
            break
        if fits and (closest is None or abs(fr - target) < abs(closest - target)):
            closest = fr
    else:
        raise InvalidInstanceError(
            f"no churn run of seed {seed} in {max_attempts} attempts reached FR {target} +- {fr_tol}"
            + (f" (closest {closest:.4f})" if closest is not None else " within the utilisation and VM slots")
            + "; widen fr_tol or change best_fit_prob")
    mnl_value = int(params.get("mnl", max(1, round(0.024 * len(live)))))
    if isinstance(explicit.get("vm_mix"), np.ndarray):
        explicit["vm_mix"] = explicit["vm_mix"].tolist()
    name = format_spec("vm_resched", preset or "custom", seed, explicit, version=1)
    return _assemble(state, live, node_cpu, node_mem, mnl_value, frag_unit, name, seed, anti_affinity_groups,
                     anti_affinity_size, {"seed": int(seed), "mean_lifetime_s": float(mean_lifetime_s),
                                          "vm_mix": mix.tolist(), "best_fit_prob": float(best_fit_prob)})


def _churn_v1(rng: np.random.Generator, node_cpu: np.ndarray, node_mem: np.ndarray, cdf: np.ndarray,
              best_fit_prob: float, churn_rounds: float, util: float | None, count: int | None):
    """One churn run of version 1: fill to `util` of the cores (an arrival that would pass
    `util + UTIL_BAND` is turned away, as a cluster at its allocation target does) or to `count` VMs, then
    replace the population `churn_rounds` times, refilling after each departure."""
    total = int(node_cpu.sum())
    goal = None if util is None else int(np.ceil(util * total))
    ceiling = total if util is None else int(np.floor((util + UTIL_BAND) * total))
    estimate = count if count is not None else goal // 8
    state = _ChurnState(node_cpu, node_mem, capacity=int(estimate * (2 + churn_rounds)) + 16)
    live: list[int] = []
    used = 0

    def arrive() -> bool:
        nonlocal used
        cores = VM_CORES[int(cdf.searchsorted(rng.random(), side="right"))]
        if used + cores > ceiling or cores > 2 * int(node_cpu.max()):
            return False
        double = cores >= DOUBLE_NUMA_MIN_CORES or cores > int(node_cpu.max())
        mem = cores * MEM_PER_CORE_MIB
        spot = place_new_vm(state, rng, cores, mem, double, best_fit_prob)
        if spot is None:
            return False
        live.append(state.add(cores, mem, double, *spot))
        used += cores
        return True

    def short() -> bool:
        return used < goal if goal is not None else len(live) < count

    failures = 0
    while short() and failures < 50 * max(estimate, 1) + 100:
        failures += not arrive()
    for _ in range(int(churn_rounds * len(live))):
        if not live:
            break
        v = live.pop(int(rng.integers(len(live))))
        state.remove(v)
        used -= int(state.vm_cpu[v])
        tries = 0
        while short() and tries < 500:
            tries += 1
            arrive()
    return state, live, used


_DEFAULTS_V1 = {k: p.default for k, p in __import__("inspect").signature(generate_v1).parameters.items()}


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


# The family's generator: v0 is what every spec without a version suffix names; new instances are v1.
GENERATOR = Generator("vm_resched", presets=PRESETS, versions={0: generate_v0, 1: generate_v1},
                      default_preset="small")
generate = GENERATOR
