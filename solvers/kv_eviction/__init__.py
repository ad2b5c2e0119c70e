"""KV-eviction methods; importing registers them (`kv_eviction.h2o`, `.streaming_llm`, ..., `.milp`, `.oracle`)."""
from sysgym.solvers.kv_eviction import milp, oracle, policies  # noqa: F401
