"""Black-box knob tuners driven through Optuna's ask/tell interface, shared by both knob families.

The same methods tune a real PostgreSQL (`sysgym.solvers.pg_knobs`) and the serving engine's knobs on the
LLM-serving simulator (`sysgym.solvers.serving_knobs`): each family gives a `TuningProblem` (its knob space
and one measurement through its evaluator) and `register_methods` registers `<family>.<method>` for every
method in `METHODS`. The old names `knob_tuning.<method>` are aliases: they resolve to the method of the
instance's family (`sysgym.registry.register_solver_alias`; `pg_knobs` when no family is given).

Every method gets the same protocol: trial 0 measures the defaults, then `trials - 1` configurations chosen by
the method, each scored by the family evaluator. A crash scores the worst value seen so far
(OtterTune/LlamaTune). Against noise (real measurements), the top `reeval_top` configurations and the defaults
are re-measured with the instance's final protocol and the best re-measured one is returned; its gain over the
defaults comes with a 95 % confidence interval (`reeval_top=0`: no re-measurement, the best search measurement
is returned — cheaper, optimistic). A deterministic problem (a simulator) is never re-measured.

`time_limit` bounds the search's wall time (pass `time_limit=null` to the Hydra app for a full budget).
"""
from __future__ import annotations

import contextlib
import math
import time
from typing import Any, ClassVar

import numpy as np

from sysgym.envs.knob_space import Knob, KnobSpace
from sysgym.registry import register_solver_alias
from sysgym.solution import Solution
from sysgym.solver import Solver, register

METHODS = ("default", "random", "tpe", "gp", "cmaes", "llamatune")


class TuningProblem:
    """One instance of a knob family as the tuners see it: the knob space and a measurement.

    Families subclass it (`sysgym.solvers.pg_knobs.PgProblem`, `sysgym.solvers.serving_knobs.ServingProblem`).
    """

    objective: ClassVar[str] = ""  # the family's objective in the evaluator's metrics (maximised)
    deterministic: ClassVar[bool] = False  # measurements repeat exactly (no re-measurement against noise)

    def __init__(self, instance: Any, space: KnobSpace):
        self.instance, self.space = instance, space

    @property
    def trial_repetitions(self) -> int | None:
        """Measured runs per search trial (None: the evaluator's default)."""
        return None

    def measure(self, config: dict[str, Any], seed_offset: int, repetitions: int | None = None) -> dict[str, Any]:
        """The family evaluator's metrics of `config` (a crash is `metrics["crashed"]`, never an exception)."""
        raise NotImplementedError

    def value(self, metrics: dict[str, Any]) -> float:
        return float(metrics[self.objective])

    def runs(self, metrics: dict[str, Any]) -> list[float]:
        """The objective's measured runs (empty for a crash)."""
        return [] if metrics["crashed"] else [self.value(metrics)]

    def gain(self, best: dict[str, Any], default: dict[str, Any]) -> tuple[float, float, float]:
        """Relative gain of `best` over `default` with its 95 % interval (exact for a deterministic problem)."""
        if not self.runs(default):
            return math.nan, math.nan, math.nan
        d = self.value(default)
        if d <= 0:
            return math.inf, -math.inf, math.inf
        g = self.value(best) / d - 1
        return g, g, g

    def show(self, value: float) -> str:
        """A value for the progress bar."""
        return f"{value:.4g}"


class KnobTuning:
    """A family's hook for the shared methods: `family` and `open(instance, **context)`, a context manager
    giving the instance's `TuningProblem` (and, for a real server, starting and removing it)."""

    family: ClassVar[str] = ""

    def open(self, instance: Any, **context: Any) -> contextlib.AbstractContextManager[TuningProblem]:
        raise NotImplementedError


class Default(KnobTuning, Solver):
    """The defaults, measured with the final protocol (the baseline every gain is against)."""

    kind = "baseline"

    def __init__(self):
        super().__init__()

    def solve(self, instance, *, time_limit: float | None = None, seed: int = 0, **context: Any) -> Solution:
        with self.open(instance, **context) as problem:
            t0 = time.perf_counter()
            config = problem.space.defaults()
            m = problem.measure(config, 10_000)
            return Solution(decisions=config, objective=problem.value(m), status="feasible",
                            wall_time_s=time.perf_counter() - t0,
                            stats={"default_objective": problem.value(m), "default_tps": m.get("tps_mean"),
                                   "default_tps_runs": problem.runs(m), "crashed": m["crashed"], "gain": 0.0})


