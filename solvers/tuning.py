"""Black-box knob tuners on a real PostgreSQL, driven through Optuna's ask/tell interface.

Every method gets the same protocol: trial 0 measures the server defaults, then `trials - 1` configurations
chosen by the method, each scored by the family evaluator (apply, restart if needed, warm-up, repeated
pgbench runs). A crash scores the worst value seen so far (OtterTune/LlamaTune). Against noise, the top
`reeval_top` configurations and the defaults are re-measured with the instance's final protocol and the
best re-measured one is returned; its gain over the defaults comes with a 95 % confidence interval
(`reeval_top=0`: no re-measurement, the best search measurement is returned — cheaper, optimistic).

`time_limit` bounds the search's wall time (pass `time_limit=null` to the Hydra app for a full budget).
"""
from __future__ import annotations

import math
import statistics
import time
from typing import Any

import numpy as np

from sysgym.envs.knob_tuning.evaluate import evaluate, space_for
from sysgym.envs.knob_tuning.knobs import Knob, KnobSpace
from sysgym.envs.knob_tuning.server import PostgresServer, t_quantile
from sysgym.envs.knob_tuning.serving import ServingKnobInstance, serving_space
from sysgym.solution import Solution
from sysgym.solvers.base import Solver


def gain_with_ci(best_runs: list[float], default_runs: list[float]) -> tuple[float, float, float]:
    """Relative gain mean(best)/mean(default) - 1 and its 95 % interval (Welch's t on the difference,
    divided by the default mean; the default mean's own uncertainty is ignored)."""
    mb, md = statistics.fmean(best_runs), statistics.fmean(default_runs)
    if md <= 0:
        return math.inf, -math.inf, math.inf
    vb = statistics.variance(best_runs) / len(best_runs) if len(best_runs) > 1 else math.inf
    vd = statistics.variance(default_runs) / len(default_runs) if len(default_runs) > 1 else math.inf
    se = math.sqrt(vb + vd)
    if not math.isfinite(se):
        return mb / md - 1, -math.inf, math.inf
    if se == 0:
        dof = 1
    else:
        denom = (vb**2 / (len(best_runs) - 1)) + (vd**2 / (len(default_runs) - 1))
        dof = max(1, int((vb + vd) ** 2 / denom)) if denom > 0 else 1
    half = t_quantile(dof) * se
    diff = mb - md
    return diff / md, (diff - half) / md, (diff + half) / md


