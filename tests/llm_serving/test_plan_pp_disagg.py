"""Serving-plan search over pipelined TP x PP plans and prefill/decode disaggregated pools."""
import pytest

from sysgym.envs.llm_serving import generate, simulate
from sysgym.envs.llm_serving.disagg import simulate_disagg
from sysgym.errors import InvalidArgumentError
from sysgym.solvers.llm_serving.plan import _disagg_options, max_rate, parse_pd_ratios, search_plans


@pytest.fixture(scope="module")
def trace():
    return generate(preset="small", seed=0, num_requests=150).trace


def test_disagg_options_use_every_gpu_and_follow_ratios():
    opts = list(_disagg_options(4, 2, 1))
    assert opts and all(p[0] * p[1] * p[2] + d[0] * d[1] * d[2] == 4 for p, d in opts)
    assert ((1, 1, 1), (1, 1, 3)) in opts and ((2, 1, 1), (1, 1, 2)) in opts
    only = list(_disagg_options(4, 1, 1, [(1, 1)]))
    assert only == [((1, 1, 2), (1, 1, 2))]
    assert parse_pd_ratios("1:2,3:1") == [(1, 2), (3, 1)]
    for bad in ("0:1", "1:-1", "a:b", "2"):
        with pytest.raises(InvalidArgumentError):
            parse_pd_ratios(bad)


def test_plan_search_ranks_pipelined_and_disaggregated_plans(trace):
    res = search_plans(trace, num_gpus=2, schedulers=("vllm",), batch_caps=(256,), bisect_steps=2, progress=False,
                       disaggregated=True, slo_ttft_s=1.0, slo_tpot_s=0.05)
    modes = {(r.mode, r.tp, r.pp, r.replicas, r.prefill) for r in res}
    assert ("colocated", 1, 2, 1, None) in modes and ("disaggregated", 1, 1, 1, "1 x TP1 PP1") in modes
    rates = [r.max_rate_rps for r in res]
    assert rates == sorted(rates, reverse=True) and min(rates) > 0
    dis = next(r for r in res if r.mode == "disaggregated")
    assert dis.pd_ratio == "1:1" and dis.to_dict()["mode"] == "disaggregated"
    # the capacity is the disaggregated simulator's: at it >= 90 % attain, at twice it fewer
    kw = dict(prefill=(1, 1, 1), decode=(1, 1, 1), slo_ttft_s=1.0, slo_tpot_s=0.05)
    f = dis.max_rate_rps / trace.stats()["rate_rps"]
    assert simulate_disagg(trace.scale_rate(f), **kw).metrics["slo_attainment"] >= 0.9
    assert simulate_disagg(trace.scale_rate(2 * f), **kw).metrics["slo_attainment"] < 0.9
    with pytest.raises(InvalidArgumentError):
        search_plans(trace, num_gpus=2, colocated=False, disaggregated=False, progress=False)


def test_pipelined_capacity_beats_the_sequential_pipeline(trace):
    kw = dict(model="codellama-34b", tp=1, pp=2, bisect_steps=3, slo_ttft_s=2.0, slo_tpot_s=0.2)
    mb = max_rate(trace, **kw)["rate"]
    seq = max_rate(trace, pipeline="sequential", **kw)["rate"]
    assert mb > seq
    assert simulate(trace, model="codellama-34b", pp=2).config["pipeline"] == "micro_batch"


def test_cli_disaggregated_sim_and_plan(capsys):
    from sysgym.experiments.cli import main

    assert main(["serve", "sim", "--preset", "tiny", "--prefill", "1,1,1", "--decode", "1,1,2"]) == 0
    out = capsys.readouterr().out
    assert "disaggregated: prefill 1 x TP1 PP1" in out and "decode 2 x TP1 PP1" in out and "3 GPUs" in out
    assert main(["serve", "sim", "--preset", "tiny", "--prefill", "1,1,0"]) == 2
    assert "replicas must be an integer >= 1" in capsys.readouterr().err
    assert main(["serve", "sim", "--preset", "tiny", "--decode", "1,1,1", "--decode-router", "rr"]) == 2
    assert "router" in capsys.readouterr().err
    assert main(["serve", "plan", "--preset", "tiny", "--num-gpus", "2", "--disagg-only", "--pd-ratios", "1:1",
                 "--batch-caps", "64"]) == 0
    out = capsys.readouterr().out
    assert "1 x TP1 PP1" in out and "1:1" in out and "colocated" not in out
    assert main(["serve", "plan", "--preset", "tiny", "--num-gpus", "2", "--disagg", "--pd-ratios", "0:1"]) == 2
    assert "P:D ratio" in capsys.readouterr().err