class KnobTuner(KnobTuning, Solver):
    """Shared loop; subclasses say how to sample (`_sampler`) and how a trial maps to a configuration."""

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
    def solve(self, instance, *, time_limit: float | None = None, seed: int = 0, callback=None,
              **context: Any) -> Solution:
        """Tune `instance`; `context` is the family's (e.g. `server=` for PostgreSQL); `callback(record)` sees
        every trial."""
        with self.open(instance, **context) as problem:
            return self._search(problem, time_limit, seed, callback)

    def _search(self, problem: TuningProblem, time_limit, seed, callback) -> Solution:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        t0 = time.perf_counter()
        space, measure = problem.space, problem.measure
        budget = int(self.trials or problem.instance.trials)
        trial_reps = problem.trial_repetitions
        sampler = self._sampler(space, seed)
        dists = self._distributions(space)
        study = optuna.create_study(direction="maximize", sampler=sampler)
        history: list[dict[str, Any]] = []
        worst = math.inf
        status = "feasible"
        bar = _Progress(budget, f"{self.name}", problem, enabled=self.progress)
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
                    value = problem.value(m)
                    worst = min(worst, value)
                if trial is not None:
                    study.tell(trial, value)
                else:
                    enc = self._encode_default(space)
                    if enc is not None:
                        study.add_trial(optuna.trial.create_trial(params=enc, distributions=dists, value=value))
                rec = {"trial": t, "value": value, "objective": problem.value(m), "tps_mean": m.get("tps_mean"),
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
        if self.reeval_top == 0 or problem.deterministic:  # no re-measurement: the search's measurements count
            candidates = []
            default_m = history[0]["metrics"]
        else:
            default_m = measure(space.defaults(), 10_000)
        best, best_m = None, None
        if not candidates and ranked:
            best, best_m = ranked[0], ranked[0]["metrics"]
        for i, h in enumerate(candidates):
            m = default_m if h["trial"] == 0 else measure(h["config"], 10_001 + i)  # trial 0 is the defaults
            if not m["crashed"] and (best_m is None or problem.value(m) > problem.value(best_m)):
                best, best_m = h, m
        if best is None:  # nothing beat a crash: the defaults are the answer
            best, best_m = history[0], default_m
        gain, lo, hi = problem.gain(best_m, default_m)
        decisions = dict(best["config"])
        stats = {"trials_run": len(history), "budget": budget, "crashes": sum(h["crashed"] for h in history),
                 "restarts": sum(bool(h["restarted"]) for h in history), "best_trial": best["trial"],
                 "best_trial_value": best["value"], "default_objective": problem.value(default_m),
                 "default_tps": default_m.get("tps_mean"), "default_tps_runs": problem.runs(default_m),
                 "best_tps_runs": problem.runs(best_m), "best_latency_ms": best_m.get("latency_ms_mean"),
                 "default_latency_ms": default_m.get("latency_ms_mean"), "gain": gain, "gain_ci95": [lo, hi],
                 "search_s": search_s, "knobs": space.name, "num_knobs": len(space), "missing_knobs": space.missing,
                 "server_version": space.server_version,
                 "history": [{k: v for k, v in h.items() if k not in ("config", "metrics")} for h in history]}
        return Solution(decisions=decisions, objective=problem.value(best_m), status=status,
                        wall_time_s=time.perf_counter() - t0, stats=stats)


class _Progress:
    def __init__(self, total: int, label: str, problem: TuningProblem, enabled: bool):
        self.enabled, self.problem = enabled, problem
        if enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.p = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                              TimeElapsedColumn(), TextColumn("{task.fields[info]}"))
            self.p.start()
            self.task = self.p.add_task(label, total=total, info="")

    def update(self, rec: dict[str, Any], best: float) -> None:
        if self.enabled:
            last = "crash" if rec["crashed"] else self.problem.show(rec["objective"])
            self.p.update(self.task, advance=1, info=f"last {last}, best {self.problem.show(best)}")

    def close(self) -> None:
        if self.enabled:
            self.p.stop()


class RandomSearch(KnobTuner):
    """Uniform random configurations in the normalised space (Bergstra & Bengio, JMLR 2012)."""

    def __init__(self, *, trials: int | None = None, reeval_top: int = 2, progress: bool = False):
        super().__init__(trials=trials, reeval_top=reeval_top, progress=progress)

    def _sampler(self, space: KnobSpace, seed: int):
        import optuna

        return optuna.samplers.RandomSampler(seed=seed)


class Tpe(KnobTuner):
    """Optuna's TPE (Bergstra et al., NeurIPS 2011), multivariate."""

    def __init__(self, *, trials: int | None = None, reeval_top: int = 2, progress: bool = False,
                 n_startup_trials: int = 8, multivariate: bool = True):
        super().__init__(trials=trials, reeval_top=reeval_top, progress=progress,
                         n_startup_trials=n_startup_trials, multivariate=multivariate)
        self.n_startup_trials, self.multivariate = int(n_startup_trials), bool(multivariate)

    def _sampler(self, space: KnobSpace, seed: int):
        import optuna

        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=self.n_startup_trials,
                                          multivariate=self.multivariate)