class KnobTuner(Solver):
    """Shared loop; subclasses say how to sample (`_sampler`) and how a trial maps to a configuration."""

    family = "knob_tuning"
    kind = "search"

    def __init__(self, *, trials: int | None = None, reeval_top: int = 2, progress: bool = False,
                 **options: Any):
        super().__init__(trials=trials, reeval_top=reeval_top, progress=progress, **options)
        if int(reeval_top) < 0:
            raise ValueError(f"reeval_top must be >= 0, got {reeval_top}")
        self.trials, self.reeval_top, self.progress = trials, int(reeval_top), bool(progress)

    # -- hooks ---------------------------------------------------------------------------------------------
    def _sampler(self, space: KnobSpace, seed: int):
        raise NotImplementedError

    def _distributions(self, space: KnobSpace) -> dict[str, Any]:
        from optuna.distributions import FloatDistribution

        return {k.name: FloatDistribution(0.0, 1.0) for k in space.knobs}

    def _decode(self, params: dict[str, float], space: KnobSpace) -> dict[str, Any]:
        return {k.name: k.from_unit(params[k.name]) for k in space.knobs}

    def _encode_default(self, space: KnobSpace) -> dict[str, float] | None:
        """The defaults as sampler parameters (told to the sampler as trial 0), or None when not representable."""
        return {k.name: float(u) for k, u in zip(space.knobs, space.to_unit(space.defaults()))}

    # -- the loop ------------------------------------------------------------------------------------------
    def solve(self, instance, *, time_limit: float | None = None, seed: int = 0,
              server: PostgresServer | None = None, callback=None) -> Solution:
        """Tune `instance` (a PgInstance on a real server, or a ServingKnobInstance on the serving simulator)."""
        if isinstance(instance, ServingKnobInstance):
            def measure(cfg, offset, reps=None):
                return evaluate(instance, cfg)

            return self._search(instance, serving_space(), measure, time_limit, seed, callback)
        if server is None:
            with PostgresServer() as srv:
                return self.solve(instance, time_limit=time_limit, seed=seed, server=srv, callback=callback)

        def measure(cfg, offset, reps=None):
            return evaluate(instance, cfg, server=server, repetitions=reps, seed_offset=offset)

        return self._search(instance, space_for(server, instance), measure, time_limit, seed, callback)

    def _search(self, instance, space: KnobSpace, measure, time_limit, seed, callback) -> Solution:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        t0 = time.perf_counter()
        budget = int(self.trials or instance.trials)
        trial_reps = getattr(instance, "repetitions", None)
        sampler = self._sampler(space, seed)
        dists = self._distributions(space)
        study = optuna.create_study(direction="maximize", sampler=sampler)
        history: list[dict[str, Any]] = []
        worst = math.inf
        status = "feasible"
        bar = _Progress(budget, f"{self.name}", enabled=self.progress)
        try:
            for t in range(budget):
                if time_limit is not None and t > 0 and time.perf_counter() - t0 > time_limit:
                    status = "timeout"
                    break
                if t == 0:
                    trial, config = None, space.defaults()
                else:
                    trial = study.ask(dists)
                    config = self._decode(trial.params, space)
                m = measure(config, t, trial_reps)
                if m["crashed"]:
                    value = worst if math.isfinite(worst) else 0.0
                else:
                    value = float(m["objective"])
                    worst = min(worst, value)
                if trial is not None:
                    study.tell(trial, value)
                else:
                    enc = self._encode_default(space)
                    if enc is not None:
                        study.add_trial(optuna.trial.create_trial(params=enc, distributions=dists, value=value))
                rec = {"trial": t, "value": value, "objective": m["objective"], "tps_mean": m.get("tps_mean"),
                       "tps_std": m.get("tps_std"), "latency_ms_mean": m.get("latency_ms_mean"),
                       "crashed": m["crashed"], "error": m["error"], "restarted": m.get("restarted", False),
                       "trial_s": m.get("trial_s", 0.0), "config": config, "metrics": m}
                history.append(rec)
                bar.update(rec, max(h["value"] for h in history))
                if callback is not None:
                    callback(rec)
        finally:
            bar.close()
        search_s = time.perf_counter() - t0
        # re-measure the best few (distinct) configurations and the defaults with the final protocol
        ranked = sorted((h for h in history if not h["crashed"]), key=lambda h: -h["value"])
        candidates, seen = [], set()
        for h in ranked:
            key = repr(sorted(h["config"].items()))
            if key not in seen:
                seen.add(key)
                candidates.append(h)
            if len(candidates) >= self.reeval_top:
                break
        deterministic = bool(history[0]["metrics"].get("deterministic"))
        if self.reeval_top == 0 or deterministic:  # no re-measurement: the search's measurements are the answer
            candidates = []
            default_m = history[0]["metrics"]
        else:
            default_m = measure(space.defaults(), 10_000)
        best, best_m = None, None
        if not candidates and ranked:
            best, best_m = ranked[0], ranked[0]["metrics"]
        for i, h in enumerate(candidates):
            m = default_m if h["trial"] == 0 else measure(h["config"], 10_001 + i)  # trial 0 is the defaults
            if not m["crashed"] and (best_m is None or m["objective"] > best_m["objective"]):
                best, best_m = h, m
        if best is None:  # nothing beat a crash: the defaults are the answer
            best, best_m = history[0], default_m
        if deterministic and default_m["objective"] > 0:
            gain = best_m["objective"] / default_m["objective"] - 1
            lo = hi = gain
        elif default_m.get("objective_runs"):
            gain, lo, hi = gain_with_ci(best_m["objective_runs"], default_m["objective_runs"])
        else:
            gain = lo = hi = math.nan
        decisions = dict(best["config"])
        stats = {"trials_run": len(history), "budget": budget, "crashes": sum(h["crashed"] for h in history),
                 "restarts": sum(bool(h["restarted"]) for h in history), "best_trial": best["trial"],
                 "best_trial_value": best["value"], "default_objective": default_m["objective"],
                 "default_tps": default_m.get("tps_mean"), "default_tps_runs": default_m.get("objective_runs"),
                 "best_tps_runs": best_m.get("objective_runs"), "best_latency_ms": best_m.get("latency_ms_mean"),
                 "default_latency_ms": default_m.get("latency_ms_mean"), "gain": gain, "gain_ci95": [lo, hi],
                 "search_s": search_s, "knobs": space.name, "num_knobs": len(space), "missing_knobs": space.missing,
                 "server_version": space.server_version,
                 "history": [{k: v for k, v in h.items() if k not in ("config", "metrics")} for h in history]}
        return Solution(decisions=decisions, objective=float(best_m["objective"]), status=status,
                        wall_time_s=time.perf_counter() - t0, stats=stats)


