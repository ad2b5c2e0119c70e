"""VM-rescheduling figures: env steps/s, exact solvers' time to optimality and gaps, FR per method.

    python benchmarks/vm_resched_bench.py            # full (several minutes on 2 cores)
    python benchmarks/vm_resched_bench.py --quick    # a smoke run
    python benchmarks/vm_resched_bench.py --scale    # VMR2L scale: medium-v1 and large-v1, seeds 0-4, 10 s and 60 s
    python benchmarks/vm_resched_bench.py --scale --presets medium --seeds 0,1 --limits 10   # a part of it

`--scale` (issue 16) runs every method on the version-1 presets (94 % CPU, start FR 0.555 +- 0.02) and prints,
per preset and time limit, each method's mean FR before, FR after, time-aware FR (the cluster keeps changing
while the method thinks: `evaluate(..., wall_time_s=)`), its own reported bound, the best bound any method
proved on the instance, gaps, wall time, and FR after / FR before beside VMR2L's published ratios on its
medium dataset; then each seed's LNS and greedy figures. All 5 x 2 x 2 blocks: 19 minutes on a loaded 2-core machine.

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
from sysgym.experiments.commands.vm import env_overrides

console = Console(width=160)

# FR after / FR before at MNL 50 on VMR2L's medium dataset (start FR 0.555): arXiv 2505.17359, the FR vs
# migration-number figure (`readme-figures/fr_migration.png` in github.com/zhykoties/VMR2L_eurosys).
VMR2L_RATIOS = {"MIP": 0.287 / 0.555, "VMR2L": 0.295 / 0.555, "POP": 0.345 / 0.555, "MCTS": 0.378 / 0.555,
                "alpha-VBPP": 0.387 / 0.555, "Decima": 0.448 / 0.555}
TIMED = ("vm_resched.milp", "vm_resched.cpsat", "vm_resched.lns", "vm_resched.lookahead")
UNTIMED = ("vm_resched.greedy", "vm_resched.filter_score", "vm_resched.random")


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
    table = Table(title=f"VMR2L-medium-sized instances (v1: 280 PMs, ~2,200 VMs, 94 % CPU, MNL 50), time limit "
                        f"{time_limit:.0f} s; time-aware FR uses each method's own wall time")
    for col in ("method", "FR before", "FR after", "FR time-aware", "skipped", "wall s", "status", "gap"):
        table.add_column(col, justify="right")
    for name in (*TIMED, *UNTIMED):
        res = []
        for seed in seeds:
            inst = generate(preset="medium", seed=seed)
            sol = solvers.get(name).solve(inst, time_limit=time_limit, seed=seed)
            met = evaluate(inst, sol, wall_time_s=sol.wall_time_s)
            res.append((met["fragment_rate_before"], met["fragment_rate"], met["fragment_rate_timed"],
                        met["skipped_migrations"], sol.wall_time_s, sol.status, sol.gap))
        arr = np.array([r[:5] for r in res], float)
        gaps = [r[6] for r in res if r[6] is not None]
        table.add_row(name, *(f"{x:.4f}" for x in arr[:, :3].mean(0)), f"{arr[:, 3].mean():.1f}",
                      f"{arr[:, 4].mean():.2f}", ",".join(sorted({r[5] for r in res})),
                      f"{np.mean(gaps):.3f}" if gaps else "-")
    return table


# -- --scale -------------------------------------------------------------------------------------------------
def run_scale(preset: str, seeds: list[int], limits: list[float]) -> dict:
    """{(limit, method, seed): row}; untimed methods run once per seed and appear under every limit."""
    rows: dict = {}
    for seed in seeds:
        inst = generate(preset=preset, seed=seed)
        for name in UNTIMED:
            row = _solve(inst, name, None, seed)
            for limit in limits:
                rows[(limit, name, seed)] = row
        for limit in limits:
            for name in TIMED:
                rows[(limit, name, seed)] = _solve(inst, name, limit, seed)
        # The best bound any method proved on the instance (at any limit) holds for all of them.
        best = max(r["bound"] for (_lim, _n, s), r in rows.items() if s == seed and r["bound"] is not None)
        for key, r in list(rows.items()):
            if key[2] == seed:
                rows[key] = {**r, "best_bound": best}
        console.print(f"  {preset} seed {seed} done ({time.strftime('%H:%M:%S')})")
    return rows


def _solve(inst, name: str, limit: float | None, seed: int) -> dict:
    preset = inst.name.split("/", 1)[1].split("?", 1)[0]
    sol = solvers.get(name, **env_overrides(name, preset)).solve(inst, time_limit=limit, seed=seed)
    met = evaluate(inst, sol, wall_time_s=sol.wall_time_s)
    return {"before": met["fragment_rate_before"], "after": met["fragment_rate"], "timed": met["fragment_rate_timed"],
            "bound": sol.bound, "gap": sol.gap, "wall": sol.wall_time_s, "status": sol.status,
            "migrations": met["num_migrations"]}


def scale_tables(preset: str, rows: dict, seeds: list[int], limits: list[float]) -> list[Table]:
    tables = []
    for limit in limits:
        inst0 = generate(preset=preset, seed=seeds[0])
        table = Table(title=f"{preset}-v1 ({inst0.num_pms} PMs, ~{inst0.num_vms:,} VMs, MNL {inst0.mnl}), seeds "
                            f"{seeds[0]}-{seeds[-1]}, time limit {limit:.0f} s (means over seeds)")
        for col in ("method", "FR before", "FR after", "time-aware FR", "own bound", "gap to own", "best bound",
                    "gap to best", "wall s", "after/before", "status"):
            table.add_column(col, justify="left" if col in ("method", "status") else "right", no_wrap=True)
        for name in (*TIMED, *UNTIMED):
            rs = [rows[(limit, name, s)] for s in seeds]
            mean = {k: float(np.mean([r[k] for r in rs])) for k in ("before", "after", "timed", "wall", "best_bound")}
            own = [r["bound"] for r in rs if r["bound"] is not None]
            gaps = [r["gap"] for r in rs if r["gap"] is not None]
            gap_best = np.mean([(r["after"] - r["best_bound"]) / r["after"] for r in rs])
            ratio = np.mean([r["after"] / r["before"] for r in rs])
            table.add_row(name.split(".", 1)[1], f"{mean['before']:.4f}", f"{mean['after']:.4f}",
                          f"{mean['timed']:.4f}", f"{np.mean(own):.4f}" if len(own) == len(rs) else "-",
                          f"{np.mean(gaps):.3f}" if len(gaps) == len(rs) else "-", f"{mean['best_bound']:.4f}",
                          f"{gap_best:.3f}", f"{mean['wall']:.1f}", f"{ratio:.3f}",
                          ",".join(sorted({r["status"] for r in rs})))
        tables.append(table)
    return tables


def lns_vs_greedy(preset: str, rows: dict, seeds: list[int], limits: list[float]) -> Table:
    table = Table(title=f"{preset}-v1 per seed: LNS vs greedy, and the best bound any method proved")
    for col in ("limit s", "seed", "FR before", "greedy", "lookahead", "LNS", "LNS gap to best bound", "MILP",
                "CP-SAT", "best bound"):
        table.add_column(col, justify="right")
    for limit in limits:
        for s in seeds:
            g = rows[(limit, "vm_resched.greedy", s)]
            lns = rows[(limit, "vm_resched.lns", s)]
            table.add_row(f"{limit:.0f}", str(s), f"{g['before']:.4f}", f"{g['after']:.4f}",
                          f"{rows[(limit, 'vm_resched.lookahead', s)]['after']:.4f}", f"{lns['after']:.4f}",
                          f"{(lns['after'] - lns['best_bound']) / lns['after']:.3f}",
                          f"{rows[(limit, 'vm_resched.milp', s)]['after']:.4f}",
                          f"{rows[(limit, 'vm_resched.cpsat', s)]['after']:.4f}", f"{lns['best_bound']:.4f}")
    return table


def vmr2l_table() -> Table:
    table = Table(title="VMR2L's medium dataset (start FR 0.555, MNL 50): FR after / FR before, published")
    for name in VMR2L_RATIOS:
        table.add_column(name, justify="right")
    table.add_row(*(f"{r:.3f}" for r in VMR2L_RATIOS.values()))
    return table


def _ints(text: str) -> list[int]:
    if "-" in text and "," not in text:
        lo, hi = text.split("-")
        return list(range(int(lo), int(hi) + 1))
    return [int(x) for x in text.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--time-limit", type=float, default=60.0)
    parser.add_argument("--scale", action="store_true", help="VMR2L-scale comparison (see the module doc)")
    parser.add_argument("--presets", default="medium,large", help="--scale: version-1 presets")
    parser.add_argument("--seeds", default="0-4", help="--scale: seeds, '0-4' or '0,2'")
    parser.add_argument("--limits", default="10,60", help="--scale: time limits in seconds")
    args = parser.parse_args()
    console.print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                  f"load {os.getloadavg()[0]:.2f}")
    if args.scale:
        t0 = time.perf_counter()
        seeds, limits = _ints(args.seeds), [float(x) for x in args.limits.split(",")]
        for preset in args.presets.split(","):
            over = {n: env_overrides(n, preset) for n in (*TIMED, *UNTIMED) if env_overrides(n, preset)}
            console.print(f"{preset}-v1: per-env solver options (conf/solver/*.yaml overrides): {over or 'none'}")
            rows = run_scale(preset, seeds, limits)
            for table in scale_tables(preset, rows, seeds, limits):
                console.print(table)
            console.print(lns_vs_greedy(preset, rows, seeds, limits))
        console.print(vmr2l_table())
        console.print(f"wall time {time.perf_counter() - t0:.0f} s, load {os.getloadavg()[0]:.2f}")
        return
    rate, reset_s = env_steps_per_second(5 if args.quick else 60)
    console.print(f"[bold]VmResched-v0 (medium-v1: 280 PMs, 2,400 VM rows, 1,344,000 actions)[/]: "
                  f"{rate:,.0f} env steps/s with a random masked policy; reset {reset_s * 1000:.1f} ms")
    console.print(exact_on_small([0] if args.quick else [0, 1, 2, 3, 4]))
    console.print(methods_on_medium(5.0 if args.quick else args.time_limit, [0] if args.quick else [0, 1]))


if __name__ == "__main__":
    main()
