"""LLM-serving methods; importing registers them (`llm_serving.vllm`, `.orca`, `.sarathi`, `.past_future`,
`.vtc`, `.sjf`, `.cpsat`)."""
from sysgym.solvers.llm_serving import cpsat, policies  # noqa: F401
from sysgym.solvers.llm_serving.policies import SchedulerPolicy, policy

__all__ = ["SchedulerPolicy", "policy"]
