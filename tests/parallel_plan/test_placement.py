"""Heterogeneous clusters and placement: the links a plan crosses, the rule a placement must follow, and the
solvers that choose it (exhaustive over contiguous assignments, DP likewise, CP-SAT over every assignment)."""
import numpy as np
import pytest

from sysgym import kernels, solvers
from sysgym.envs.parallel_plan import PlanInstance, TrainingPlan, estimate_training, generate, load
from sysgym.envs.parallel_plan.env import DECISIONS, ParallelPlanEnv
from sysgym.envs.parallel_plan.evaluate import as_plan
from sysgym.envs.parallel_plan.space import placement_options
from sysgym.kernels.collectives import DEFAULT_NETWORK
from sysgym.testing import check_solver, masked_random_action

IB = kernels.Link(25.0, 10.0, "ib-hdr-200")
ROCE = kernels.Link(12.5, 10.0, "roce-100")
ETH = kernels.Link(1.5625, 30.0, "eth-100-tcp")


def _cluster(nodes_per_group: int = 1) -> kernels.Cluster:
    return kernels.Cluster(gpu="a100-80gb", gpus_per_node=8, cross_group=ETH,
                           node_groups=({"num_nodes": nodes_per_group, "inter_node": IB, "name": "ib"},
                                        {"num_nodes": nodes_per_group, "inter_node": ROCE, "name": "roce"}))


def test_hand_computed_placement_example():
    """One InfiniBand node and one RoCE node, Ethernet between them (Holmes' setting), Llama-2-7B, t = 8.

    Placement-oblivious pure data parallelism (t8 p1 d2) all-reduces every step's fp16 gradients across the
    Ethernet: 2 B x 6.74e9 / 8 parameters per GPU over a 2-rank ring moves the buffer once, at 1.5625 GB/s per GPU
    x NCCL's 0.96 x 0.94 (copy and reduction efficiency) = 1.19 s. Placing one pipeline stage on each node group
    (t8 p2 d1, placement (0, 1)) leaves no gradient reduction and sends each micro-batch's activations, sequence-
    parallel-split 4096 x 4096 x 2 B / 8 = 4.2 MB per GPU, across the Ethernet once per micro-batch and stage:
    16 x 2.8 ms = 45 ms, plus a one-micro-batch bubble. By hand the placed plan saves about 1.19 - 0.05 - bubble."""
    cl = _cluster()
    common = {"micro_batch": 1, "recompute": "selective", "sequence_parallel": True}
    oblivious = estimate_training("llama-2-7b", cl, TrainingPlan(tp=8, pp=1, dp=2, **common), seq_len=4096,
                                  global_batch=16)
    placed = estimate_training("llama-2-7b", cl, TrainingPlan(tp=8, pp=2, dp=1, placement=(0, 1), **common),
                               seq_len=4096, global_batch=16)
    assert oblivious.feasible and placed.feasible
    eth = ETH.bandwidth_gbps * 1e9 * DEFAULT_NETWORK["inter_eff"]
    grad_bytes = 2.0 * kernels.models.get("llama-2-7b").num_params() / 8
    sync_hand = grad_bytes / (eth * DEFAULT_NETWORK["inter_reduce_eff"])
    assert sync_hand == pytest.approx(1.19, abs=0.01)
    assert oblivious.time_breakdown_s["grad_sync_s"] == pytest.approx(sync_hand, rel=0.02)
    p2p_hand = 16 * (4096 * 4096 * 2 / 8) / eth
    assert placed.time_breakdown_s["p2p_s"] == pytest.approx(p2p_hand, rel=0.05)
    # Direction and size: the placed plan is faster by the reduction it avoids, less its exchanges and bubble.
    saving_hand = sync_hand - p2p_hand - placed.time_breakdown_s["bubble_s"]
    assert placed.iteration_time_s < oblivious.iteration_time_s
    assert oblivious.iteration_time_s - placed.iteration_time_s == pytest.approx(saving_hand, rel=0.05)
    # On these blocked groups Megatron's rank order puts stage 0 on group 0 too: the same plan.
    ranked = estimate_training("llama-2-7b", cl, TrainingPlan(tp=8, pp=2, dp=1, **common), seq_len=4096,
                               global_batch=16)
    assert ranked.iteration_time_s == pytest.approx(placed.iteration_time_s, rel=1e-12)


def test_the_slower_group_belongs_at_the_end_of_the_pipeline():
    """Stage i finishes its backward i stages before stage 0, so its gradient reduction overlaps their cool-down:
    with data parallelism inside each group, the slower NICs hide better on the last stages."""
    cl = _cluster(nodes_per_group=2)
    plan = TrainingPlan(tp=8, pp=2, dp=2, micro_batch=1, recompute="selective", sequence_parallel=True)
    fast_first = estimate_training("llama-2-13b", cl, plan.replace(placement=(0, 1)), seq_len=4096, global_batch=64)
    slow_first = estimate_training("llama-2-13b", cl, plan.replace(placement=(1, 0)), seq_len=4096, global_batch=64)
    assert fast_first.iteration_time_s < slow_first.iteration_time_s


