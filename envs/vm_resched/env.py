"""`sysgym/VmResched-v0`: one migration per step, VMR2L's action encoding flattened.

Action: `a = vm * (2 * num_pms) + 2 * pm + numa` (Discrete(max_vms * 2 * num_pms)); the NUMA bit is
VMR2L's "destination PM x 2". A double-NUMA VM takes both nodes of its PM, so only its even (numa 0)
entries are valid. Choosing the VM's own place is a valid no-op that uses a step; an episode is exactly
MNL steps. `action_masks()` (for sb3-contrib's MaskablePPO) marks where the VM fits (CPU and memory per
NUMA node; no other VM of its anti-affinity group on the destination PM) and is updated incrementally:
after a migration only the columns of the two PMs involved and the moved VM's row are recomputed.

Observation (Dict, all in [0, 1]):
* `pm` (num_pms, 8): per NUMA node 0/1: free CPU / capacity, free memory / capacity,
  (free CPU mod 16) / 16, (free CPU mod 16) / free CPU (0 when nothing is free) -- ordered
  [cpu0, cpu1, mem0, mem1, mod0, mod1, frac0, frac1]. VMR2L uses 8 such features per PM.
* `vm` (max_vms, 14): demand per node (CPU 0/1, memory 0/1, normalised by node capacity), demand CPU
  mod 16 / 16 per node, double-NUMA flag, present flag (0 for padding rows), then the host PM's
  first six `pm` features. VMR2L uses 14 per VM.
* `progress` (1,): steps taken / MNL.

`observation="pairs"` (for learned policies on small instances; off by default because it grows as
VMs x PMs) adds what a pointer policy otherwise has to learn as modular arithmetic:
* `pm` gains 6 columns: per NUMA node, how many single-NUMA VMs it hosts whose size mod 16 is 2, 4 and 8
  (the sizes that change a remainder), / 8, capped at 1 -- so a node can see what it could send away.
* `pair` (max_vms, 2 * num_pms, 5), laid out like the flat action: for moving the VM to that destination,
  the destination's remainder after the move / 16, the change of the destination's remainder / 16, the
  change of the source's remainder / 16, their sum (the move's exact effect on the objective's
  numerator) and a 1 on the VM's own place (the no-op). Double-NUMA VMs sum over both nodes. Zero on padding.

Reward: `score` (default) is VMR2L's per-PM reward: the sum of (free CPU mod 16) / 32 over the NUMA
nodes of the source and destination PMs, before minus after, divided by 4. `fr` is the drop in the
global fragment rate. `info["fragment_rate"]` always reports the global fragment rate.

Invalid actions (the kit's vocabulary, `sysgym.env`): `invalid_action="penalise"` (default) makes the
step a no-op with reward -1 and `info["invalid_action"]` naming the VM, the destination and the violated
constraint; `"raise"` raises `InvalidActionError` with that message, leaving the state untouched.

`decisions()` is the ordered list of migrations `(vm, pm, numa)` that `vm_resched.evaluate` replays.

`action_mode="two_stage"` (VMR2L's decision; `two_stage.py`): each migration takes two env steps, first the
VM (action = VM index), then its destination node (action = `2 * pm + numa`, the VM's own place is the
no-op); Discrete(max(max_vms, 2 * num_pms)), `action_masks()` is the current stage's mask (VMs with a
destination other than their own place; the chosen VM's feasible destinations), padded to that size. No
step builds the VMs x destinations table, so a medium or large instance costs shapes x nodes per step. The
observation is per entity, so one size-agnostic policy (`sysgym.agents.vm_two_stage`) reads any size:
`vm` (max_vms, 17): the 14 VMR2L features plus the remainder change on its source when it leaves, the best
move's total remainder change and a has-a-move flag (/ 16); `pm` (num_pms, 8); `dest` (2 * num_pms, 6):
the chosen VM's destinations (remainder after, its change, the source's change, their sum, no-op flag,
feasible; zeros in the VM stage); `stage` (0 or 1), `chosen` (the VM, -1 in the VM stage), `progress`.
Stage 0 steps give reward 0; an episode is 2 x MNL steps; an invalid action uses the migration's slot.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from sysgym.env import SysgymEnv
from sysgym.envs.vm_resched.generator import PRESETS
from sysgym.envs.vm_resched.instance import VmInstance
from sysgym.envs.vm_resched.state import ClusterState
from sysgym.envs.vm_resched.two_stage import DEST_FEATURES, VM_EXTRA_FEATURES, dest_features, vm_stage
from sysgym.errors import InvalidArgumentError, UnknownNameError

PM_FEATURES = 8
PM_HOSTED_FEATURES = 6  # observation="pairs": hosted VMs of size mod 16 in (2, 4, 8), per NUMA node
HOSTED_SIZES = (2, 4, 8)
VM_FEATURES = 14
PAIR_FEATURES = 5
OBSERVATIONS = ("vmr2l", "pairs")
ACTION_MODES = ("flat", "two_stage")


class VmReschedEnv(SysgymEnv):
    family = "vm_resched"

    def __init__(self, instance: VmInstance | None = None, preset: str = "small", num_pms: int | None = None,
                 num_vms: int | None = None, mnl: int | None = None, max_vms: int | None = None,
                 reward: str = "score", invalid_action: str = "penalise", generator_params: dict | None = None,
                 observation: str = "vmr2l", action_mode: str = "flat", render_mode: str | None = None):
        if action_mode not in ACTION_MODES:
            raise UnknownNameError("VmResched action_mode", action_mode, ACTION_MODES)
        if action_mode == "two_stage" and observation != "vmr2l":
            raise InvalidArgumentError("action_mode='two_stage' has its own observation; leave observation='vmr2l'")
        if observation not in OBSERVATIONS:
            raise UnknownNameError("VmResched observation", observation, OBSERVATIONS)
        if reward not in ("score", "fr"):
            raise UnknownNameError("VmResched reward", reward, ("score", "fr"))
        shape = {k: v for k, v in {"num_pms": num_pms, "num_vms": num_vms, "mnl": mnl}.items() if v is not None}
        super().__init__(instance=instance, preset=None if instance is not None else preset,
                         generator_params={**(generator_params or {}), **shape},
                         invalid_action=invalid_action, render_mode=render_mode)
        if instance is None:
            dims = {**PRESETS[preset], **self.gen_params}
            self.num_pms, self.mnl = int(dims["num_pms"]), int(dims["mnl"])
            # Version-1 presets fill to a utilisation; `vm_slots` bounds their VM count (the generator keeps it).
            default_vms = int(dims["num_vms"]) if "num_vms" in dims else int(dims["vm_slots"])
        else:
            self.num_pms, default_vms = instance.num_pms, instance.num_vms
            self.mnl = instance.mnl if mnl is None else int(mnl)
        self.max_vms = int(max_vms or default_vms)
        self.reward_mode = reward
        self.observation_kind = observation
        self.pairs = observation == "pairs"
        self.n_dest = 2 * self.num_pms
        self.action_space = spaces.Discrete(self.max_vms * self.n_dest)
        pm_cols = PM_FEATURES + (PM_HOSTED_FEATURES if self.pairs else 0)
        obs_spaces = {
            "pm": spaces.Box(0.0, 1.0, (self.num_pms, pm_cols), np.float32),
            "vm": spaces.Box(0.0, 1.0, (self.max_vms, VM_FEATURES), np.float32),
            "progress": spaces.Box(0.0, 1.0, (1,), np.float32),
        }
        if self.pairs:
            obs_spaces["pair"] = spaces.Box(-4.0, 4.0, (self.max_vms, self.n_dest, PAIR_FEATURES), np.float32)
        self.two_stage = action_mode == "two_stage"
        self.action_mode = action_mode
        if self.two_stage:
            self.action_space = spaces.Discrete(max(self.max_vms, self.n_dest))
            obs_spaces["vm"] = spaces.Box(-4.0, 4.0, (self.max_vms, VM_FEATURES + VM_EXTRA_FEATURES), np.float32)
            obs_spaces["dest"] = spaces.Box(-4.0, 4.0, (self.n_dest, DEST_FEATURES), np.float32)
            obs_spaces["stage"] = spaces.Box(0.0, 1.0, (1,), np.float32)
            obs_spaces["chosen"] = spaces.Box(-1.0, float(self.max_vms), (1,), np.float32)
        self.observation_space = spaces.Dict(obs_spaces)
        self.state: ClusterState | None = None

    # -- episode -----------------------------------------------------------------------------------
    def start(self, inst: VmInstance, options: dict[str, Any]):
        if inst.num_pms != self.num_pms or inst.num_vms > self.max_vms:
            raise InvalidArgumentError(f"instance {inst.name} has {inst.num_pms} PMs / {inst.num_vms} VMs; this env "
                                       f"is sized for {self.num_pms} PMs / at most {self.max_vms} VMs")
        self.state = ClusterState(inst)
        self.steps, self.migrations = 0, 0
        self.history: list[tuple[int, int, int]] = []
        self._init_static()
        if self.two_stage:
            self.chosen = -1
            self._update_pm_features()
            self._stage0()
            return self._obs(), self._info()
        self._mask = np.zeros((self.max_vms, self.n_dest), bool)
        for p in range(self.num_pms):
            self._update_columns(p)
        self._update_pm_features()
        return self._obs(), self._info()

    def decisions(self) -> list[tuple[int, int, int]]:
        return [tuple(int(x) for x in m) for m in self.history]

    def layout_kwargs(self) -> dict[str, Any]:
        return {"max_vms": int(self.max_vms)}

    def _stage0(self) -> None:
        """VM stage: which VMs can move, and the per-VM move features (two_stage.vm_stage)."""
        n = self.state.num_vms
        has, best, src = vm_stage(self.state)
        if not has.any():
            has[:] = True  # nothing can move: any VM's own place (the no-op) is what is left
        self._ts_mask = np.zeros(self.action_space.n, bool)
        self._ts_mask[:n] = has
        self._vm_extra = np.zeros((self.max_vms, VM_EXTRA_FEATURES), np.float32)
        u = self.state.unit
        self._vm_extra[:n] = np.stack([src / u, best / u, has], 1)
        self._dest = np.zeros((self.n_dest, DEST_FEATURES), np.float32)

    def _step_two_stage(self, a: int):
        st = self.state
        if self.chosen < 0:  # VM stage
            if not self._ts_mask[a]:
                reason = (f"VM {a} is padding (the instance has {st.num_vms} VMs)" if a >= st.num_vms
                          else f"VM {a} has no destination other than its own place")
                return self._invalid(reason)
            self.chosen = a
            self._dest, feas = dest_features(st, a)
            self._ts_mask = np.zeros(self.action_space.n, bool)
            self._ts_mask[:self.n_dest] = feas
            return self._obs(), 0.0, False, False, self._info()
        v, (pm, numa) = self.chosen, divmod(a, 2)
        if not (a < self.n_dest and self._ts_mask[a]):
            return self._invalid(self._explain(v, pm, numa) if a < self.n_dest else f"destination {a} outside "
                                 f"the {self.n_dest} NUMA nodes")
        reward = self._migrate(v, pm, numa) if not st.is_current(v, pm, numa) else 0.0
        self.chosen = -1
        self.steps += 1
        self._stage0()
        return self._obs(), float(reward), self.steps >= self.mnl, False, self._info()

    def _migrate(self, v: int, pm: int, numa: int) -> float:
        """Apply a masked-valid move; the env's reward for it."""
        st = self.state
        src_pm = int(st.vm_pm[v])
        pms = sorted({src_pm, pm})
        before_score = self._pm_score(pms)
        before_fr = st.fragment_rate() if self.reward_mode == "fr" else 0.0
        st.move(v, pm, numa)
        self.migrations += 1
        self.history.append((v, pm, numa))
        if not self.two_stage:
            for p in pms:
                self._update_columns(p)
            self._update_row(v)
        else:
            self._vm_static_row(v)
        self._update_pm_features(pms)
        if self.reward_mode == "score":
            return (before_score - self._pm_score(pms)) / 4.0
        return before_fr - st.fragment_rate()

    def step(self, action):
        if self.state is None:
            raise RuntimeError("call reset() before step()")
        if self.steps >= self.mnl:
            raise RuntimeError("episode is over (MNL steps taken); call reset()")
        a, why = self.discrete_action(action)  # the kit's check: an integer inside the space (1.5 is refused)
        if why:
            return self._invalid(why)
        if self.two_stage:
            return self._step_two_stage(a)
        v, d = divmod(a, self.n_dest)
        pm, numa = divmod(d, 2)
        if not self._mask[v, d]:
            return self._invalid(self._explain(v, pm, numa))
        reward = 0.0 if self.state.is_current(v, pm, numa) else self._migrate(v, pm, numa)
        self.steps += 1
        return self._obs(), float(reward), self.steps >= self.mnl, False, self._info()

    def action_masks(self) -> np.ndarray:
        """Valid actions, flat (a view; do not modify)."""
        if self.state is None:
            raise RuntimeError("call reset() before action_masks()")
        return self._ts_mask if self.two_stage else self._mask.reshape(-1)

    def render(self):
        if self.state is None:
            return ""
        return (f"step {self.steps}/{self.mnl} migrations {self.migrations} "
                f"FR {self.state.fragment_rate():.4f} free CPU {int(self.state.free_cpu.sum())}")

    # -- internals ---------------------------------------------------------------------------------
    def _invalid(self, reason: str):
        # A refused action changes nothing but uses a step (so an episode still ends after MNL steps).
        if self.invalid_action != "raise":
            self.steps += 1
            if self.two_stage and self.chosen >= 0:
                self.chosen = -1
                self._stage0()
        return self.invalid(reason, self._obs(), self._info(), terminated=self.steps >= self.mnl)

    def _explain(self, v: int, pm: int, numa: int) -> str:
        st = self.state
        if v >= st.num_vms:
            return f"VM {v} is padding (the instance has {st.num_vms} VMs)"
        if st.vm_double[v] and numa == 1:
            return f"VM {v} is double-NUMA: use NUMA bit 0 for PM {pm}"
        return f"VM {v} -> PM {pm} NUMA {numa} is masked: {st.why_not(v, pm, numa) or 'not allowed'}"

    def _init_static(self) -> None:
        st, n = self.state, self.state.num_vms
        cap_c, cap_m = float(st.cap_cpu.max()), float(st.cap_mem.max())
        self._v_c = np.zeros(self.max_vms, np.int64)
        self._v_m = np.zeros(self.max_vms, np.int64)
        self._v_dbl = np.zeros(self.max_vms, bool)
        self._present = np.zeros(self.max_vms, bool)
        self._present[:n] = True
        self._v_group = np.full(self.max_vms, -1, np.int64)
        self._v_group[:n] = st.vm_group
        self._anti_affinity = bool((st.vm_group >= 0).any())
        self._v_dbl[:n] = st.vm_double
        self._v_c[:n] = np.where(st.vm_double, st.vm_cpu // 2, st.vm_cpu)
        self._v_m[:n] = np.where(st.vm_double, st.vm_mem // 2, st.vm_mem)
        self._vm_obs = np.zeros((self.max_vms, VM_FEATURES), np.float32)
        self._pm_obs = np.zeros((self.num_pms, PM_FEATURES + (PM_HOSTED_FEATURES if self.pairs else 0)), np.float32)
        self._cap_c, self._cap_m = cap_c, cap_m
        for v in range(n):
            self._vm_static_row(v)

    def _vm_static_row(self, v: int) -> None:
        st = self.state
        c, m = self._v_c[v], self._v_m[v]
        on0 = st.vm_double[v] or st.vm_numa[v] == 0
        on1 = st.vm_double[v] or st.vm_numa[v] == 1
        row = self._vm_obs[v]
        row[0], row[1] = (c / self._cap_c) * on0, (c / self._cap_c) * on1
        row[2], row[3] = (m / self._cap_m) * on0, (m / self._cap_m) * on1
        row[4], row[5] = ((c % st.unit) / st.unit) * on0, ((c % st.unit) / st.unit) * on1
        row[6], row[7] = float(st.vm_double[v]), 1.0

    def _update_columns(self, p: int) -> None:
        """Recompute mask columns 2p, 2p+1 for every VM (both depend on PM p's two nodes)."""
        st = self.state
        n = st.num_vms
        f, fm = st.free_cpu, st.free_mem
        own_pm = np.zeros(self.max_vms, np.int64) - 1
        own_pm[:n] = st.vm_pm
        own_node = np.zeros(self.max_vms, np.int64) - 1
        own_node[:n] = 2 * st.vm_pm + np.maximum(st.vm_numa, 0)
        single = self._present & ~self._v_dbl
        for k in (0, 1):
            node = 2 * p + k
            fits = (f[node] >= self._v_c) & (fm[node] >= self._v_m)
            self._mask[:, node] = single & (fits | (own_node == node))
        both = (min(f[2 * p], f[2 * p + 1]) >= self._v_c) & (min(fm[2 * p], fm[2 * p + 1]) >= self._v_m)
        dbl = self._present & self._v_dbl
        self._mask[:, 2 * p] |= dbl & (both | (own_pm == p))
        if self._anti_affinity:
            # A VM may not join a PM where another VM of its anti-affinity group runs.
            here = st.vm_group[(st.vm_pm == p) & (st.vm_group >= 0)]
            if len(here):
                blocked = np.isin(self._v_group, here) & (own_pm != p)
                self._mask[blocked, 2 * p:2 * p + 2] = False

    def _update_row(self, v: int) -> None:
        """The moved VM's own place changed: its row's no-op entry moves with it."""
        st = self.state
        c, m = self._v_c[v], self._v_m[v]
        if st.vm_double[v]:
            f2, fm2 = st.free_cpu.reshape(-1, 2).min(1), st.free_mem.reshape(-1, 2).min(1)
            ok = (f2 >= c) & (fm2 >= m)
            ok[st.vm_pm[v]] = True
            self._mask[v, :] = False
            self._mask[v, 0::2] = ok
        else:
            ok = (st.free_cpu >= c) & (st.free_mem >= m)
            ok[2 * st.vm_pm[v] + st.vm_numa[v]] = True
            self._mask[v, :] = ok
        for pm in st.group_blocked_pms(v):
            self._mask[v, 2 * pm:2 * pm + 2] = False
        self._vm_static_row(v)

    def _update_pm_features(self, pms=None) -> None:
        st = self.state
        f = st.free_cpu.reshape(-1, 2).astype(np.float32)
        fm = st.free_mem.reshape(-1, 2).astype(np.float32)
        mod = (st.free_cpu % st.unit).reshape(-1, 2).astype(np.float32)
        obs = self._pm_obs
        obs[:, 0:2] = f / self._cap_c
        obs[:, 2:4] = fm / self._cap_m
        obs[:, 4:6] = mod / st.unit
        obs[:, 6:8] = np.divide(mod, f, out=np.zeros_like(mod), where=f > 0)

    def _pm_score(self, pms) -> float:
        st = self.state
        return sum(float((st.free_cpu[2 * p:2 * p + 2] % st.unit).sum()) for p in pms) / (2 * st.unit)

    def _obs(self) -> dict[str, np.ndarray]:
        n = self.state.num_vms
        self._vm_obs[:n, 8:14] = self._pm_obs[self.state.vm_pm, :6]
        obs = {"pm": self._pm_obs.copy(), "vm": self._vm_obs.copy(),
               "progress": np.array([self.steps / max(self.mnl, 1)], np.float32)}
        if self.two_stage:
            obs["vm"] = np.concatenate([self._vm_obs, self._vm_extra], 1)
            obs["dest"] = self._dest.copy()
            obs["stage"] = np.array([float(self.chosen >= 0)], np.float32)
            obs["chosen"] = np.array([float(self.chosen)], np.float32)
        if self.pairs:
            self._hosted_features()
            obs["pm"] = self._pm_obs.copy()
            obs["pair"] = self._pair_features()
        return obs

    def _hosted_features(self) -> None:
        st = self.state
        single = ~st.vm_double & st.alive
        node = 2 * st.vm_pm[single] + st.vm_numa[single]
        rem = st.vm_cpu[single] % st.unit
        counts = np.zeros((self.n_dest, len(HOSTED_SIZES)), np.float32)
        for j, size in enumerate(HOSTED_SIZES):
            counts[:, j] = np.bincount(node[rem == size], minlength=self.n_dest)
        # columns PM_FEATURES..: (numa0: 2, 4, 8, numa1: 2, 4, 8)
        self._pm_obs[:, PM_FEATURES:] = np.minimum(counts.reshape(self.num_pms, -1) / 8.0, 1.0)

    def _pair_features(self) -> np.ndarray:
        """(max_vms, 2P, 5): the exact remainder changes of every move (see the module docstring)."""
        st, u = self.state, self.state.unit
        n, nd = st.num_vms, self.n_dest
        f = st.free_cpu.astype(np.int64)
        r = f % u
        out = np.zeros((self.max_vms, nd, PAIR_FEATURES), np.float32)
        c = self._v_c[:n]
        dbl = st.vm_double
        own = np.where(dbl, 2 * st.vm_pm, 2 * st.vm_pm + np.maximum(st.vm_numa, 0))
        # single-NUMA VMs: destination node d, source node own
        after = (f[None, :] - c[:, None]) % u
        d_dst = after - r[None, :]
        src_after = (f[own] + c) % u
        d_src = src_after - r[own]
        after_s, d_dst_s = after.astype(np.float32), d_dst.astype(np.float32)
        d_src_s = np.broadcast_to(d_src[:, None], (n, nd)).astype(np.float32)
        if dbl.any():
            # double-NUMA VMs: both nodes of the destination PM (even columns), both of the source PM
            a2 = after.reshape(n, self.num_pms, 2)
            dd2 = d_dst.reshape(n, self.num_pms, 2).sum(2)
            fs = f.reshape(-1, 2)[st.vm_pm]
            rs = r.reshape(-1, 2)[st.vm_pm]
            ds2 = ((fs + c[:, None]) % u - rs).sum(1)
            rows = np.flatnonzero(dbl)
            after_s[rows] = 0.0
            d_dst_s[rows] = 0.0
            d_src_s[rows] = 0.0
            after_s[rows, 0::2] = a2[rows].mean(2)
            d_dst_s[rows, 0::2] = dd2[rows]
            d_src_s[rows, 0::2] = ds2[rows, None]
        noop = np.zeros((n, nd), np.float32)
        noop[np.arange(n), own] = 1.0
        keep = 1.0 - noop  # the no-op changes nothing
        out[:n, :, 0] = np.where(noop > 0, r[own][:, None] / u, after_s / u)
        out[:n, :, 1] = d_dst_s / u * keep
        out[:n, :, 2] = d_src_s / u * keep
        out[:n, :, 3] = (d_dst_s + d_src_s) / u * keep
        out[:n, :, 4] = noop
        return out

    def _info(self) -> dict[str, Any]:
        return {"fragment_rate": self.state.fragment_rate(), "num_migrations": self.migrations,
                "step": self.steps, "instance": self.instance.name}