class _Progress:
    def __init__(self, total: int, label: str, enabled: bool):
        self.enabled = enabled
        if enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.p = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                              TimeElapsedColumn(), TextColumn("{task.fields[info]}"))
            self.p.start()
            self.task = self.p.add_task(label, total=total, info="")

    def update(self, rec: dict[str, Any], best: float) -> None:
        if self.enabled:
            last = "crash" if rec["crashed"] else f"{rec['tps_mean']:.0f}"
            self.p.update(self.task, advance=1, info=f"last {last} tps, best {best:.0f} tps")

    def close(self) -> None:
        if self.enabled:
            self.p.stop()


# -- LlamaTune's search-space transformations ---------------------------------------------------------------

class LlamaTuneSpace:
    """HeSBO low-dimensional projection + special-value biasing + bucketisation (Kanellis et al., PVLDB 2022).

    Each of the n knobs is tied to one of d latent coordinates y in [-1, 1]^d with a random sign
    (hashing-enhanced subspace BO, Nayebi et al. ICML 2019): x_i = s_i * y_{h(i)}, u_i = (x_i + 1) / 2.
    A knob whose range starts at a special value (-1 or 0: 'off'/'use another knob') takes it when
    u_i < `bias` (LlamaTune: 20 %); the rest of [0, 1] spans the ordinary range. Numeric knobs with more
    than `buckets` distinct values are quantised to `buckets` levels (LlamaTune: 10,000).
    """

    def __init__(self, space: KnobSpace, dim: int, seed: int, bias: float = 0.2, buckets: int = 10_000):
        rng = np.random.default_rng(seed)
        self.space, self.dim = space, max(1, min(int(dim), len(space)))
        self.h = rng.integers(0, self.dim, size=len(space))
        self.s = rng.choice([-1.0, 1.0], size=len(space))
        self.bias, self.buckets = float(bias), int(buckets)

    def decode(self, y: np.ndarray) -> dict[str, Any]:
        x = self.s * np.asarray(y, dtype=float)[self.h]
        u = (x + 1.0) / 2.0
        return {k.name: self._knob_value(k, float(ui)) for k, ui in zip(self.space.knobs, u)}

    def _knob_value(self, k: Knob, u: float) -> Any:
        special = k.special
        if special is not None and self.bias > 0:
            if u < self.bias:
                return int(special) if k.vartype == "integer" else special
            u = (u - self.bias) / (1.0 - self.bias)
        if k.vartype in ("integer", "real") and (k.vartype == "real" or k.hi - k.lo + 1 > self.buckets):
            u = min(math.floor(u * self.buckets), self.buckets - 1) / (self.buckets - 1)
        return k.from_unit(u)
