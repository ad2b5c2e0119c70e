"""Training: one run directory per `sysgym train ...` (config, checkpoints, logs, evaluations, final model).

Run directory layout:
    .hydra/               the composed config (when run through Hydra)
    train_config.yaml     the resolved config (env, agent after per-env overrides, seed, ...)
    agent.json            env id/version, observation layout, algorithm, package versions
    checkpoints/ckpt_<steps>_steps.zip   periodic checkpoints (resume from these)
    evaluations.csv       periodic greedy evaluation, scored by the family's evaluator
    best_model.zip        best evaluated model;  model.zip  final model
    monitor/              per-env episode logs (SB3 Monitor);  tb/  TensorBoard logs
    eval_curve.png        the evaluation curve;  summary.json  timesteps, wall time, env steps/s
"""
from __future__ import annotations

import copy
import csv
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from stable_baselines3.common.callbacks import BaseCallback, CallbackList, CheckpointCallback

from sysgym.agents.algos import check_compatible, default_algo, get_algo
from sysgym.agents.common import META_FILE, AgentError, AgentFileError, check_layout, make_meta, write_json
from sysgym.agents.envs import EnvSetup, can_score, rollout, rollout_instance, setup_from_config
from sysgym.agents.extractors import SetActorCriticPolicy, SetAttentionExtractor, SetMaskablePolicy
from sysgym.env import SysgymEnv
from sysgym.plotting import save_figure

