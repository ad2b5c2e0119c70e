"""Power-capped LLM serving (POLCA): SLO attainment and over-budget intervals vs the row power budget.

    .venv/bin/python benchmarks/power_cap_bench.py --plot docs/images/power_cap_budget.png
    .venv/bin/python benchmarks/power_cap_bench.py --preset code --budgets 0.6,0.7,0.8,0.9,1.0
    .venv/bin/python benchmarks/power_cap_bench.py --exponent 2   # the pessimistic end of measured DVFS exponents

For each budget (a fraction of the row's nameplate GPU power, servers x TDP) it generates the preset's instance
with that budget and scores every method with the family's evaluator: no cap, static caps at 0.9 and 0.7 of the
maximum clock, POLCA's threshold controller, and the clairvoyant one-interval look-ahead (a reference point, not a
deployable policy, and not a bound). Columns: SLO attainment (TTFT <= 2 s and TPOT <= 0.2 s), the share of
intervals whose row power exceeded the budget (POLCA's capping failures), GPU energy, mean clock, cost
(= misses + over-budget share), and each method's wall time.
"""
from __future__ import annotations

import argparse
import time

METHODS = [("no cap", "power_cap.none", {}), ("static 0.9", "power_cap.static", {"level": 1}),
           ("static 0.7", "power_cap.static", {"level": 3}), ("POLCA threshold", "power_cap.polca", {}),
           ("look-ahead (oracle)", "power_cap.lookahead", {})]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="small")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--budgets", default="0.6,0.65,0.7,0.77,0.85,1.0")
    ap.add_argument("--exponent", type=float, default=None,
                    help="DVFS exponent of dynamic power vs clock (default: kernels.energy.DVFS_EXPONENT, 3)")
    ap.add_argument("--plot", default=None, help="write SLO attainment and over-budget share vs budget here")
    args = ap.parse_args()

    from sysgym import solvers
    from sysgym.envs.power_cap import evaluate, generate

    budgets = [float(b) for b in args.budgets.split(",")]
    results: dict[str, list[dict]] = {label: [] for label, _, _ in METHODS}
    t_all = time.perf_counter()
    for frac in budgets:
        extra = {} if args.exponent is None else {"dvfs_exponent": args.exponent}
        inst = generate(seed=args.seed, preset=args.preset, budget_fraction=frac, **extra)
        print(f"\n{inst.name}: {inst.num_servers} x {inst.model} on {inst.gpu}, {inst.num_requests} requests over "
              f"{inst.horizon_s:.0f} s, budget {inst.budget_w:.0f} W = {frac:.2f} x nameplate {inst.nameplate_w:.0f} W")
        print(f"  {'method':22s} {'SLO att.':>8s} {'over-budget':>11s} {'energy kJ':>9s} {'clock':>6s} {'cost':>7s} "
              f"{'wall s':>6s}")
        for label, name, kw in METHODS:
            t0 = time.perf_counter()
            sol = solvers.get(name, **kw).solve(inst)
            wall = time.perf_counter() - t0
            m = evaluate(inst, sol)
            results[label].append(m)
            print(f"  {label:22s} {m['slo_attainment']:8.3f} {m['overbudget_rate']:11.3f} {m['energy_j'] / 1e3:9.1f} "
                  f"{m['mean_clock']:6.3f} {m['cost']:7.3f} {wall:6.2f}")
    print(f"\ntotal {time.perf_counter() - t_all:.1f} s")
    if args.plot:
        from sysgym.plotting import pyplot, save_figure

        plt = pyplot()
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
        for label, _, _ in METHODS:
            ax1.plot(budgets, [m["slo_attainment"] for m in results[label]], marker="o", label=label)
            ax2.plot(budgets, [m["overbudget_rate"] for m in results[label]], marker="o", label=label)
        ax1.set(xlabel="row power budget / nameplate", ylabel="SLO attainment", title=f"power_cap/{args.preset}")
        ax2.set(xlabel="row power budget / nameplate", ylabel="share of intervals over budget")
        ax1.legend(fontsize=8)
        print(f"wrote {save_figure(fig, args.plot)}")


if __name__ == "__main__":
    main()
