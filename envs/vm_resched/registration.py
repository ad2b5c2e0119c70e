"""Registers the VM-rescheduling family and `sysgym/VmResched-v0`."""
from sysgym.envs.vm_resched.evaluator import evaluate
from sysgym.envs.vm_resched.generator import PRESETS, generate
from sysgym.envs.vm_resched.instance import load
from sysgym.registry import Family, register_env, register_family

register_family(Family(
    name="vm_resched", generate=generate, presets=PRESETS, evaluate=evaluate, load=load,
    objective="fragment_rate", sense="min", env_ids=("sysgym/VmResched-v0",),
    description="Migrate at most MNL VMs to cut CPU fragmentation (VMR2L, EuroSys'25)",
    extra={"timed_objective": "fragment_rate_timed"},
))
register_env("sysgym/VmResched-v0", "sysgym.envs.vm_resched.env:VmReschedEnv", family="vm_resched")
