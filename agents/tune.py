"""`sysgym tune-agent env=... agent=...`: Optuna over an agent's `search_space` (its conf/agent/*.yaml).

TPE sampler and median pruner; every trial is a short training run (`agent.total_timesteps`) under
<run dir>/trials/<n>, scored by its best held-out evaluation (the family's evaluator); each evaluation is
reported to Optuna so the pruner can stop poor trials early. Storage: `sqlite:///<run dir>/optuna.db` by
default, a journal file when `tune.storage` ends in .log/.journal, or any RDB URL (e.g. PostgreSQL) given
there -- several workers with the same storage and study name share one study. The best parameters are
written back as a config file, `<run dir>/best_agent.yaml`, usable as an `agent` config.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from omegaconf import OmegaConf

from sysgym.agents.common import AgentError
from sysgym.agents.envs import setup_from_config
from sysgym.agents.training import _plain, resolve_agent, train


@dataclass
class TuneResult:
    study_name: str
    storage: str
    n_trials: int
    n_pruned: int
    best_value: float
    best_params: dict[str, Any]
    best_config: Path
    metric: str


def storage_for(spec: str | None, run_dir: Path):
    if not spec:
        return f"sqlite:///{(run_dir / 'optuna.db').resolve()}", None
    spec = str(spec)
    if spec.endswith((".log", ".journal")):
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        return spec, JournalStorage(JournalFileBackend(spec))
    return spec, None


@dataclass
class _Searcher:
    """TPE sampler and median pruner of a tuning run; worker i of a Ray search gets seed + i (picklable, as a
    Ray task's argument must be)."""

    n_startup: int
    n_warmup: int
    seed: int | None

    def sampler(self, worker: int = 0) -> optuna.samplers.BaseSampler:
        return optuna.samplers.TPESampler(n_startup_trials=self.n_startup,
                                          seed=None if self.seed is None else self.seed + worker)

    def pruner(self, worker: int = 0) -> optuna.pruners.BasePruner:
        return optuna.pruners.MedianPruner(n_startup_trials=self.n_startup, n_warmup_steps=self.n_warmup)


def sample(trial: optuna.Trial, space: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for name, d in space.items():
        kind = d.get("type")
        if kind == "float":
            out[name] = trial.suggest_float(name, float(d["low"]), float(d["high"]), log=bool(d.get("log", False)))
        elif kind == "int":
            out[name] = trial.suggest_int(name, int(d["low"]), int(d["high"]), log=bool(d.get("log", False)))
        elif kind == "categorical":
            out[name] = trial.suggest_categorical(name, list(d["choices"]))
        else:
            raise AgentError(f"search_space.{name}: type must be float, int or categorical, got {kind!r}")
    return out


def tune(cfg: Any, run_dir: str | Path, cli_overrides: list[str] | tuple[str, ...] = ()) -> TuneResult:
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    tcfg = cfg.get("tune") or {}
    space = _plain(cfg.agent.get("search_space")) or {}
    if not space:
        raise AgentError(f"agent {cfg.agent.get('name')} has no search_space to tune")
    setup = setup_from_config(cfg)
    base = resolve_agent(cfg.agent, setup, cli_overrides)
    if setup.family:
        from sysgym.registry import get_family

        fam = get_family(setup.family)
        metric, direction = fam.objective, ("minimize" if fam.sense == "min" else "maximize")
    else:
        metric, direction = "episode_return", "maximize"
    url, storage_obj = storage_for(tcfg.get("storage"), run_dir)
    name = tcfg.get("study_name") or f"{setup.name}-{base.get('name', base.get('algo'))}"
    seed = tcfg.get("seed")
    searcher = _Searcher(int(tcfg.get("n_startup_trials", 5)), int(tcfg.get("n_warmup_evals", 1)),
                         None if seed is None else int(seed))
    trial_cfg = OmegaConf.merge(cfg, {"progress_bar": False, "tensorboard": False, "checkpoint_freq": 0,
                                      "resume": None, "overwrite": False})

    def objective(trial: optuna.Trial) -> float:
        params = sample(trial, space)
        if "batch_size" in params and "n_steps" in params:  # PPO: a batch must fit in one rollout
            params["batch_size"] = min(params["batch_size"], params["n_steps"] * int(base.get("n_envs") or 1))

        def report(index: int, timesteps: int, mean: float) -> bool:
            trial.report(mean, index)
            return not trial.should_prune()

        res = train(trial_cfg, run_dir / "trials" / f"{trial.number:04d}", cli_overrides,
                    agent_patch={"params": params}, on_eval=report)
        if res.stopped:
            raise optuna.TrialPruned(f"pruned after {res.timesteps} steps")
        if res.best is None:
            raise AgentError("tuning needs evaluations: set eval.instances > 0")
        return res.best

    workers = int(tcfg.get("workers") or 1)
    if workers > 1:  # trials as Ray tasks, all on the one study (sysgym.studies.optimize_on_ray)
        if tcfg.get("timeout") is not None:
            raise AgentError("tune.timeout applies to one process; with tune.workers > 1 bound tune.n_trials")
        from sysgym.studies import optimize_on_ray

        study = optimize_on_ray(name, url, objective, n_trials=int(tcfg.get("n_trials", 20)), workers=workers,
                                direction=direction, sampler_factory=searcher.sampler,
                                pruner_factory=searcher.pruner, address=cfg.get("ray_address"))
    else:
        study = optuna.create_study(storage=storage_obj or url, study_name=name, direction=direction,
                                    load_if_exists=True, sampler=searcher.sampler(0), pruner=searcher.pruner(0))
        study.optimize(objective, n_trials=int(tcfg.get("n_trials", 20)),
                       timeout=None if tcfg.get("timeout") is None else float(tcfg.timeout), catch=())
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not done:
        raise AgentError(f"study {name}: no trial completed")
    best = study.best_trial
    tuned = {**_plain(cfg.agent)}
    tuned["name"] = f"{base.get('name', 'agent')}_tuned"
    tuned.setdefault("overrides", {})
    tuned["overrides"] = {**(tuned["overrides"] or {}),
                          setup.name: {**((tuned["overrides"] or {}).get(setup.name) or {}),
                                       "params": {**(((tuned["overrides"] or {}).get(setup.name) or {}).get("params")
                                                     or {}), **best.params}}}
    out = run_dir / "best_agent.yaml"
    header = (f"# Tuned by `sysgym tune-agent` (study {name}, {len(study.trials)} trials, best {metric}="
              f"{best.value:.6g}); use it as an agent config (copy it into conf/agent/).\n")
    out.write_text(header + OmegaConf.to_yaml(OmegaConf.create(tuned)))
    pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials)
    return TuneResult(name, url, len(study.trials), pruned, float(best.value), dict(best.params), out, metric)
