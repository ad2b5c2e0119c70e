"""Registers the token-level KV-eviction family and `sysgym/KvEviction-v0` (torch is imported only when used).

The session level (`SessionKv-v0`, the old `kv_eviction/sessions` specs) is the `kv_sessions` family."""
from sysgym.envs.kv_eviction.generator import GENERATOR
from sysgym.envs.kv_eviction.instance import KvInstance, load
from sysgym.family import Family
from sysgym.registry import register_env, register_family


def evaluate(instance, solution, **options):
    """`sysgym.envs.kv_eviction.evaluate.evaluate` (imported on first use: it loads torch)."""
    from sysgym.envs.kv_eviction.evaluate import evaluate as _evaluate

    return _evaluate(instance, solution, **options)


register_family(Family(
    name="kv_eviction", generator=GENERATOR, evaluate=evaluate, load=load, instance_types=(KvInstance,),
    objective="loss_increase", sense="min", env_ids=("sysgym/KvEviction-v0",),
    description="Evict cached tokens under a KV budget; scored by a real model's loss (H2O, StreamingLLM, TOVA, "
                "SnapKV)",
    secondary=("perplexity_ratio", "top1_agreement", "attention_mass"),
))
register_env("sysgym/KvEviction-v0", "sysgym.envs.kv_eviction.env:KvEvictionEnv", family="kv_eviction")
