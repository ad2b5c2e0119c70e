"""Multi-user cluster job scheduling: Spark-like DAG jobs on shared executors (Decima, UWFQ).

Public API: `generate(*, num_executors, num_users, num_jobs, seed, **params)`, `simulate(instance, policy, *,
seed=0) -> SimResult` (`.metrics`, `.schedule`), `evaluate(instance, solution)`, `load(path)` (saved
instances and Google 2019 / Alibaba 2018 trace files), `POLICIES`.
"""
from sysgym.envs.job_sched.evaluate import evaluate
from sysgym.envs.job_sched.generator import PRESETS, generate, offered_load
from sysgym.envs.job_sched.instance import JobInstance, build, load, partition_runtime, save
from sysgym.envs.job_sched.policies import POLICIES, make_policy
from sysgym.envs.job_sched.simulator import SimResult, Simulator, simulate

__all__ = ["POLICIES", "PRESETS", "JobInstance", "SimResult", "Simulator", "build", "evaluate", "generate", "load",
           "make_policy", "offered_load", "partition_runtime", "save", "simulate"]
