"""Registers the power-capping family and `sysgym/PowerCap-v0`."""
from sysgym.envs.power_cap.evaluate import evaluate
from sysgym.envs.power_cap.generator import GENERATOR
from sysgym.envs.power_cap.instance import PowerCapInstance, load
from sysgym.family import Family
from sysgym.registry import register_env, register_family

register_family(Family(
    name="power_cap", generator=GENERATOR, evaluate=evaluate, load=load, instance_types=(PowerCapInstance,),
    objective="cost", sense="min", env_ids=("sysgym/PowerCap-v0",),
    description="Cap LLM inference servers' GPU clocks over time under an oversubscribed row power budget while "
                "meeting TTFT/TPOT SLOs (POLCA, ASPLOS'24)",
    secondary=("slo_attainment", "overbudget_rate", "energy_j"),
))
register_env("sysgym/PowerCap-v0", "sysgym.envs.power_cap.env:PowerCapEnv", family="power_cap")
