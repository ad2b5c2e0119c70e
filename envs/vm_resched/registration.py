"""Registers the VM-rescheduling family and `sysgym/VmResched-v0`."""
from sysgym.envs.vm_resched.evaluate import evaluate
from sysgym.envs.vm_resched.generator import GENERATOR
from sysgym.envs.vm_resched.instance import VmInstance, load
from sysgym.family import Family
from sysgym.registry import register_env, register_family

register_family(Family(
    name="vm_resched", generator=GENERATOR, evaluate=evaluate, load=load, instance_types=(VmInstance,),
    objective="fragment_rate", sense="min", env_ids=("sysgym/VmResched-v0",),
    description="Migrate at most MNL VMs to cut CPU fragmentation (VMR2L, EuroSys'25)",
    timed_objective="fragment_rate_timed",
))
register_env("sysgym/VmResched-v0", "sysgym.envs.vm_resched.env:VmReschedEnv", family="vm_resched")
