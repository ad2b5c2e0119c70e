"""Registers the job-scheduling family and `sysgym/JobSched-v0`."""
from sysgym.envs.job_sched.evaluate import evaluate
from sysgym.envs.job_sched.generator import GENERATOR
from sysgym.envs.job_sched.instance import JobInstance, load
from sysgym.family import Family
from sysgym.registry import register_env, register_family

register_family(Family(
    name="job_sched", generator=GENERATOR, evaluate=evaluate, load=load, instance_types=(JobInstance,),
    objective="mean_response_s", sense="min", env_ids=("sysgym/JobSched-v0",),
    description="Which user's job/stage gets the next free executors (Spark-like DAG jobs; Decima, UWFQ)",
    tiny_preset="tiny",
))
register_env("sysgym/JobSched-v0", "sysgym.envs.job_sched.env:JobSchedEnv", family="job_sched")
