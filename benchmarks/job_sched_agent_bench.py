"""Decima's learned scheduler (`job_sched.agent`) against the heuristics on held-out seeds of the Decima preset
with moving delay on (setting multi_app), every schedule scored by the job_sched evaluator.

    python benchmarks/job_sched_agent_bench.py                    # shipped policy, seeds 1000-1004, 20 jobs
    python benchmarks/job_sched_agent_bench.py --policy runs/decima --num-jobs 100
    python benchmarks/job_sched_agent_bench.py --curve docs/images/job_sched_decima_curve.png
    python benchmarks/job_sched_agent_bench.py --teacher uwfq --limit-mode relative --seeds 900-904
        # uwfq acting in the net's place through the actor (the cap on cloning it), beside uwfq itself
    python benchmarks/job_sched_agent_bench.py --teacher uwfq --limit-mode relative --stay none --lookahead 50
        # the same teacher improved by rollouts (decima_lookahead; TrainConfig.lookahead_every's cloning teacher)
    python benchmarks/job_sched_agent_bench.py --teacher uwfq --limit-mode relative --stay none --lookahead 50 \
        --probe 3 --seeds 100    # and how often 3 resampled futures pick the label the instance's own future picked

Training used seeds 0-799 and validation seeds 900-901, so 1000+ are held out. Prints each method's mean JCT per
seed and overall, the learned policy's reduction against the best heuristic, and Decima's published figure
(SIGCOMM'19 Sec. 7.2: at least 21 % lower average JCT than the best tuned heuristic) beside it.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

HEURISTICS = ("fifo", "fair", "decima_cap", "uwfq", "srpt")
DECIMA_PAPER_REDUCTION = 0.21  # Mao et al., SIGCOMM'19, Sec. 7.2: >= 21 % lower average JCT than the best heuristic


def run(policy: str | None, seeds: list[int], num_jobs: int) -> dict[str, list[float]]:
    import sysgym.solvers as solvers
    from sysgym.envs.job_sched.generator import generate_v1
    from sysgym.registry import get_family

    fam = get_family("job_sched")
    methods = {h: solvers.get(f"job_sched.{h}") for h in HEURISTICS}
    methods["agent"] = solvers.get("job_sched.agent", path=policy)
    out: dict[str, list[float]] = {m: [] for m in methods}
    wall: dict[str, float] = {m: 0.0 for m in methods}
    for seed in seeds:
        inst = generate_v1(seed=seed, preset="decima", num_jobs=num_jobs)
        assert inst.moving_delay_s > 0, "the Decima preset runs with moving delay on (multi_app)"
        for m, solver in methods.items():
            t0 = time.perf_counter()
            sol = solver.solve(inst, seed=0)
            wall[m] += time.perf_counter() - t0
            out[m].append(float(fam.evaluate(inst, sol)[fam.objective]))  # the one scorer
    out["_wall_s"] = [wall[m] for m in methods]
    return out


def report(res: dict[str, list[float]], seeds: list[int]) -> dict[str, float]:
    names = [m for m in res if not m.startswith("_")]
    print(f"{'method':<12}" + "".join(f"{s:>9}" for s in seeds) + f"{'mean JCT':>10}{'wall s':>9}")
    means = {}
    for m, w in zip(names, res["_wall_s"]):
        means[m] = float(np.mean(res[m]))
        print(f"{m:<12}" + "".join(f"{v:9.2f}" for v in res[m]) + f"{means[m]:10.2f}{w:9.1f}")
    best = min(HEURISTICS, key=lambda h: means[h])
    red = 1 - means["agent"] / means[best]
    beaten = [h for h in HEURISTICS if means["agent"] < means[h]]
    print(f"learned vs best heuristic ({best}, {means[best]:.2f} s): {100 * red:+.1f} % lower mean JCT "
          f"(Decima, SIGCOMM'19: >= {100 * DECIMA_PAPER_REDUCTION:.0f} %); beats {len(beaten)}/{len(HEURISTICS)} "
          f"heuristics ({', '.join(beaten) or 'none'})")
    return {**means, "best_heuristic": best, "reduction_vs_best": red}


def teacher_through_actor(teacher: str, seeds: list[int], num_jobs: int, stay: str, num_limits: int,
                          limit_mode: str, lookahead: int = 0, probe: int = 0, futures: int = 0) -> None:
    """The heuristic run by the simulator beside the same heuristic acting at the net's decisions through
    Decima's actor (`decima.TeacherActor`: the stay rule, the env's levels or relative choices), both scored by
    the evaluator: what cloning it can reach at best. `lookahead` > 0: the teacher improved by one-step rollouts
    every `lookahead`-th decision (`decima_lookahead`; it knows the instance's future, so it is a cloning
    teacher for training instances, never a method). `probe` > 0: at each look also find the best candidate under
    that many resampled futures (`decima_lookahead.resample_future`) and print how often it is the true future's
    (`label_stability`): how much of the teacher's label a net, which cannot see the future, could learn."""
    import sysgym.solvers as solvers
    from sysgym.agents.decima import TeacherActor, make_env
    from sysgym.envs.job_sched.generator import generate_v1
    from sysgym.registry import get_family
    from sysgym.solution import Solution

    fam = get_family("job_sched")
    own, via, calls = [], [], 0
    probes: list = []
    sizes: list[int] = []
    for seed in seeds:
        inst = generate_v1(seed=seed, preset="decima", num_jobs=num_jobs)
        own.append(float(fam.evaluate(inst, solvers.get(f"job_sched.{teacher}").solve(inst, seed=0))[fam.objective]))
        env = make_env(inst, num_limits, limit_mode)
        actor = TeacherActor(teacher, env, stay, limit_mode, lookahead_every=lookahead)
        if probe:
            actor.agent.probe = probe
        if futures:
            actor.agent.futures = futures
        actor.run(inst)
        if probe:
            probes += actor.agent.probes
            sizes += actor.agent.sizes
        calls += len(actor.samples)
        via.append(float(fam.evaluate(inst, Solution(env.decisions(), np.nan, "feasible", 0.0))[fam.objective]))
    print(f"{'':<28}" + "".join(f"{s:>9}" for s in seeds) + f"{'mean JCT':>10}")
    print(f"{teacher:<28}" + "".join(f"{v:9.2f}" for v in own) + f"{np.mean(own):10.2f}")
    lab = f"via actor ({stay}, {limit_mode if limit_mode == 'relative' else num_limits}" + \
        (f", lookahead/{lookahead}" + (f"/futures{futures})" if futures else ")") if lookahead else ")")
    print(f"{lab:<28}" + "".join(f"{v:9.2f}" for v in via) + f"{np.mean(via):10.2f}  ({calls} decisions)")
    if probe:
        from sysgym.agents.decima_lookahead import label_stability

        st = label_stability(probes, sizes)
        print(f"label stability over {st['looks']} looks x {probe} resampled futures: the same best candidate "
              f"{100 * st['same_best']:.1f} % (chance {100 * st['chance']:.1f} %); the same keep-or-change verdict "
              f"{100 * st['same_change']:.1f} %; changed under the true future {100 * st['changed_true']:.1f} %, "
              f"under a resampled one {100 * st['changed_resampled']:.1f} %")


