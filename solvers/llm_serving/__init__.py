"""LLM-serving methods; importing registers them (`llm_serving.vllm`, `.orca`, `.sarathi`, `.past_future`,
`.vtc`, `.sjf`, `.cpsat`).

`schedulers` holds the one implementation of each named scheduler (the simulator calls it, and it drives
`sysgym/LlmServing-v0` as a policy); `policies` registers them as methods; `cpsat` is the clairvoyant lower
bound; `plan` the serving-plan / capacity search (DistServe goodput).
"""
from sysgym.solvers.llm_serving import cpsat, policies  # noqa: F401
from sysgym.solvers.llm_serving.policies import SchedulerSolver, policy
from sysgym.solvers.llm_serving.schedulers import SCHEDULERS, Scheduler, peak_tokens

__all__ = ["SCHEDULERS", "Scheduler", "SchedulerSolver", "peak_tokens", "policy"]
