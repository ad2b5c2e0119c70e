"""Session-level KV retention: which finished turns' KV to keep in GPU memory for a session's next turn.

instance.py (SessionWorkload, load/save), generator.py (GENERATOR, presets tiny/small/chat/agent, TOOLS),
simulator.py (the retention pool and the policy protocol; `simulate`), evaluate.py (the only scorer; TTFT from
the LLM-serving simulator), env.py (`sysgym/SessionKv-v0`, `PolicyAgent`). The policies (none, lru, lfu, ttl,
continuum, prefix, belady) and the CP-SAT offline optimum are `kv_sessions.*` solvers in
`sysgym.solvers.kv_sessions`. The old module `sysgym.envs.kv_eviction.sessions` re-exports this API.
"""
from sysgym.envs.kv_sessions.evaluate import evaluate, evaluate_sessions, reuse_per_turn
from sysgym.envs.kv_sessions.generator import GENERATOR, PRESETS, TOOLS, USER, generate, generate_sessions
from sysgym.envs.kv_sessions.instance import SessionWorkload, load, save
from sysgym.envs.kv_sessions.simulator import (
    BLOCK,
    SESSION_POLICIES,
    RetentionPolicy,
    SimResult,
    make_policy,
    run_session_policy,
    simulate,
)

__all__ = ["BLOCK", "GENERATOR", "PRESETS", "SESSION_POLICIES", "TOOLS", "USER", "RetentionPolicy", "SessionWorkload",
           "SimResult", "evaluate", "evaluate_sessions", "generate", "generate_sessions", "load", "make_policy",
           "reuse_per_turn", "run_session_policy", "save", "simulate"]
