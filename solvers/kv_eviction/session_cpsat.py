"""The old import path of the session-level CP-SAT, now `kv_sessions.cpsat` (`sysgym.solvers.kv_sessions.cpsat`)."""
from sysgym.solvers.kv_sessions.cpsat import candidate_intervals, solve_sessions_cpsat  # noqa: F401  (re-exported)

__all__ = ["candidate_intervals", "solve_sessions_cpsat"]
