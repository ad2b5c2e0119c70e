"""Registers the KV-eviction family and `sysgym/KvEviction-v0` (torch is imported only when used)."""
from sysgym.envs.kv_eviction.instance import KvInstance
from sysgym.envs.kv_eviction.presets import PRESETS
from sysgym.family import Family
from sysgym.generators import Generator
from sysgym.registry import register_env, register_family


def generate(**kwargs):
    from sysgym.envs.kv_eviction.generator import generate as _generate

    return _generate(**kwargs)


def evaluate(instance, solution, **kwargs):
    from sysgym.envs.kv_eviction.evaluate import evaluate as _evaluate

    return _evaluate(instance, solution, **kwargs)


def load(path):
    from sysgym.envs.kv_eviction.instance import load as _load

    return _load(path)


register_family(Family(
    name="kv_eviction", generator=Generator("kv_eviction", presets=PRESETS, versions={0: generate}),
    evaluate=evaluate, load=load, instance_types=(KvInstance,),
    objective="loss_increase", sense="min", env_ids=("sysgym/KvEviction-v0", "sysgym/SessionKv-v0"),
    description="Evict cached tokens under a KV budget; scored by a real model's loss (H2O, StreamingLLM, TOVA, "
                "SnapKV)",
    secondary=("perplexity_ratio", "top1_agreement", "attention_mass"),
))
register_env("sysgym/KvEviction-v0", "sysgym.envs.kv_eviction.env:KvEvictionEnv", family="kv_eviction")
register_env("sysgym/SessionKv-v0", "sysgym.envs.kv_eviction.session_env:SessionKvEnv", family="kv_eviction")
