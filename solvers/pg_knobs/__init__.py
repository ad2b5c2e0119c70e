"""Registered knob-tuning methods: `knob_tuning.{default,random,tpe,gp,cmaes,llamatune}`."""
from __future__ import annotations

import time
from typing import Any

from sysgym.envs.knob_tuning.evaluate import evaluate, space_for
from sysgym.envs.knob_tuning.knobs import KnobSpace
from sysgym.envs.knob_tuning.server import PostgresServer
from sysgym.envs.knob_tuning.serving import ServingKnobInstance, serving_space
from sysgym.solution import Solution
from sysgym.solvers.base import Solver, register

from .tuner import KnobTuner, LlamaTuneSpace


@register
class Default(Solver):
    """The server's defaults, measured with the final protocol (the baseline every gain is against)."""

    name = "knob_tuning.default"
    family = "knob_tuning"
    kind = "baseline"

    def solve(self, instance, *, time_limit: float | None = None, seed: int = 0,
              server: PostgresServer | None = None) -> Solution:
        t0 = time.perf_counter()
        if isinstance(instance, ServingKnobInstance):
            config = serving_space().defaults()
            m = evaluate(instance, config)
        elif server is None:
            with PostgresServer() as srv:
                return self.solve(instance, time_limit=time_limit, seed=seed, server=srv)
        else:
            config = space_for(server, instance).defaults()
            m = evaluate(instance, config, server=server, seed_offset=10_000)
        return Solution(decisions=config, objective=float(m["objective"]), status="feasible",
                        wall_time_s=time.perf_counter() - t0,
                        stats={"default_objective": m["objective"], "default_tps": m.get("tps_mean"),
                               "default_tps_runs": m.get("objective_runs"), "crashed": m["crashed"], "gain": 0.0})


@register
class RandomSearch(KnobTuner):
    """Uniform random configurations in the normalised space (Bergstra & Bengio, JMLR 2012)."""

    name = "knob_tuning.random"

    def __init__(self, *, trials: int | None = None, reeval_top: int = 2, progress: bool = False):
        super().__init__(trials=trials, reeval_top=reeval_top, progress=progress)

    def _sampler(self, space: KnobSpace, seed: int):
        import optuna

        return optuna.samplers.RandomSampler(seed=seed)


@register
class Tpe(KnobTuner):
    """Optuna's TPE (Bergstra et al., NeurIPS 2011), multivariate."""

    name = "knob_tuning.tpe"

    def __init__(self, *, trials: int | None = None, reeval_top: int = 2, progress: bool = False,
                 n_startup_trials: int = 8, multivariate: bool = True):
        super().__init__(trials=trials, reeval_top=reeval_top, progress=progress,
                         n_startup_trials=n_startup_trials, multivariate=multivariate)
        self.n_startup_trials, self.multivariate = int(n_startup_trials), bool(multivariate)

    def _sampler(self, space: KnobSpace, seed: int):
        import optuna

        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=self.n_startup_trials,
                                          multivariate=self.multivariate)


@register
class Gp(KnobTuner):
    """Gaussian-process Bayesian optimisation (Optuna's GPSampler; OtterTune's optimiser family)."""

    name = "knob_tuning.gp"

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


@register
class CmaEs(KnobTuner):
    """CMA-ES (Hansen, 2016) through Optuna's CmaEsSampler (default population 4 + 3 ln n)."""

    name = "knob_tuning.cmaes"

    def __init__(self, *, trials: int | None = None, reeval_top: int = 2, progress: bool = False,
                 popsize: int | None = None):
        super().__init__(trials=trials, reeval_top=reeval_top, progress=progress, popsize=popsize)
        self.popsize = popsize

    def _sampler(self, space: KnobSpace, seed: int):
        import optuna

        return optuna.samplers.CmaEsSampler(seed=seed, popsize=self.popsize, warn_independent_sampling=False)


@register
class LlamaTune(KnobTuner):
    """LlamaTune (Kanellis et al., PVLDB 15(11) 2022) as an Optuna wrapper: the base sampler searches a
    `dim`-dimensional HeSBO projection, with special-value biasing and bucketisation of the knobs."""

    name = "knob_tuning.llamatune"

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
