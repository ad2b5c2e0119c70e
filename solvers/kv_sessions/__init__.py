"""Session-level KV-retention methods; importing registers them: the policies `kv_sessions.none`, `.lru`, `.lfu`,
`.ttl`, `.continuum`, `.prefix`, `.belady` (policies.py) and the CP-SAT offline optimum `kv_sessions.cpsat`."""
from sysgym.solvers.kv_sessions import cpsat, policies  # noqa: F401
