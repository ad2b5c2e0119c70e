"""Registers the job-scheduling family and `sysgym/JobSched-v0`."""
from sysgym.envs.job_sched.evaluate import evaluate
from sysgym.envs.job_sched.generator import PRESETS, generate
from sysgym.envs.job_sched.instance import load
from sysgym.registry import Family, register_env, register_family

register_family(Family(
    name="job_sched", generate=generate, presets=PRESETS, evaluate=evaluate, load=load,
    objective="mean_response_s", sense="min", env_ids=("sysgym/JobSched-v0",),
    description="Which user's job/stage gets the next free executors (Spark-like DAG jobs; Decima, UWFQ)",
))
register_env("sysgym/JobSched-v0", "sysgym.envs.job_sched.env:JobSchedEnv", family="job_sched")
