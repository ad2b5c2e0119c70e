"""VM rescheduling (VMR2L, EuroSys'25): migrate at most MNL VMs to cut CPU fragmentation.

instance.py (VmInstance, load/save), generator.py (GENERATOR, presets), state.py (the cluster and its fragment
rate), evaluate.py (the only scorer), env.py (`sysgym/VmResched-v0`), vmr2l_format.py (VMR2L's dataset files).
"""
from sysgym.envs.vm_resched.evaluate import evaluate
from sysgym.envs.vm_resched.generator import GENERATOR, PRESETS, generate
from sysgym.envs.vm_resched.instance import VmInstance, load, save
from sysgym.envs.vm_resched.state import ClusterState, fragment_rate

__all__ = ["GENERATOR", "PRESETS", "ClusterState", "VmInstance", "evaluate", "fragment_rate", "generate", "load",
           "save"]