@pytest.mark.parametrize("placement,text", [
    ((0, 0), "group 0 (ib) has 8 GPUs, its 2 stages take 16"),
    ((0, 2), "groups 0..1"),
    ((0,), "names 1 stages"),
])
def test_illegal_placements_name_the_rule(placement, text):
    plan = TrainingPlan(tp=8, pp=len(placement) if len(placement) > 1 else 2, dp=1, micro_batch=1,
                        placement=placement)
    est = estimate_training("llama-2-7b", _cluster(), plan, seq_len=4096, global_batch=16)
    assert est.rule == "placement" and text in est.reason, est.reason
    homogeneous = estimate_training("llama-2-7b", kernels.get_cluster("dgx-a100", num_nodes=2),
                                    plan.replace(placement=(0, 1), pp=2), seq_len=4096, global_batch=16)
    assert homogeneous.rule == "placement" and "heterogeneous" in homogeneous.reason
    partial = estimate_training("llama-2-7b", _cluster(), TrainingPlan(tp=4, pp=4, dp=1, micro_batch=1,
                                                                       placement=(0, 0, 1, 1)),
                                seq_len=4096, global_batch=16)
    assert partial.rule == "placement" and "whole nodes" in partial.reason


def test_placement_options_are_contiguous_blocks_in_every_group_order():
    inst = PlanInstance("llama-2-7b", _cluster(nodes_per_group=2), seq_len=4096, global_batch=32)
    assert placement_options(inst, 8, 1, 4, 1) == [None, (0, 0, 1, 1), (1, 1, 0, 0)]
    assert placement_options(inst, 8, 1, 2, 2) == [None, (0, 1), (1, 0)]
    assert placement_options(inst, 4, 1, 2, 4) == [None, (0, 1), (1, 0)]  # t c d = 16: two nodes per stage
    assert placement_options(inst, 4, 1, 8, 1) == [None]  # half-node stages: rank order only
    homogeneous = PlanInstance("llama-2-7b", kernels.get_cluster("dgx-a100", num_nodes=4), seq_len=4096,
                               global_batch=32)
    assert placement_options(homogeneous, 8, 1, 4, 1) == [None]


@pytest.fixture(scope="module")
def small_hetero():
    """Llama-2-7B cut to 8 layers on 2 InfiniBand + 2 RoCE nodes, Ethernet between them."""
    model = kernels.models.get("llama-2-7b").replace(num_layers=8, name="llama-2-7b-8l")
    return PlanInstance(model, _cluster(nodes_per_group=2), seq_len=4096, global_batch=32,
                        name="parallel_plan/custom-hetero-test")


def test_partition_solvers_place_stages_on_node_groups(small_hetero):
    dp, _ = check_solver("parallel_plan.dp", small_hetero, time_limit=None, max_zero_stage=1)
    cp, _ = check_solver("parallel_plan.cpsat", small_hetero, time_limit=None, max_zero_stage=1)
    ex, _ = check_solver("parallel_plan.exhaustive", small_hetero, max_zero_stage=1)
    assert dp.status == cp.status == "optimal"
    # CP-SAT assigns every stage freely (DP: contiguous blocks only): never worse; here contiguous is optimal.
    assert cp.objective <= dp.objective * (1 + 1e-6) and cp.objective == pytest.approx(dp.objective, rel=1e-6)
    assert dp.objective <= ex.objective * (1 + 1e-9)
    oblivious, _ = check_solver("parallel_plan.exhaustive", small_hetero, max_zero_stage=1, placements=False)
    assert ex.objective <= oblivious.objective * (1 + 1e-12)


def test_hetero_preset_placement_aware_beats_the_placement_oblivious_plan():
    """The best plan a homogeneous planner picks (all nodes on InfiniBand), run with Megatron's rank order on the
    IB/RoCE cluster, against the placement-aware optimum (Pipette's point); and Megatron's own rules."""
    inst = generate(preset="hetero")
    aware = solvers.get("parallel_plan.exhaustive").solve(inst)
    c = inst.cluster
    homogeneous = kernels.Cluster(gpu=c.gpu, num_nodes=c.num_nodes, gpus_per_node=c.gpus_per_node,
                                  intra_node=c.intra_node, inter_node=c.groups[0].inter_node, name="all-ib")
    planned = solvers.get("parallel_plan.exhaustive").solve(PlanInstance(inst.model, homogeneous, inst.seq_len,
                                                                         inst.global_batch))
    oblivious = inst.estimate(as_plan(planned.decisions))
    assert oblivious.feasible and oblivious.iteration_time_s > 1.3 * aware.objective
    megatron = solvers.get("parallel_plan.megatron").solve(inst)
    assert megatron.objective > 1.3 * aware.objective


def test_env_decides_the_placement_and_instances_round_trip(tmp_path):
    inst = generate(preset="hetero")
    env = ParallelPlanEnv(instance=inst)
    k = DECISIONS.index("place")
    assert len(env._table.cands["place"]) > 1  # rank order and contiguous assignments
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    done = False
    while not done:
        _, _, done, _, info = env.step(masked_random_action(env, rng))
    assert info["feasible"] and env.state.chosen[k] >= 0
    assert inst.estimate(env.current_plan()).iteration_time_s == info["iteration_time_s"]
    path = inst.save(tmp_path / "hetero.json")
    back = load(path)
    assert back.digest() == inst.digest() and back.cluster == inst.cluster and back.cluster.heterogeneous
    plan = env.current_plan()
    assert back.estimate(plan).iteration_time_s == pytest.approx(inst.estimate(plan).iteration_time_s, rel=1e-12)
