"""Power-capped LLM serving (issue 19, item 5), after POLCA (Patel et al., ASPLOS'24): cap a row of inference
servers' GPU clocks over time to keep the row under an oversubscribed power budget while meeting latency SLOs.

instance.py (PowerCapInstance, load), generator.py (GENERATOR, presets and their sources), server.py (one
server's iteration loop under a clock cap, priced by `sysgym.kernels`), simulator.py (`Row`: every server one
control interval at a time), evaluate.py (the only scorer), env.py (`sysgym/PowerCap-v0`). The policies (POLCA's
threshold controller, no cap, static caps, a clairvoyant bound) are in `sysgym.solvers.power_cap`.
"""
from sysgym.envs.power_cap.evaluate import evaluate, replay
from sysgym.envs.power_cap.generator import GENERATOR, LEVELS, PRESETS, generate
from sysgym.envs.power_cap.instance import PowerCapInstance, load
from sysgym.envs.power_cap.simulator import Row

__all__ = ["GENERATOR", "LEVELS", "PRESETS", "PowerCapInstance", "Row", "evaluate", "generate", "load", "replay"]
