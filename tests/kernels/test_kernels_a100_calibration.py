"""The fitted model against vidur's A100 measurements (skipped where ../shared/data is absent).

Stated tolerances (MAPE over rows with num_tokens >= 128, as measured when the fit was made):
  * shipped calibration, in sample (all three models): every operator < 10 % (measured 5.0-8.4 %);
  * held out: fit on Llama-2-7B + Llama-2-70B, score Meta-Llama-3-8B: every operator < 10 %
    (measured 4.6-9.4 %);
  * collectives (median time per row; vidur's medians are the robust statistic, the means carry
    bimodal outliers at small sizes), all 8,946 rows of network/*.csv pooled: < 15 % (measured 11.0 %);
    intra-node all-reduce and send/recv groups < 15 % each (measured 1.5-13.8 %); multi-node all-reduce
    groups < 30 % (measured 2.8-24.2 %; the worst are 8 and 16 GPUs over 2 nodes, whose ring/tree switch
    points and per-node network bandwidths the shared NCCL-tuner model follows only in part);
  * collectives held out: fit on every other size of each group, score the other half: pooled < 15 %
    (measured 12.1 %).
The network terms describe the network vidur profiled (cluster preset vidur-a100-dgx), stored under its link
name; a DGX A100 with its eight HDR NICs (dgx-a100) is not that network (see kernels/collectives.py).
"""
import json
from pathlib import Path

import numpy as np
import pytest

from sysgym import kernels
from sysgym.kernels.fitting import fit_collectives
from sysgym.kernels.profiles import read_compute_profile, read_network_profile


def _compute_files(folder: Path, *stems):
    return [folder / "compute" / f"{s}.csv" for s in stems]


def test_shipped_calibration_in_sample(a100_profiles):
    cal = kernels.load_calibration()
    report = kernels.evaluate_compute(cal, sorted((a100_profiles / "compute").glob("*.csv")))
    assert set(kernels.LAYER_OPS) <= set(report)
    for op, scores in report.items():
        assert scores["tokens>=128"] < 10.0, (op, scores)


def test_held_out_model(a100_profiles):
    cal = kernels.fit_calibration(a100_profiles, "a100-80gb", models=["Llama-2-7b-hf", "Llama-2-70b-hf"])
    held_out = kernels.evaluate_compute(cal, _compute_files(a100_profiles, "Meta-Llama-3-8B"))
    for op, scores in held_out.items():
        assert scores["tokens>=128"] < 10.0, (op, scores)


def test_predict_op_times_matches_rows(a100_profiles):
    """The public API (not only the fitting path) reproduces measured rows."""
    prof = read_compute_profile(a100_profiles / "compute" / "Meta-Llama-3-8B.csv")
    sel = (prof["tp"] == 2) & (prof["num_tokens"] >= 128)
    pred = kernels.predict_op_times("a100-80gb", "llama-3-8b", prof["num_tokens"][sel], 2)
    for op in ("attn_pre_proj", "mlp_up_proj", "mlp_down_proj"):
        mape = np.mean(np.abs(pred[op] / prof["times_ms"][op][sel] - 1))
        assert mape < 0.10, (op, mape)


def test_collectives_against_network_profiles(a100_profiles):
    cal = kernels.load_calibration()
    report = kernels.evaluate_collectives(cal.params["collective"],
                                          sorted((a100_profiles / "network").glob("*.csv")))
    assert report["all"] < 15.0, report
    for workers in (2, 4, 8):
        assert report[f"all_reduce workers={workers} per_node={workers}"] < 15.0, report
    assert report["send_recv workers=2 per_node=2"] < 15.0 and report["send_recv workers=2 per_node=1"] < 15.0
    assert all(v < 30.0 for v in report.values()), report
    # The multi-node rows price the profiled network (vidur-a100-dgx), through the public API too: a 2-node,
    # 16-GPU all-reduce of 64 MiB at vidur's ~7 ms, not at the NVLink-bound speed of a DGX A100's 8 HDR NICs.
    rows = read_network_profile(a100_profiles / "network" / "all_reduce.csv")
    sel = (rows["num_workers"] == 16) & (rows["size_bytes"] == 64 << 20)
    pred = kernels.predict_collective_time("all_reduce", 64 << 20, 16, kernels.get_cluster("vidur-a100-dgx"))
    assert pred == pytest.approx(float(rows["times_ms"][sel][0]), rel=0.3)
    assert kernels.predict_collective_time("all_reduce", 64 << 20, 16, kernels.get_cluster("dgx-a100", num_nodes=2)) \
        < pred / 5
    # Through the public API: 8-way all-reduce in one DGX node.
    rows = read_network_profile(a100_profiles / "network" / "all_reduce.csv")
    sel = (rows["num_workers"] == 8) & (rows["devices_per_node"] == 8) & (rows["size_bytes"] >= 1 << 20)
    pred = kernels.predict_collective_time("all_reduce", rows["size_bytes"][sel], 8,
                                           kernels.get_cluster("dgx-a100"))
    assert np.mean(np.abs(pred / rows["times_ms"][sel] - 1)) < 0.15


def test_collectives_held_out_sizes(a100_profiles):
    """A model, not a lookup table: fitted on half the sizes of each group, it predicts the other half."""
    files = sorted((a100_profiles / "network").glob("*.csv"))
    params = fit_collectives(files, split="even")
    held_out = kernels.evaluate_collectives(params, files, split="odd")
    assert held_out["all"] < 15.0, held_out


def _flat(params: dict, prefix: str = ""):
    for name, value in params.items():
        if isinstance(value, dict):
            yield from _flat(value, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", value


def test_shipped_file_is_reproducible(a100_profiles):
    """Refitting the sources named in the provenance, with the kinds it names (the documented command), gives the
    shipped parameters (same sha256 too). The collective fit converges to 1e-10 in every parameter (a start
    perturbed by 1e-4 lands within 3e-7), so 1e-6 holds across BLAS builds."""
    shipped = json.loads((Path(kernels.__file__).parent / "data" / "calibration_a100.json").read_text())
    import hashlib
    for entry in shipped["provenance"]["fitted_on"]:
        assert hashlib.sha256((a100_profiles / entry["file"]).read_bytes()).hexdigest() == entry["sha256"]
    assert "--kinds compute network" in shipped["provenance"]["command"]
    refit = kernels.fit_calibration(a100_profiles, "a100-80gb", kinds=shipped["provenance"]["kinds"])
    assert set(refit.params) == set(shipped["params"])
    got = dict(_flat(refit.params))
    for name, value in _flat(shipped["params"]):
        assert got[name] == pytest.approx(value, rel=1e-6, abs=1e-12), name
