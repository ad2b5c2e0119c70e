"""Registers the serverless warm-pool family and `sysgym/ServerlessKeepAlive-v0`."""
from sysgym.envs.serverless.evaluate import evaluate
from sysgym.envs.serverless.generator import GENERATOR
from sysgym.envs.serverless.instance import ServerlessInstance, load
from sysgym.family import Family
from sysgym.registry import register_env, register_family

register_family(Family(
    name="serverless", generator=GENERATOR, evaluate=evaluate, load=load, instance_types=(ServerlessInstance,),
    objective="cost", sense="min", env_ids=("sysgym/ServerlessKeepAlive-v0",),
    description="Keep-alive, pre-warm and evict serverless instances in a memory-limited warm pool "
                "(Serverless in the Wild, ATC'20; Huawei cold starts, EuroSys'25)",
    secondary=("cold_start_rate", "added_latency_p99_s", "wasted_gb_s"),
))
register_env("sysgym/ServerlessKeepAlive-v0", "sysgym.envs.serverless.env:ServerlessKeepAliveEnv",
             family="serverless")
