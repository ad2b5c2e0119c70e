"""KV-eviction methods; importing registers them (`kv_eviction.h2o`, `.streaming_llm`, ..., `.milp`)."""
from sysgym.solvers.kv_eviction import milp, policies  # noqa: F401