_ACTIVATIONS = {"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU, "elu": torch.nn.ELU, "leaky_relu": torch.nn.LeakyReLU}
_AGENT_KEYS = ("name", "algo", "total_timesteps", "n_envs", "policy", "extractor", "extractor_kwargs",
               "action_head", "action_head_kwargs", "params", "policy_kwargs", "env_kwargs")


def _plain(x: Any) -> Any:
    return OmegaConf.to_container(x, resolve=True) if OmegaConf.is_config(x) else copy.deepcopy(x)


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in (over or {}).items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def resolve_agent(agent_cfg: Any, setup: EnvSetup, cli_overrides: list[str] | tuple[str, ...] = ()) -> dict:
    """The agent's hyperparameters: defaults, then `overrides[<family>]`, then `overrides[<env name or id>]`,
    then the command line's `agent.*` overrides again (the command line wins, as in rl-baselines3-zoo)."""
    raw = _plain(agent_cfg)
    overrides = raw.pop("overrides", None) or {}
    raw.pop("search_space", None)
    out = raw
    for key in (setup.family, setup.name, setup.env_id):
        if key and key in overrides:
            out = _merge(out, overrides[key])
    # Values composed over the packaged agent file (hydra's compose(overrides=[...]) from Python, where no
    # command line reaches us) also win over the per-env overrides, as the command line's do.
    packaged = _packaged_agent(raw.get("name"))
    if packaged:
        out = _merge(out, _changed(raw, packaged))
    cli = [o.lstrip("+") for o in cli_overrides if o.lstrip("+").startswith("agent.")]
    if cli:
        patch = _plain(OmegaConf.from_dotlist([o[len("agent."):] for o in cli]))
        patch = {k: v for k, v in patch.items() if k not in ("overrides", "search_space")}
        out = _merge(out, patch)
    unknown = sorted(set(out) - set(_AGENT_KEYS))
    if unknown:
        raise AgentError(f"unknown agent config key(s) {unknown}; known: {', '.join(_AGENT_KEYS)}")
    return out


def _pipeline_agent(cfg: Any) -> dict | None:
    """The agent config when it names one of `agents/pipelines.py`'s recipes (vm_two_stage, decima), else None."""
    from sysgym.agents.pipelines import PIPELINES

    raw = _plain(cfg.agent)
    return raw if raw.get("algo") in PIPELINES else None


def _packaged_agent(name: Any) -> dict:
    """The agent file shipped in `sysgym/conf/agent/` ({} for a user's own config)."""
    from importlib import resources

    try:
        f = resources.files("sysgym.conf") / "agent" / f"{name}.yaml"
        # parsed as hydra parses it (OmegaConf's YAML), so equal values compare equal
        return OmegaConf.to_container(OmegaConf.create(f.read_text())) if name and f.is_file() else {}
    except (ModuleNotFoundError, OSError):
        return {}


def _changed(now: dict, base: dict) -> dict:
    """The entries of `now` that differ from `base` (recursively)."""
    out = {}
    for k, v in now.items():
        if k in ("overrides", "search_space"):
            continue
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            sub = _changed(v, base[k])
            if sub:
                out[k] = sub
        elif k not in base or base[k] != v:
            out[k] = copy.deepcopy(v)
    return out


def build_model(agent: dict, vec_env: Any, seed: int, tensorboard_log: str | None, algo_name: str):
    spec = get_algo(algo_name)
    cls = spec.load_class()
    from gymnasium import spaces

    obs_space = vec_env.observation_space
    pk = dict(agent.get("policy_kwargs") or {})
    if isinstance(pk.get("activation_fn"), str):
        try:
            pk["activation_fn"] = _ACTIVATIONS[pk["activation_fn"]]
        except KeyError:
            raise AgentError(f"unknown activation_fn {pk['activation_fn']!r}; known: {', '.join(_ACTIVATIONS)}") \
                from None
    extractor = agent.get("extractor") or "mlp"
    head = agent.get("action_head")
    policy = agent.get("policy") or ("MultiInputPolicy" if isinstance(obs_space, spaces.Dict) else "MlpPolicy")
    if extractor == "set_attention":
        ek = dict(agent.get("extractor_kwargs") or {})
        if head:
            hk = agent.get("action_head_kwargs") or {}
            ek["token_keys"] = [hk.get("rows"), hk.get("cols")]
            if hk.get("pair"):
                ek["pair_keys"] = [hk["pair"]]
        pk["features_extractor_class"] = SetAttentionExtractor
        pk["features_extractor_kwargs"] = ek
    elif extractor != "mlp":
        raise AgentError(f"unknown extractor {extractor!r}; known: mlp, set_attention")
    if head:
        if head != "pair":
            raise AgentError(f"unknown action_head {head!r}; known: pair")
        if extractor != "set_attention":
            raise AgentError("action_head=pair needs extractor=set_attention")
        if algo_name == "maskable_ppo":
            policy = SetMaskablePolicy
        elif algo_name in ("ppo", "a2c"):
            policy = SetActorCriticPolicy
        else:
            raise AgentError(f"action_head=pair works with maskable_ppo, ppo and a2c, not {algo_name}")
        pk["action_head"] = {"type": "pair", **(agent.get("action_head_kwargs") or {})}
    params = {k: _schedule(k, v) for k, v in dict(agent.get("params") or {}).items()}
    try:
        return cls(policy, vec_env, seed=seed, device="cpu", verbose=0, tensorboard_log=tensorboard_log,
                   policy_kwargs=pk, **params)
    except TypeError as exc:
        raise AgentError(f"bad hyperparameters for {algo_name}: {exc}") from None


def _schedule(key: str, value: Any) -> Any:
    """rl-baselines3-zoo's `lin_<v>`: a value falling linearly from v to 0 over total_timesteps."""
    if not (isinstance(value, str) and value.startswith("lin_")):
        return value
    try:
        start = float(value[len("lin_"):])
    except ValueError:
        raise AgentError(f"agent.params.{key}={value!r}: a schedule is lin_<number>, e.g. lin_0.001") from None
    return _Linear(start)


class _Linear:
    """A picklable linear schedule (SB3 passes progress_remaining, 1 -> 0)."""

    def __init__(self, start: float):
        self.start = start

    def __call__(self, progress_remaining: float) -> float:
        return progress_remaining * self.start


def make_vec(setup: EnvSetup, n_envs: int, seed: int, kind: str, monitor_dir: str | None,
             ray_address: str | None = None):
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    if kind not in ("auto", "dummy", "subproc", "ray"):
        raise AgentError(f"vec_env must be auto, dummy, subproc or ray, got {kind!r}")
    if kind == "auto":  # subprocesses pay only when every env gets a core of its own besides the learner
        kind = "subproc" if n_envs > 1 and (os.cpu_count() or 1) >= 2 * n_envs else "dummy"
    kwargs: dict[str, Any] = {}
    if kind == "ray":  # sub-envs in Ray actors on the cluster at ray_address (sysgym.agents.ray_vec_env)
        try:
            from sysgym.agents.ray_vec_env import RayVecEnv
        except ImportError as exc:
            raise AgentError(f"vec_env=ray needs Ray: pip install 'sysgym[ray]' ({exc})") from None
        cls, kwargs = RayVecEnv, {"address": ray_address}
    else:
        cls = SubprocVecEnv if kind == "subproc" else DummyVecEnv
    return make_vec_env(setup.make, n_envs=n_envs, seed=seed, vec_env_cls=cls, monitor_dir=monitor_dir,
                        vec_env_kwargs=kwargs), kind


class _SwitchMode(Exception):
    """Internal: the evaluation fell back from the family evaluator to the episode return."""


class FamilyEvalCallback(BaseCallback):
    """Every `freq` env steps: greedy rollouts on held-out instances, scored by the family's evaluator
    (plain Gymnasium envs: the episode return); logs `eval/<metric>`, writes evaluations.csv, keeps
    best_model.zip. `history` holds (timesteps, mean score) pairs."""

    def __init__(self, setup: EnvSetup, meta: dict, run_dir: Path, freq: int, n: int, seed_offset: int,
                 on_eval: Any = None, max_steps: int = 100_000):
        super().__init__()
        self.max_steps = int(max_steps)
        self.on_eval, self.stop = on_eval, False
        self.setup, self.meta, self.run_dir = setup, meta, run_dir
        self.freq, self.n, self.seed_offset = int(freq), int(n), int(seed_offset)
        self.history: list[tuple[int, float]] = []
        self.last = -1
        self.mode = "return"
        if setup.family and can_score(setup):
            from sysgym.registry import get_family

            fam = get_family(setup.family)
            self.fam, self.metric, self.sense = fam, fam.objective, fam.sense
            # the env group names a preset: held-out instances from the family's generator; a bare env id:
            # the instances the env itself draws from the held-out seeds
            self.mode = "generate" if setup.preset is not None else "env"
            self.instances = [setup.instance(seed_offset + i) for i in range(self.n)] if self.mode == "generate" \
                else []
        else:
            self.fam, self.metric, self.sense, self.instances = None, "episode_return", "max", []
        self.best: float | None = None
        self.csv = run_dir / "evaluations.csv"

    def evaluate(self) -> tuple[float, list[float]]:
        from sysgym.agents.policy import from_model

        policy = from_model(self.model, self.meta)
        scores = []
        if self.mode == "generate":
            lk = self.meta["env_kwargs"]
            for inst in self.instances:
                env = self.setup.make_for_instance(inst, lk)
                scores.append(self._score(inst, policy, env, 0))
                env.close()
        elif self.mode == "env":
            env = self.setup.make()
            try:
                for i in range(self.n):
                    scores.append(self._score(None, policy, env, self.seed_offset + i))
            except _SwitchMode:
                env.close()
                return self.evaluate()
            env.close()
        else:
            env = self.setup.make()
            for i in range(self.n):
                scores.append(rollout(policy, env, None, seed=self.seed_offset + i,
                                      max_steps=self.max_steps).total_reward)
            env.close()
        return float(np.mean(scores)), scores

    def _score(self, inst: Any, policy: Any, env: Any, seed: int) -> float:
        from sysgym.solution import Solution

        t0 = time.perf_counter()
        if inst is None:
            ro = rollout(policy, env, self.setup.family, seed=seed, max_steps=self.max_steps)
            inst = getattr(env.unwrapped, "instance", None)
        else:
            ro, _ = rollout_instance(policy, env, self.setup.family, inst, seed=seed, max_steps=self.max_steps)
        sol = Solution(ro.decisions, np.nan, "feasible", time.perf_counter() - t0)
        try:
            if inst is None:
                raise AgentError(f"{self.setup.env_id} keeps no `instance` to score")
            return float(self.fam.evaluate(inst, sol)[self.metric])
        except Exception as exc:
            if self.mode != "env" or self.history:
                raise
            # first evaluation of a bare env id whose episodes the family evaluator cannot score: say so
            # once and rank by the episode return instead (recorded in summary.json as eval_mode)
            from rich.console import Console

            Console(stderr=True).print(f"[yellow]warning[/]: {self.setup.env_id}: the {self.setup.family} "
                                       f"evaluator cannot score a rollout ({type(exc).__name__}: {exc}); "
                                       "evaluating by episode return")
            self.mode, self.fam, self.metric, self.sense = "return", None, "episode_return", "max"
            raise _SwitchMode from None

    def _run(self) -> None:
        if self.n <= 0 or self.num_timesteps == self.last:
            return
        self.last = self.num_timesteps
        mean, scores = self.evaluate()
        self.history.append((self.num_timesteps, mean))
        self.logger.record(f"eval/{self.metric}", mean)
        new = not self.csv.exists()
        with self.csv.open("a", newline="") as fh:
            w = csv.writer(fh)
            if new:
                w.writerow(["timesteps", f"mean_{self.metric}", "scores"])
            w.writerow([self.num_timesteps, repr(mean), " ".join(repr(s) for s in scores)])
        better = self.best is None or (mean < self.best if self.sense == "min" else mean > self.best)
        if better:
            self.best = mean
            self.model.save(str(self.run_dir / "best_model.zip"))
        if self.on_eval is not None and self.on_eval(len(self.history) - 1, self.num_timesteps, mean) is False:
            self.stop = True

    def _on_training_start(self) -> None:
        self._run()

    def _on_step(self) -> bool:
        if self.freq > 0 and self.num_timesteps - max(self.last, 0) >= self.freq:
            self._run()
        return not self.stop

    def _on_training_end(self) -> None:
        if not self.stop:
            self._run()


class TimeLimitCallback(BaseCallback):
    """Stops training after `seconds` of wall time (`time_limit_min` in the train config)."""

    def __init__(self, seconds: float):
        super().__init__()
        self.seconds, self.t0, self.hit = float(seconds), None, False

    def _on_training_start(self) -> None:
        self.t0 = time.perf_counter()

    def _on_step(self) -> bool:
        self.hit = time.perf_counter() - self.t0 >= self.seconds
        return not self.hit


@dataclass
class TrainResult:
    run_dir: Path
    model_path: Path
    timesteps: int
    wall_time_s: float
    steps_per_s: float
    history: list[tuple[int, float]]
    metric: str
    best: float | None
    stopped: bool = False  # on_eval asked to stop (a pruned tuning trial)


def saved_timesteps(path: Path) -> int:
    """The training steps an SB3 zip was saved at (`num_timesteps` in its `data` member)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as zf:
            return int(json.loads(zf.read("data")).get("num_timesteps", -1))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise AgentFileError(f"resume: {path} is not a readable stable-baselines3 model ({exc})") from None


def latest_checkpoint(path: Path) -> Path:
    """A checkpoint file passes through; a run directory gives its newest state: the final model.zip or the
    last periodic checkpoint, whichever was saved at more steps (a run that finished and is then extended must
    not restart from its last checkpoint, thousands of steps back)."""
    path = Path(path)
    if path.is_file():
        return path
    if not path.exists():
        raise AgentFileError(f"resume: {path} does not exist")
    found = [p for p in (path / "checkpoints").glob("ckpt_*_steps.zip") if p.stem.split("_")[1].isdigit()]
    if (path / "model.zip").is_file():
        found.append(path / "model.zip")
    if not found:
        raise AgentFileError(f"resume: {path} holds no checkpoints/ckpt_*_steps.zip and no model.zip")
    # On equal steps the final model wins (it is the same state, saved last).
    return max(found, key=lambda p: (saved_timesteps(p), p.name == "model.zip"))


def _guard_run_dir(run_dir: Path, overwrite: bool) -> None:
    used = [p for p in ("model.zip", "best_model.zip", "checkpoints", "evaluations.csv", "policy.pt", "decima.pt")
            if (run_dir / p).exists()]  # the last two: agents/pipelines.py's runs
    if used and not overwrite:
        raise AgentError(f"run directory {run_dir} already holds a run ({', '.join(used)}); refusing to overwrite "
                         "it: choose another hydra.run.dir, or pass overwrite=true")


def train(cfg: DictConfig, run_dir: str | Path, cli_overrides: list[str] | tuple[str, ...] = (), *,
          agent_patch: dict | None = None, on_eval: Any = None) -> TrainResult:
    """Train the configured agent on the configured env into `run_dir` (see the module docstring).

    `agent_patch` is merged over the resolved agent config (the tuner's sampled hyperparameters);
    `on_eval(index, timesteps, mean)` is called after each evaluation and stops training by returning False.
    """
    torch.set_num_threads(int(cfg.get("torch_threads", 1)))
    run_dir = Path(run_dir)
    pipeline = _pipeline_agent(cfg)
    if pipeline is not None:  # the shipped policies' own trainers (agents/pipelines.py), not an SB3 learner
        from sysgym.agents import pipelines

        if agent_patch or on_eval is not None:
            raise AgentError(f"agent {pipeline['algo']} is not a stable-baselines3 agent: tune-agent cannot tune it")
        setup = setup_from_config(cfg)
        pipelines.check(pipeline, setup.family)
        run_dir.mkdir(parents=True, exist_ok=True)
        _guard_run_dir(run_dir, bool(cfg.get("overwrite", False)))
        return pipelines.train_pipeline(pipeline, setup.family, int(cfg.seed), run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    _guard_run_dir(run_dir, bool(cfg.get("overwrite", False)))
    setup = setup_from_config(cfg)
    agent = _merge(resolve_agent(cfg.agent, setup, cli_overrides), agent_patch or {})
    # the agent's own env options (e.g. the observation its extractor expects); the run's env_kwargs win
    setup.env_kwargs = {**(agent.get("env_kwargs") or {}), **setup.env_kwargs}
    seed = int(cfg.seed)
    probe = setup.make()
    algo_name = agent.get("algo") or "auto"
    if algo_name == "auto":
        algo_name = default_algo(probe)
    spec = get_algo(algo_name)
    check_compatible(spec, probe, setup.env_id, setup.env_kwargs)
    layout = probe.unwrapped.layout_kwargs() if isinstance(probe.unwrapped, SysgymEnv) else {}
    layout_kwargs = {**setup.env_kwargs, **layout}
    meta = make_meta(env_id=setup.env_id, family=setup.family, env_kwargs=layout_kwargs, algo=algo_name,
                     observation_space=probe.observation_space, action_space=probe.action_space,
                     masked=spec.uses_masks, extra={"env_setup": setup.to_dict(), "agent": agent, "seed": seed})
    probe.close()
    write_json(run_dir / META_FILE, meta)
    resolved = {k: _plain(v) for k, v in cfg.items() if k not in ("agent", "hydra")}
    resolved["agent"] = agent
    OmegaConf.save(OmegaConf.create(resolved), run_dir / "train_config.yaml")

    n_envs = int(agent.get("n_envs") or 1)
    (run_dir / "monitor").mkdir(exist_ok=True)
    vec, vec_kind = make_vec(setup, n_envs, seed, str(cfg.get("vec_env", "auto")), str(run_dir / "monitor"),
                             ray_address=cfg.get("ray_address"))
    tb = None
    if cfg.get("tensorboard", True):
        try:
            import tensorboard  # noqa: F401

            tb = str(run_dir / "tb")
        except ImportError:
            tb = None
    total = int(agent["total_timesteps"])
    try:
        if cfg.get("resume"):
            ckpt = latest_checkpoint(Path(str(cfg.resume)))
            from sysgym.agents.policy import load_sb3

            src_meta_dir = ckpt.parent if (ckpt.parent / META_FILE).is_file() else ckpt.parent.parent
            from sysgym.agents.common import read_meta

            src_meta = read_meta(src_meta_dir / META_FILE)
            if src_meta["algo"] != algo_name or src_meta["env_id"] != setup.env_id:
                raise AgentError(f"resume: {ckpt} is a {src_meta['algo']} agent for {src_meta['env_id']}; this run "
                                 f"trains {algo_name} on {setup.env_id}")
            check_layout(src_meta, vec.observation_space, ckpt)
            model, _ = load_sb3(ckpt, meta=src_meta)
            model.set_env(vec)
            model.tensorboard_log = tb
            remaining = max(total - int(model.num_timesteps), 0)
            reset = False
        else:
            model = build_model(agent, vec, seed, tb, algo_name)
            remaining, reset = total, True
        ev = cfg.get("eval") or {}
        evalcb = FamilyEvalCallback(setup, meta, run_dir, int(ev.get("freq", 0)), int(ev.get("instances", 0)),
                                    int(ev.get("seed_offset", 1_000_000)), on_eval=on_eval,
                                    max_steps=int(ev.get("max_steps", 100_000)))
        if tb is None:
            # Without TensorBoard, SB3 would configure its default logger, which creates an empty
            # SB3-<timestamp> folder in the system temp directory on every learn() call: log nowhere instead.
            from stable_baselines3.common.logger import Logger

            model.set_logger(Logger(folder=None, output_formats=[]))
        callbacks = [evalcb]
        if int(cfg.get("checkpoint_freq", 0)) > 0:
            callbacks.append(CheckpointCallback(max(int(cfg.checkpoint_freq) // n_envs, 1),
                                                str(run_dir / "checkpoints"), name_prefix="ckpt"))
        if cfg.get("time_limit_min"):
            callbacks.append(TimeLimitCallback(60.0 * float(cfg.time_limit_min)))
        t0 = time.perf_counter()
        start_steps = int(model.num_timesteps)
        model.learn(remaining, callback=CallbackList(callbacks), progress_bar=bool(cfg.get("progress_bar", False)),
                    reset_num_timesteps=reset, tb_log_name="run")
        wall = time.perf_counter() - t0
    finally:
        vec.close()
    model_path = run_dir / "model.zip"
    model.save(str(model_path))
    done = int(model.num_timesteps) - start_steps
    summary = {"timesteps": int(model.num_timesteps), "trained_steps": done, "wall_time_s": wall,
               "steps_per_s": done / wall if wall > 0 else None, "vec_env": vec_kind, "n_envs": n_envs,
               "algo": algo_name, "eval_mode": evalcb.mode, "metric": evalcb.metric, "best": evalcb.best,
               "history": evalcb.history}
    write_json(run_dir / "summary.json", summary)
    if evalcb.history:
        plot_curve(evalcb.history, evalcb.metric, run_dir / "eval_curve.png", title=f"{algo_name} on {setup.name}")
    return TrainResult(run_dir, model_path, int(model.num_timesteps), wall, summary["steps_per_s"] or 0.0,
                       evalcb.history, evalcb.metric, evalcb.best, evalcb.stop)


def plot_curve(history: list[tuple[int, float]], metric: str, path: Path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    xs, ys = zip(*history)
    ax.plot(xs, ys, marker="o")
    ax.set_xlabel("env steps")
    ax.set_ylabel(f"held-out {metric}")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    save_figure(fig, path, dpi=100)
