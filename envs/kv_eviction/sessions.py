"""The old import path of the session level, now the `kv_sessions` family (`sysgym.envs.kv_sessions`).

Kept so that `from sysgym.envs.kv_eviction.sessions import generate_sessions, evaluate_sessions, ...` keeps
working; new code imports `sysgym.envs.kv_sessions`.
"""
from sysgym.envs.kv_sessions import (  # noqa: F401  (re-exported)
    BLOCK,
    SESSION_POLICIES,
    TOOLS,
    USER,
    SessionWorkload,
    evaluate_sessions,
    generate_sessions,
    reuse_per_turn,
    run_session_policy,
)

__all__ = ["BLOCK", "SESSION_POLICIES", "TOOLS", "USER", "SessionWorkload", "evaluate_sessions", "generate_sessions",
           "reuse_per_turn", "run_session_policy"]
