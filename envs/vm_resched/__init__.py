"""VM rescheduling (VMR2L, EuroSys'25): migrate at most MNL VMs to cut CPU fragmentation."""
from sysgym.envs.vm_resched.evaluator import evaluate
from sysgym.envs.vm_resched.generator import PRESETS, generate
from sysgym.envs.vm_resched.instance import VmInstance, load, save
from sysgym.envs.vm_resched.state import ClusterState, fragment_rate

__all__ = ["PRESETS", "ClusterState", "VmInstance", "evaluate", "fragment_rate", "generate", "load", "save"]
