"""VM-rescheduling figures: env steps/s, exact solvers' time to optimality and gaps, FR per method.

    python benchmarks/vm_resched_bench.py            # full (about 6 minutes on 2 cores)
    python benchmarks/vm_resched_bench.py --quick    # a smoke run

Prints its figures; nothing here is a timed unit test.
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
from rich.console import Console
from rich.table import Table

import sysgym
from sysgym import solvers
from sysgym.envs.vm_resched import ClusterState, generate
from sysgym.envs.vm_resched.evaluate import evaluate

console = Console(width=140)


def env_steps_per_second(episodes: int) -> tuple[float, float]:
    """Random masked policy on a VMR2L-medium-sized instance; resets excluded from the step rate."""
    inst = generate(preset="medium", seed=0)
    env = sysgym.make("VmResched-v0", instance=inst)
    u = env.unwrapped
    rng = np.random.default_rng(0)
    steps, step_time, reset_time = 0, 0.0, 0.0
    for ep in range(episodes):
        t = time.perf_counter()
        env.reset(seed=ep)
        reset_time += time.perf_counter() - t
        done = False
        t = time.perf_counter()
        while not done:
            mask = u.action_masks().reshape(u.max_vms, u.n_dest)
            v = int(rng.integers(u.state.num_vms))  # every VM row has its own place: never empty
            cols = np.flatnonzero(mask[v])
            _, _, done, _, _ = env.step(v * u.n_dest + int(cols[rng.integers(len(cols))]))
            steps += 1
        step_time += time.perf_counter() - t
    return steps / step_time, reset_time / episodes


def exact_on_small(seeds: list[int]) -> Table:
    table = Table(title="exact solvers on the small preset (10 PMs, ~75 VMs, MNL 5), no time limit")
    for col in ("seed", "FR before", "MILP status", "MILP s", "CP-SAT status", "CP-SAT s", "optimum FR", "agree"):
        table.add_column(col, justify="right")
    for seed in seeds:
        inst = generate(preset="small", seed=seed)
        m = solvers.get("vm_resched.milp").solve(inst)
        c = solvers.get("vm_resched.cpsat").solve(inst)
        table.add_row(str(seed), f"{ClusterState(inst).fragment_rate():.4f}", m.status, f"{m.wall_time_s:.2f}",
                      c.status, f"{c.wall_time_s:.2f}", f"{m.objective:.4f}",
                      str(abs(m.objective - c.objective) < 1e-12))
    return table


def methods_on_medium(time_limit: float, seeds: list[int]) -> Table:
    table = Table(title=f"VMR2L-medium-sized instances (280 PMs, 2,089 VMs, MNL 50), exact time limit "
                        f"{time_limit:.0f} s; time-aware FR uses each method's own wall time")
    for col in ("method", "FR before", "FR after", "FR time-aware", "skipped", "wall s", "status",
                "restricted-model gap"):
        table.add_column(col, justify="right")
    for name in ("vm_resched.milp", "vm_resched.cpsat", "vm_resched.greedy", "vm_resched.filter_score",
                 "vm_resched.random"):
        res = []
        for seed in seeds:
            inst = generate(preset="medium", seed=seed)
            sol = solvers.get(name).solve(inst, time_limit=time_limit, seed=seed)
            met = evaluate(inst, sol, wall_time_s=sol.wall_time_s)
            model_bound = sol.stats.get("model_bound_fr")
            gap = (sol.objective - model_bound) / sol.objective if model_bound is not None and sol.objective else None
            res.append((met["fragment_rate_before"], met["fragment_rate"], met["fragment_rate_timed"],
                        met["skipped_migrations"], sol.wall_time_s, sol.status, gap))
        arr = np.array([r[:5] for r in res], float)
        gaps = [r[6] for r in res if r[6] is not None]
        table.add_row(name, *(f"{x:.4f}" for x in arr[:, :3].mean(0)), f"{arr[:, 3].mean():.1f}",
                      f"{arr[:, 4].mean():.2f}", ",".join(sorted({r[5] for r in res})),
                      f"{np.mean(gaps):.3f}" if gaps else "-")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--time-limit", type=float, default=60.0)
    args = parser.parse_args()
    console.print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                  f"load {os.getloadavg()[0]:.2f}")
    rate, reset_s = env_steps_per_second(5 if args.quick else 60)
    console.print(f"[bold]VmResched-v0 (medium: 280 PMs, 2,089 VMs, 1,169,840 actions)[/]: "
                  f"{rate:,.0f} env steps/s with a random masked policy; reset {reset_s * 1000:.1f} ms")
    console.print(exact_on_small([0] if args.quick else [0, 1, 2, 3, 4]))
    console.print(methods_on_medium(5.0 if args.quick else args.time_limit, [0] if args.quick else [0, 1]))


if __name__ == "__main__":
    main()
