"""Registers the session-level KV-retention family, `sysgym/SessionKv-v0`, and the old `kv_eviction/sessions`
specs (which now name kv_sessions instances)."""
from sysgym.envs.kv_sessions.evaluate import evaluate
from sysgym.envs.kv_sessions.generator import GENERATOR
from sysgym.envs.kv_sessions.instance import SessionWorkload, load
from sysgym.family import Family
from sysgym.registry import register_env, register_family, register_family_alias

register_family(Family(
    name="kv_sessions", generator=GENERATOR, evaluate=evaluate, load=load, instance_types=(SessionWorkload,),
    objective="recompute_tokens", sense="min", env_ids=("sysgym/SessionKv-v0",),
    description="Keep finished turns' KV for multi-turn sessions in a retention pool (LRU, TTL, Continuum, prefix "
                "caching, Belady); TTFT from the serving simulator",
    secondary=("token_hit_rate", "hit_rate", "ttft_mean", "ttft_p90"),
))
register_env("sysgym/SessionKv-v0", "sysgym.envs.kv_sessions.env:SessionKvEnv", family="kv_sessions")
# `kv_eviction/sessions?seed=0&kind=agent&n=20&cap=8000` (the session level's old specs) -> kv_sessions.
register_family_alias("kv_eviction", lambda preset: "kv_sessions" if preset == "sessions" else "kv_eviction")