class Gp(KnobTuner):
    """Gaussian-process Bayesian optimisation (Optuna's GPSampler; OtterTune's optimiser family)."""

    def __init__(self, *, trials: int | None = None, reeval_top: int = 2, progress: bool = False,
                 n_startup_trials: int = 8):
        super().__init__(trials=trials, reeval_top=reeval_top, progress=progress,
                         n_startup_trials=n_startup_trials)
        self.n_startup_trials = int(n_startup_trials)

    def _sampler(self, space: KnobSpace, seed: int):
        import optuna
        import torch

        torch.set_num_threads(1)
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=self.n_startup_trials,
                                         deterministic_objective=False)


class CmaEs(KnobTuner):
    """CMA-ES (Hansen, 2016) through Optuna's CmaEsSampler (default population 4 + 3 ln n)."""

    def __init__(self, *, trials: int | None = None, reeval_top: int = 2, progress: bool = False,
                 popsize: int | None = None):
        super().__init__(trials=trials, reeval_top=reeval_top, progress=progress, popsize=popsize)
        self.popsize = popsize

    def _sampler(self, space: KnobSpace, seed: int):
        import optuna

        return optuna.samplers.CmaEsSampler(seed=seed, popsize=self.popsize, warn_independent_sampling=False)


class LlamaTune(KnobTuner):
    """LlamaTune (Kanellis et al., PVLDB 15(11) 2022) as an Optuna wrapper: the base sampler searches a
    `dim`-dimensional HeSBO projection, with special-value biasing and bucketisation of the knobs."""

    def __init__(self, *, trials: int | None = None, reeval_top: int = 2, progress: bool = False, dim: int = 16,
                 bias: float = 0.2, buckets: int = 10_000, base: str = "tpe", n_startup_trials: int = 8):
        super().__init__(trials=trials, reeval_top=reeval_top, progress=progress, dim=dim, bias=bias,
                         buckets=buckets, base=base, n_startup_trials=n_startup_trials)
        if base not in ("tpe", "gp", "random"):
            raise ValueError(f"llamatune base sampler must be 'tpe', 'gp' or 'random', got {base!r}")
        self.dim, self.bias, self.buckets, self.base = int(dim), float(bias), int(buckets), base
        self.n_startup_trials = int(n_startup_trials)
        self._proj: LlamaTuneSpace | None = None

    def _projection(self, space: KnobSpace) -> LlamaTuneSpace:
        if self._proj is None or self._proj.space is not space:
            self._proj = LlamaTuneSpace(space, self.dim, seed=self._seed, bias=self.bias, buckets=self.buckets)
        return self._proj

    def _sampler(self, space: KnobSpace, seed: int):
        import optuna

        self._seed, self._proj = seed, None
        if self.base == "gp":
            import torch

            torch.set_num_threads(1)
            return optuna.samplers.GPSampler(seed=seed, n_startup_trials=self.n_startup_trials)
        if self.base == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=self.n_startup_trials, multivariate=True)

    def _distributions(self, space: KnobSpace) -> dict[str, Any]:
        from optuna.distributions import FloatDistribution

        dim = self._projection(space).dim
        return {f"y{i}": FloatDistribution(-1.0, 1.0) for i in range(dim)}

    def _decode(self, params: dict[str, float], space: KnobSpace) -> dict[str, Any]:
        proj = self._projection(space)
        return proj.decode([params[f"y{i}"] for i in range(proj.dim)])

    def _encode_default(self, space: KnobSpace) -> dict[str, float] | None:
        return None  # the defaults are generally not a point of the projected space


BASES: dict[str, type[Solver]] = {"default": Default, "random": RandomSearch, "tpe": Tpe, "gp": Gp, "cmaes": CmaEs,
                                  "llamatune": LlamaTune}


def register_methods(tuning: type[KnobTuning]) -> dict[str, type[Solver]]:
    """Register `<family>.<method>` for every method in `METHODS`, for the family whose hook is `tuning`
    (a `KnobTuning` subclass setting `family` and `open`); returns {method: class}."""
    family = tuning.family
    out = {}
    for method in METHODS:
        base = BASES[method]
        cls = type(f"{tuning.__name__}{base.__name__}", (tuning, base),
                   {"name": f"{family}.{method}", "family": family, "__doc__": base.__doc__,
                    "__module__": tuning.__module__})
        out[method] = register(cls)
    return out


# The names from before the family split: the method of whichever knob family the instance (or env) is.
for _method in METHODS:
    register_solver_alias(f"knob_tuning.{_method}", {"pg_knobs": f"pg_knobs.{_method}",
                                                     "serving_knobs": f"serving_knobs.{_method}"})


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
