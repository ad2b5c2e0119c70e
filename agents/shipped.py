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


def ship(policy: str | Path, family: str = "vm_resched", evaluation: str | Path | None = None,
         extra: dict[str, Any] | None = None) -> Path:
    """Copy a trained two-stage policy into the package (state dict + JSON with its training record and,
    from `agents_bench.py --two-stage --json`, the evaluation table) and export its ONNX graphs beside it."""
    import json

    from sysgym.agents.vm_two_stage import load_policy, save_policy
    from sysgym.agents.vm_two_stage_onnx import export_onnx

    pol, meta = load_policy(policy)
    meta.pop("format", None)
    meta.pop("dim", None)
    if evaluation is not None:
        meta["evaluation"] = json.loads(Path(evaluation).read_text())
    meta.update(extra or {})
    target = shipped_path(family)
    target.parent.mkdir(parents=True, exist_ok=True)
    save_policy(pol, target, meta)
    export_onnx(pol, target.parent, {"family": family})
    return target


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="ship a trained two-stage policy as the package's pretrained one")
    ap.add_argument("--policy", required=True)
    ap.add_argument("--evaluation", default=None, help="agents_bench.py --two-stage --json output")
    ap.add_argument("--family", default="vm_resched")
    a = ap.parse_args()
    print(ship(a.policy, a.family, a.evaluation))