def plot_curve(meta_path: str, out: str, num_jobs: int) -> None:
    """The learning curve (evaluator-scored greedy mean JCT on the validation seeds vs env steps and wall time)
    with the heuristics' mean JCT on the same seeds as reference lines."""
    import sysgym.solvers as solvers
    from sysgym.envs.job_sched.generator import generate_v1
    from sysgym.plotting import pyplot, save_figure
    from sysgym.registry import get_family

    meta = json.load(open(meta_path))
    curve, cfg = meta["curve"], meta["config"]
    fam = get_family("job_sched")
    insts = [generate_v1(seed=s, preset=cfg["preset"], num_jobs=cfg["num_jobs"]) for s in cfg["val_seeds"]]
    ref = {h: np.mean([fam.evaluate(i, solvers.get(f"job_sched.{h}").solve(i))[fam.objective] for i in insts])
           for h in HEURISTICS}
    hint = (meta.get("net") or {}).get("hint")
    name = "Decima GNN" + (f" + {hint} hint" if hint else "")
    vals = [c["val_mean_jct_s"] for c in curve]
    # a linear axis around the policy and the heuristics near it; farther ones are named with their value
    top = 1.25 * max(max(vals), sorted(ref.values())[min(2, len(ref) - 1)])
    bottom = 0.95 * min(min(vals), min(ref.values()))
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for ax, key, label in ((axes[0], "env_steps", "env steps (all rollouts)"), (axes[1], "wall_s", "wall time (s)")):
        ax.plot([c[key] for c in curve], vals, "o-", lw=2, label=f"{name} (greedy)", zorder=3)
        for h, v in ref.items():
            if v <= top:
                ax.axhline(v, ls="--", lw=0.9, color=f"C{1 + HEURISTICS.index(h)}", label=f"{h} ({v:.2f} s)")
        ax.set_xlabel(label)
        ax.set_ylim(bottom, top)
    axes[0].set_ylabel("mean JCT (s), validation seeds")
    off = ", ".join(f"{h} {v:.1f} s" for h, v in ref.items() if v > top)
    axes[1].legend(fontsize=7, title=f"off the axis: {off}" if off else None, title_fontsize=7)
    fig.suptitle(f"{name} on preset {cfg['preset']}, {cfg['num_jobs']} jobs, moving delay on, validation seeds "
                 f"{', '.join(map(str, cfg['val_seeds']))}")
    print("wrote", save_figure(fig, out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--policy", default=None, help="a Decima run dir or decima.pt (default: the shipped policy)")
    ap.add_argument("--seeds", default="1000-1004")
    ap.add_argument("--num-jobs", type=int, default=20)
    ap.add_argument("--curve", default=None, help="also plot the policy's learning curve to this PNG")
    ap.add_argument("--json", default=None, help="write the summary here")
    ap.add_argument("--teacher", default=None, help="instead: this heuristic through Decima's actor (see below)")
    ap.add_argument("--stay", default="stage", help="--teacher: the actor's stay rule (stage|share|none)")
    ap.add_argument("--num-limits", type=int, default=10, help="--teacher: the env's levels (absolute mode)")
    ap.add_argument("--limit-mode", default="absolute", help="--teacher: absolute|relative")
    ap.add_argument("--lookahead", type=int, default=0, help="--teacher: improve it by rollouts every N-th decision "
                    "(relative limits; with stay none, the cloning teacher of TrainConfig.lookahead_every)")
    ap.add_argument("--futures", type=int, default=0, help="--lookahead: score candidates by their mean over this "
                    "many resampled futures instead of the instance's own (decima_lookahead.resample_future)")
    ap.add_argument("--probe", type=int, default=0, help="--lookahead: also score each look under this many "
                    "resampled futures and print how often they pick the same action (label stability)")
    a = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    lo, _, hi = a.seeds.partition("-")
    seeds = list(range(int(lo), int(hi or lo) + 1))
    if a.lookahead:
        from sysgym.agents.decima_lookahead import ranking_teachers

        # stay "share"/"stage" run too (TrainConfig refuses them: the rollouts do not model the actor's stay
        # decisions), so the measurement behind that refusal can be repeated here
        if not a.teacher or a.limit_mode != "relative":
            ap.error("--lookahead goes with --teacher and --limit-mode relative (TrainConfig.lookahead_every)")
        if a.probe < 0 or a.futures < 0:
            ap.error(f"--probe and --futures must be >= 0, got {a.probe} and {a.futures}")
        ranked = ranking_teachers()
        if a.teacher not in ranked:
            ap.error(f"--lookahead needs a teacher that ranks stages ({', '.join(ranked)}), got {a.teacher}")
    if (a.probe or a.futures) and not a.lookahead:
        ap.error("--probe and --futures go with --lookahead")
    if a.teacher:
        t0 = time.perf_counter()
        teacher_through_actor(a.teacher, seeds, a.num_jobs, a.stay, a.num_limits, a.limit_mode, a.lookahead, a.probe,
                              a.futures)
        print(f"wall {time.perf_counter() - t0:.0f} s")
        return
    t0 = time.perf_counter()
    res = run(a.policy, seeds, a.num_jobs)
    summary = report(res, seeds)
    print(f"bench wall {time.perf_counter() - t0:.0f} s")
    if a.json:
        json.dump({"seeds": seeds, "num_jobs": a.num_jobs, "per_seed": res, "summary": summary},
                  open(a.json, "w"), indent=1)
    if a.curve:
        from sysgym.agents.pretrained_job_sched import SHIPPED

        meta = (a.policy.rstrip("/") + "/decima.json") if a.policy and not a.policy.endswith(".pt") else \
            str(SHIPPED["job_sched"].with_suffix(".json") if a.policy is None else a.policy[:-3] + ".json")
        plot_curve(meta, a.curve, a.num_jobs)


if __name__ == "__main__":
    main()
