"""Parallel-plan methods; importing registers them (`parallel_plan.exhaustive`, `.dp`, `.cpsat`, ...)."""
from sysgym.solvers.parallel_plan import exhaustive, megatron, partition, search  # noqa: F401
