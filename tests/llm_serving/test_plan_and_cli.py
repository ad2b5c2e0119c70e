"""Capacity (DistServe goodput) search, serving-plan ranking, plots and the CLI commands."""
import pytest

from sysgym.envs.llm_serving import generate, simulate
from sysgym.solvers.llm_serving.plan import max_rate, search_plans


@pytest.fixture(scope="module")
def trace():
    return generate(preset="small", seed=0, num_requests=200).trace


def test_max_rate_brackets_the_slo_threshold(trace):
    r = max_rate(trace, slo_ttft_s=0.5, slo_tpot_s=0.05, bisect_steps=4)
    assert r["rate"] > 0
    at = simulate(trace.scale_rate(r["factor"]), slo_ttft_s=0.5, slo_tpot_s=0.05).metrics["slo_attainment"]
    above = simulate(trace.scale_rate(r["factor"] * 2), slo_ttft_s=0.5, slo_tpot_s=0.05).metrics["slo_attainment"]
    assert at >= 0.9 > above


def test_plan_search_ranks_by_capacity_and_prices_plans(trace):
    res = search_plans(trace, num_gpus=2, schedulers=("vllm",), batch_caps=(256,), price_per_gpu_hour=2.0,
                       bisect_steps=2, progress=False)
    assert {(r.tp, r.pp, r.replicas) for r in res} == {(1, 1, 2), (2, 1, 1), (1, 2, 1)}
    rates = [r.max_rate_rps for r in res]
    assert rates == sorted(rates, reverse=True)
    for r in res:
        assert r.qps_per_dollar == pytest.approx(r.max_rate_rps * 3600 / (2 * 2.0))


def test_plot_is_written(tmp_path, trace):
    out = simulate(trace, scheduler="sarathi").plot(tmp_path / "run.png")
    assert out.is_file() and out.stat().st_size > 10_000


@pytest.mark.parametrize("command", [["serve", "sim"], ["serve-sim"]])
def test_cli_serve_sim_and_errors(capsys, command):
    from sysgym.experiments.cli import main

    assert main([*command, "--preset", "tiny", "--scheduler", "sarathi", "--params", '{"chunk_size": 64}']) == 0
    out = capsys.readouterr().out
    assert "scheduler sarathi" in out and "ttft_p99" in out and "\n\n" not in out
    assert main([*command, "--preset", "tiny", "--scheduler", "nope"]) == 2
    assert "known schedulers" in capsys.readouterr().err
    assert main([*command, "--preset", "tiny", "--params", '{"chunk": 5}']) == 2
    assert "no parameter(s) chunk" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["serve", "plan"], ["serve-plan"]])
def test_cli_serve_plan_prints_one_table(capsys, tmp_path, command):
    import json

    from sysgym.experiments.cli import main

    out_json = tmp_path / "plans.json"
    assert main([*command, "--preset", "small", "--requests", "80", "--num-gpus", "2", "--schedulers", "vllm",
                 "--batch-caps", "64", "--max-pp", "1", "--price", "2.0", "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert "capacity" in out and "cheapest per request" in out
    assert "\n\n" not in out and not out.endswith("\n\n")  # no blank lines in piped output
    assert {(p["tp"], p["replicas"]) for p in json.loads(out_json.read_text())} == {(1, 2), (2, 1)}
