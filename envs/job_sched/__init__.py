"""Multi-user cluster job scheduling: Spark-like DAG jobs on shared executors (Decima, UWFQ).

Here: the instance (`instance.py`), its generator (`generator.py`, `GENERATOR`), trace loaders (`traces.py`),
the simulator and the policy protocol it calls (`simulator.py`), the evaluator (`evaluate.py`), the metrics,
the env (`env.py`, `sysgym/JobSched-v0`) and the per-user plot. The policies themselves are solvers
(`sysgym.solvers.job_sched`); a named policy is found through the core registry.

Public API: `generate(*, seed, preset, num_executors, num_users, num_jobs, setting, **params)` (`SETTINGS`:
"shared_app", "multi_app"), `simulate(instance, policy,
*, seed=0, **options) -> SimResult` (`.metrics`, `.schedule`), `evaluate(instance, solution)`, `load(path)` (saved
instances and Google 2019 / Alibaba 2018 trace files), `make_policy(name, **options)`, `policy_names()`.
"""
from sysgym.envs.job_sched.evaluate import evaluate
from sysgym.envs.job_sched.generator import GENERATOR, PRESETS, generate, offered_load
from sysgym.envs.job_sched.instance import SETTINGS, JobInstance, build, load, partition_runtime, save
from sysgym.envs.job_sched.simulator import SchedulingPolicy, SimResult, Simulator, make_policy, policy_names, simulate

__all__ = ["GENERATOR", "PRESETS", "SETTINGS", "JobInstance", "SchedulingPolicy", "SimResult", "Simulator", "build",
           "evaluate", "generate", "load", "make_policy", "offered_load", "partition_runtime", "policy_names", "save",
           "simulate"]
