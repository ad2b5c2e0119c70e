"""The cost model against published Megatron-LM runs: nothing is fitted on them, every row is a prediction.

Stated tolerances (measured when the model was rebuilt; `python -m sysgym.envs.parallel_plan.calibration`):
* Narayanan et al. SC'21 Table 1, 1F1B protocol: the seven rows the old three-row fit held out within +-5 %
  (measured -3.9 .. +1.8 %), all ten within +-6 % (1.7B +5.1 %, 18.4B -5.2 %), the mean signed error over the
  six rows with p >= 2 within +-2 % (measured -1.5 %: no bias with pipeline degree);
* Table 1 with interleaving allowed (what the paper ran): every row within +-8 % (measured -5.2 .. +4.2 %);
* Korthikanti et al. 2022 Table 5, sequence parallelism + selective recomputation: iteration time within +-6 %
  (measured +1.8, +1.1, -1.1, -5.1 % in throughput); with full recomputation the model is slower than the
  2022 code, which overlaps the backward all-reduce with the weight-gradient GEMM (Sec. 6.2), by 6-10 %.
"""
import copy

import numpy as np
import pytest

from sysgym.envs.parallel_plan.calibration import load_table1, load_table5, summary, table1_report, table5_report
from sysgym.kernels.calibration import Calibration, load_calibration

OLD_HELD_OUT = {"3.6", "7.5", "39.1", "76.1", "310.1", "529.6", "1008.0"}


@pytest.fixture(scope="module")
def report():
    return table1_report()


@pytest.fixture(scope="module")
def report_interleaved():
    return table1_report(interleaving=True)


def test_table_has_the_ten_published_rows():
    rows = load_table1()
    assert [r.params_billion for r in rows] == ["1.7", "3.6", "7.5", "18.4", "39.1", "76.1", "145.6", "310.1",
                                                "529.6", "1008.0"]
    assert rows[-1].tflops_per_gpu == 163 and rows[-1].num_gpus == 3072 and rows[-1].pp == 64


def test_table1_1f1b_protocol(report):
    held = {r["params_billion"]: r["error_percent"] for r in report if r["params_billion"] in OLD_HELD_OUT}
    assert len(held) == 7 and all(abs(e) <= 5.0 for e in held.values()), held
    assert all(abs(r["error_percent"]) <= 6.0 for r in report), [(r["params_billion"], r["error_percent"])
                                                                 for r in report]
    s = summary(report)
    assert abs(s["mean_error_p_ge_2"]) <= 2.0, s
    assert all(r["micro_batch"] in (1, 2, 4, 8) and r["virtual_stages"] == 1 for r in report)


def test_table1_with_interleaving(report_interleaved):
    assert all(abs(r["error_percent"]) <= 8.0 for r in report_interleaved), report_interleaved
    # The paper ran the interleaved schedule; the search uses it where it pays (every pipelined row here).
    assert all(r["virtual_stages"] > 1 for r in report_interleaved if r["p"] >= 2)


def test_korthikanti_table5():
    rows = table5_report()
    assert len(rows) == 8 and all(r["feasible"] for r in rows)
    present = [r for r in rows if r["setting"] == "present work"]
    assert all(abs(r["throughput_error_percent"]) <= 6.0 for r in present), present
    # Full recomputation: slower than measured (the 2022 code overlaps the backward all-reduce), by < 12 %.
    full = [r for r in rows if r["setting"] == "full recompute"]
    assert all(-12.0 <= r["throughput_error_percent"] < 0.0 for r in full), full
    assert {r["model_size"] for r in load_table5()} == {"22B", "175B", "530B", "1T"}


def test_table1_does_not_identify_the_network():
    """Why the model fits nothing on Table 1: the rows move by < 1.5 % when Selene's HDR network runs at 70 % or
    120 % of the NCCL line-rate efficiency the kernels assume (a fit of it would run to a bound)."""
    base = load_calibration()
    preds = []
    for eff in (0.7, 1.2):
        params = copy.deepcopy(base.params)
        net = {"inter_eff": eff, "inter_reduce_eff": 0.94, "nic_cap": 1e9, "pcie_share": 1.0, "tree_eff": 1.0,
               "net_latency_extra_us": 10.0}
        params["collective"].setdefault("networks", {})["ib-hdr-200"] = net
        cal = Calibration(device=base.device, dtype=base.dtype, params=params)
        preds.append(np.array([r["predicted_tflops"] for r in table1_report(calibration=cal)]))
    assert np.max(np.abs(preds[1] / preds[0] - 1)) < 0.015


def test_gpt3_on_1024_gpus_is_not_predicted_far_above_published_figures():
    """GPT-3 175B on 1,024 A100s, batch 1536 (the `gpt3` preset): Narayanan et al. report 140 TFLOP/s per GPU for
    it (SC'21 Sec. 5.1, "Training Time Estimates"; t = 8, p = 16 as Megatron's examples/pretrain_gpt3_175B.sh,
    full recomputation): predicted 144.4 (1F1B). The best plan the model picks for itself (selective
    recomputation and sequence parallelism, as Korthikanti et al. 2022) reaches MFU 55.3 %, against the 51.4 %
    Korthikanti et al. measured for 175B with those techniques (Table 5, 64 GPUs, no data parallelism; the model
    predicts that configuration at 52.0 %). Before the rebuild: 190 TFLOP/s, MFU 60 %."""
    from sysgym import solvers
    from sysgym.envs.parallel_plan import TrainingPlan, generate
    from sysgym.envs.parallel_plan.evaluate import as_plan

    inst = generate(preset="gpt3")
    paper = inst.estimate(TrainingPlan(tp=8, pp=16, dp=8, micro_batch=1, recompute="full"))
    assert paper.tflops_per_gpu == pytest.approx(140.0, rel=0.08)
    best = inst.estimate(as_plan(solvers.get("parallel_plan.exhaustive").solve(inst).decisions))
    assert best.mfu <= 1.12 * 0.514
