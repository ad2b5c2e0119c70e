"""Pretrained policies shipped in the package (issue 17 item 4), as rl-baselines3-zoo ships its agents.

`sysgym.agents.pretrained("vm_resched")` -> `ShippedPolicy` (the torch module, its metadata: training
config, seed, steps, wall time, evaluation table, and `decide(instance, samples=K)`). The files live in
`agents/weights/<family>/` (a state dict `policy.pt` and `policy.json` beside it), listed as package data in
pyproject.toml, so a clone and an installed wheel both have them.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sysgym.errors import UnknownNameError

WEIGHTS = Path(__file__).resolve().parent / "weights"
SHIPPED = {"vm_resched": WEIGHTS / "vm_resched" / "policy.pt"}


def shipped_path(family: str) -> Path:
    if family not in SHIPPED:
        raise UnknownNameError("pretrained policy family", family, tuple(SHIPPED))
    return SHIPPED[family]


@dataclass
class ShippedPolicy:
    family: str
    path: Path
    policy: Any
    meta: dict[str, Any]

    def decide(self, instance: Any, *, samples: int = 0, seed: int = 0) -> dict[str, Any]:
        from sysgym.agents.vm_two_stage import decide

        return decide(self.policy, instance, samples=samples, seed=seed)


def pretrained(family: str) -> ShippedPolicy:
    from sysgym.agents.vm_two_stage import load_policy

    path = shipped_path(family)
    pol, meta = load_policy(path)
    return ShippedPolicy(family, path, pol, meta)
