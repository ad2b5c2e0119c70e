"""`sysgym plan`: the best training plans of a model on a cluster, as a table, and the time/memory Pareto front,
every plan priced by `estimate_training` (the parallel-plan family's scorer).

    sysgym plan --model llama-2-70b --cluster dgx-a100 --nodes 8 --seq-len 4096 --global-batch 1024
    sysgym plan --model gpt-1t --cluster dgx-a100 --nodes 384 --seq-len 2048 --global-batch 3072 --plot front.png
    sysgym plan --model llama-2-70b --cluster dgx-a100-ib-roce --seq-len 4096 --global-batch 256   # node groups
    sysgym plan --model llama-3-8b --nodes 8 --seq-len 131072 --global-batch 32 --flash-attention  # context parallel
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from sysgym.plotting import save_figure

COMPONENTS = {"compute_s": "compute", "tp_comm_s": "tensor-parallel comm", "cp_comm_s": "context-parallel comm",
              "p2p_s": "pipeline send/recv", "bubble_s": "pipeline bubble",
              "grad_sync_and_optimizer_s": "gradient sync + optimizer"}


def why_slower(best, other) -> str:
    """The time component that grew most relative to the best plan."""
    if other.iteration_time_s <= best.iteration_time_s * (1 + 1e-9):
        return "tie" if other is not best else "best"
    diffs = {name: other.time_breakdown_s.get(key, 0.0) - best.time_breakdown_s.get(key, 0.0)
             for key, name in COMPONENTS.items()}
    name, diff = max(diffs.items(), key=lambda kv: kv[1])
    total = other.iteration_time_s - best.iteration_time_s
    return f"+{total:.3g} s: {name} +{diff:.3g} s"


def pareto_front(time: np.ndarray, mem: np.ndarray) -> np.ndarray:
    """Indices of plans no other plan beats on both iteration time and memory, sorted by memory."""
    order = np.lexsort((time, mem))
    front, best_time = [], np.inf
    for k in order:
        if time[k] < best_time:
            front.append(int(k))
            best_time = time[k]
    return np.array(front, int)


def plot_front(inst, space, out, path: str) -> str:
    import matplotlib

    from sysgym.envs.parallel_plan.cost import GIB

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    feas = out["feasible"]
    time, mem = out["time"], out["mem_total"] / GIB
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.scatter(mem[~feas], time[~feas], s=6, c="lightgray", label="does not fit")
    ax.scatter(mem[feas], time[feas], s=8, c="tab:blue", alpha=0.5, label="feasible plans")
    idx = np.flatnonzero(feas)
    front = idx[pareto_front(time[feas], mem[feas])]
    ax.plot(mem[front], time[front], "o-", c="tab:red", label="Pareto front")
    step = max(1, len(front) // 6)
    for k in front[::step]:
        ax.annotate(space.plan(int(k)).describe(), (mem[k], time[k]), fontsize=6, xytext=(4, 2),
                    textcoords="offset points")
    limit = (inst.memory_limit_gib or inst.cluster.gpu.memory_bytes / GIB)
    ax.set_xlim(0, 1.6 * limit)  # plans far over the limit are off the chart
    ax.axvline(limit, ls="--", c="k", lw=0.8, label=f"limit {limit:.0f} GiB")
    ax.set_xlabel("memory per GPU (GiB), most loaded stage")
    ax.set_ylabel("iteration time (s)")
    ax.set_yscale("log")
    ax.set_title(f"{inst.model.name} on {inst.num_gpus} x {inst.cluster.gpu.name}, seq {inst.seq_len}, "
                 f"batch {inst.global_batch}", fontsize=9)
    ax.legend(fontsize=7)
    return save_figure(fig, path, dpi=140)


def _cmd_plan(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from sysgym.envs.parallel_plan.generator import generate
    from sysgym.envs.parallel_plan.space import evaluate_space, infeasible_report, uniform_space
    from sysgym.errors import SysgymError

    console = Console(width=None if sys.stdout.isatty() else 160)
    try:
        inst = generate(model=args.model, cluster=args.cluster, nodes=args.nodes, seq_len=args.seq_len,
                        global_batch=args.global_batch, memory_limit_gib=args.memory_limit_gib,
                        flash_attention=args.flash_attention or None)
    except (SysgymError, KeyError, ValueError) as exc:
        Console(stderr=True).print(f"[red]error:[/] {exc.args[0] if isinstance(exc, KeyError) else exc}")
        return 2
    with console.status("enumerating and pricing the plan space"):
        space = uniform_space(inst)
        out = evaluate_space(inst, space)
    feas = out["feasible"]
    console.print(f"{inst.model.name}: {inst.model.num_params() / 1e9:.1f}B parameters on {inst.num_gpus} x "
                  f"{inst.cluster.gpu.name} ({inst.cluster.num_nodes} nodes); {len(space)} legal plans, "
                  f"{int(feas.sum())} fit in memory")
    if not feas.any():
        Console(stderr=True).print(f"[red]{infeasible_report(inst)['reason']}[/]")
        return 1
    order = np.flatnonzero(feas)[np.argsort(out["time"][feas], kind="stable")]
    shown, seen = [], set()
    for k in order:  # one row per distinct plan description
        plan = space.plan(int(k))
        if plan.describe() in seen:
            continue
        seen.add(plan.describe())
        shown.append(plan)
        if len(shown) >= args.top:
            break
    ests = [inst.estimate(p) for p in shown]
    table = Table(title="best plans (estimate_training)")
    for col in ("#", "plan (t c p d b v sp recompute sharding placement)", "iteration (s)", "TFLOP/s/GPU", "MFU",
                "memory/GPU (GiB)", "why it loses to #1"):
        table.add_column(col, justify="left" if col.startswith(("plan", "why")) else "right")
    for i, est in enumerate(ests, 1):
        table.add_row(str(i), est.plan.describe(), f"{est.iteration_time_s:.3f}", f"{est.tflops_per_gpu:.1f}",
                      f"{est.mfu:.1%}", f"{est.memory_gib.total:.1f}", why_slower(ests[0], est) if i > 1 else "")
    console.print(table)
    b = ests[0]
    mem = b.memory_gib
    console.print(f"#1 memory per GPU (stage {mem.stage}): parameters {mem.parameters:.1f}, gradients "
                  f"{mem.gradients:.1f}, optimizer {mem.optimizer:.1f}, activations {mem.activations:.1f} GiB; "
                  "time: " + ", ".join(f"{COMPONENTS.get(k, k)} {v:.3g} s" for k, v in b.time_breakdown_s.items()
                                       if k in COMPONENTS))
    if args.plot:
        console.print(f"wrote {plot_front(inst, space, out, args.plot)}")
    return 0


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def register(subparsers) -> None:
    p = subparsers.add_parser("plan", help="best data/tensor/pipeline parallel plans for training an LLM")
    p.add_argument("--model", required=True, help="a sysgym.kernels model preset, e.g. llama-2-70b, gpt-1t")
    p.add_argument("--cluster", default="dgx-a100", help="a sysgym.kernels cluster preset (default dgx-a100)")
    p.add_argument("--nodes", type=int, default=None, help="number of nodes (overrides the preset)")
    p.add_argument("--seq-len", type=int, required=True)
    p.add_argument("--global-batch", type=int, required=True, help="sequences per iteration")
    p.add_argument("--memory-limit-gib", type=float, default=None, help="per-GPU budget (default: GPU memory)")
    p.add_argument("--flash-attention", action="store_true", help="FlashAttention (no s^2 activations)")
    p.add_argument("--top", type=_positive_int, default=10, help="plans to list (default 10)")
    p.add_argument("--plot", default=None, help="write the time/memory Pareto front to this PNG")
    p.set_defaults(func=_cmd_plan)

