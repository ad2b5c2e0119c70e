"""The size-agnostic two-stage VM policy: one set of weights on tiny and medium, sampling keeps the best,
behaviour cloning learns, the shipped checkpoint loads as `sysgym.agents.pretrained("vm_resched")` and as
the default `vm_resched.agent`."""
import dataclasses

import numpy as np
import pytest
import torch

import sysgym
from sysgym import solvers
from sysgym.agents.imitation import behaviour_clone, expert_samples
from sysgym.agents.vm_two_stage import TwoStagePolicy, decide, load_policy, rollout, save_policy

FAM = sysgym.get_family("vm_resched")


def test_one_policy_runs_on_tiny_and_medium_shapes():
    torch.manual_seed(0)
    pol = TwoStagePolicy(dim=16)
    n_params = sum(p.numel() for p in pol.parameters())
    medium = FAM.generate(seed=0, preset="medium")
    for inst in (FAM.generate(seed=0, preset="tiny"), dataclasses.replace(medium, mnl=3)):
        plan, _ = rollout(pol, inst)
        assert FAM.evaluate(inst, plan)["feasible"] and len(plan) <= inst.mnl
    assert sum(p.numel() for p in pol.parameters()) == n_params


def test_sampling_keeps_the_best_plan():
    torch.manual_seed(1)
    pol = TwoStagePolicy(dim=16)
    inst = FAM.generate(seed=5, preset="small")
    greedy = decide(pol, inst, samples=0)
    best = decide(pol, inst, samples=6, seed=3)
    assert best["samples"] == 6 and best["fragment_rate"] <= greedy["fragment_rate"]
    assert FAM.evaluate(inst, best["decisions"])["fragment_rate"] == pytest.approx(best["fragment_rate"])
    gen = torch.Generator().manual_seed(3)
    frs = [greedy["fragment_rate"]] + [FAM.evaluate(inst, rollout(pol, inst, sample=True, generator=gen)[0])
                                       ["fragment_rate"] for _ in range(6)]
    assert best["fragment_rate"] == pytest.approx(min(frs))


def test_behaviour_cloning_fits_expert_plans(tmp_path):
    inst = FAM.generate(seed=0, preset="tiny")
    plan = [(13, 2, 0), (14, 2, 1), (27, 0, 1)]  # vm_resched.cpsat's optimal plan for tiny seed 0
    assert FAM.evaluate(inst, plan)["fragment_rate"] == pytest.approx(1 / 9)  # from 0.407
    samples = expert_samples(inst, plan)
    assert len(samples) == 2 * len(plan) + (inst.mnl - len(plan))
    torch.manual_seed(0)
    pol = TwoStagePolicy(dim=16)
    res = behaviour_clone(pol, samples, epochs=20, lr=1e-2, batch=8)
    assert res["loss"][-1] < 0.6 * res["loss"][0] and res["gradient_steps"] == 40  # one batch per stage
    assert FAM.evaluate(inst, rollout(pol, inst)[0])["feasible"]
    save_policy(pol, tmp_path / "p.pt", {"note": "test"})
    again, meta = load_policy(tmp_path / "p.pt")
    assert meta["note"] == "test" and rollout(again, inst)[0] == rollout(pol, inst)[0]
    sol = solvers.get("vm_resched.agent", path=str(tmp_path / "p.pt")).solve(inst)
    assert sol.decisions == rollout(pol, inst)[0]


def test_pretrained_policy_ships_and_is_the_default_agent():
    shipped = sysgym.agents.pretrained("vm_resched")
    assert shipped.path.is_file() and {"seed", "gradient_steps", "train_wall_s", "evaluation"} <= set(shipped.meta)
    inst = FAM.generate(seed=1000, preset="small")
    sol = solvers.get("vm_resched.agent", samples=2).solve(inst)
    assert sol.stats["samples"] == 2
    fr = FAM.evaluate(inst, sol)["fragment_rate"]
    assert fr == pytest.approx(sol.objective) and fr <= FAM.evaluate(inst, [])["fragment_rate"]
    with pytest.raises(sysgym.errors.UnknownNameError):
        sysgym.agents.pretrained("no_such_family")
    assert np.isfinite(fr)
    from sysgym.agents.vm_two_stage_onnx import OnnxTwoStage  # the shipped ONNX graphs are the same policy

    assert OnnxTwoStage(shipped.path.parent).rollout(inst) == rollout(shipped.policy, inst)[0]


def test_onnx_export_matches_torch_on_two_sizes(tmp_path):
    from sysgym.agents.vm_two_stage_onnx import OnnxTwoStage, export_onnx

    torch.manual_seed(2)
    pol = TwoStagePolicy(dim=16)
    export_onnx(pol, tmp_path)
    onnx_pol = OnnxTwoStage(tmp_path)
    for preset in ("tiny", "small"):
        inst = FAM.generate(seed=2, preset=preset)
        assert onnx_pol.rollout(inst) == rollout(pol, inst)[0]


def test_shipped_checkpoint_passes_the_solver_checks_on_tiny_and_medium_shapes():
    from sysgym.testing import check_solver

    medium = FAM.generate(seed=0, preset="medium")
    for inst in (FAM.generate(seed=1, preset="tiny"), dataclasses.replace(medium, mnl=3)):
        sol, metrics = check_solver("vm_resched.agent", inst, time_limit=None)
        assert sol.stats["samples"] == 0 and metrics["fragment_rate"] <= metrics["fragment_rate_before"]
