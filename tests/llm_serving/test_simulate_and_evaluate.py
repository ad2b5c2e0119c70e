"""Public API, records, the evaluator's checks, every registered method against the evaluator."""
import copy

import numpy as np
import pytest

from sysgym import solvers
from sysgym.envs.llm_serving import ROUTERS, generate, load_trace, simulate
from sysgym.envs.llm_serving.evaluate import evaluate
from sysgym.errors import InfeasibleSolutionError, UnknownNameError
from sysgym.solution import Solution
from sysgym.testing import check_solver

KEYS = ("ttft_p50", "ttft_p90", "ttft_p99", "tbt_p50", "tbt_p99", "e2e_p50", "e2e_p99", "throughput_rps",
        "num_preemptions", "num_requests")


@pytest.fixture(scope="module")
def small():
    return generate(preset="small", seed=0)


def test_simulate_public_api_and_records(small):
    r = simulate(small.trace, scheduler="vllm")
    for k in KEYS:
        assert k in r.metrics and np.isfinite(r.metrics[k])
    assert r.metrics["num_requests"] == len(small.trace) == len(r.requests)
    one = r.requests[7]
    assert len(one["token_times"]) == one["output"]
    assert one["arrival"] <= one["first_scheduled"] < one["first_token"] <= one["finish"]
    assert np.all(np.diff(one["token_times"]) > 0)
    ttft = r.requests.first_token - r.requests.arrival
    assert r.metrics["ttft_p50"] == pytest.approx(np.percentile(ttft, 50))
    assert r.metrics["ttft_p50"] <= r.metrics["ttft_p90"] <= r.metrics["ttft_p99"]
    assert 0 < r.metrics["mfu"] < 1 and 0 < r.metrics["gpu_busy_frac"] <= 1 and 0 < r.metrics["kv_util_mean"] < 1


def test_same_seed_same_numbers(small):
    a = simulate(small.trace, scheduler="past_future", seed=3)
    b = simulate(small.trace, scheduler="past_future", seed=3)
    assert a.metrics == b.metrics
    np.testing.assert_array_equal(a.requests.token_time, b.requests.token_time)


@pytest.mark.parametrize("name", ["vllm", "orca", "sarathi", "past_future", "vtc", "sjf"])
def test_registered_schedulers_agree_with_the_evaluator(small, name):
    sol, metrics = check_solver(f"llm_serving.{name}", small)
    assert metrics["e2e_mean"] == sol.objective
    assert metrics["num_requests"] == len(small.trace)


def test_solver_registry_lists_every_policy():
    names = solvers.list("llm_serving")
    for n in ("vllm", "orca", "sarathi", "past_future", "vtc", "sjf", "cpsat"):
        assert f"llm_serving.{n}" in names


def test_evaluator_rejects_tampered_records(small):
    sol = solvers.get("llm_serving.vllm").solve(small)
    rec = sol.decisions

    def broken(mutate):
        r = copy.deepcopy(rec)
        mutate(r)
        return r

    def early(r):
        r["token_time"][r["token_offsets"][3]] = r["arrival"][3] - 1.0

    def dup(r):
        o = r["token_offsets"][5]
        r["token_time"][o + 1] = r["token_time"][o]

    def drop(r):
        r["token_time"][10] = np.nan

    def over(r):
        r["iterations"]["blocks_max"][0] = 10 ** 9

    def short(r):
        r["output"] = r["output"].copy()
        r["output"][0] -= 1

    for fn, constraint in ((early, "causality"), (dup, "token order"), (drop, "token count"),
                           (over, "KV memory"), (short, "output tokens")):
        with pytest.raises(InfeasibleSolutionError) as exc:
            evaluate(small, Solution(broken(fn), sol.objective, "feasible", 0.0))
        assert exc.value.constraint == constraint
    out = evaluate(small, broken(drop), raise_on_infeasible=False)
    assert out["feasible"] is False


@pytest.mark.parametrize("router", ROUTERS)
def test_routers_spread_requests(router):
    inst = generate(preset="cluster", seed=0, num_requests=400)
    r = simulate(inst.trace, num_replicas=4, router=router, seed=1)
    counts = np.bincount(r.requests.replica, minlength=4)
    assert counts.sum() == 400 and counts.min() > 40
    sol_metrics = evaluate(inst.with_(router=router), r.records())
    assert sol_metrics["e2e_mean"] == pytest.approx(r.metrics["e2e_mean"])


def test_state_aware_routing_beats_round_robin_on_skewed_lengths():
    inst = generate(preset="cluster", seed=2, num_requests=600, rate=14.0)
    rr = simulate(inst.trace, num_replicas=4, router="round_robin")
    lo = simulate(inst.trace, num_replicas=4, router="least_outstanding")
    assert lo.metrics["e2e_mean"] < rr.metrics["e2e_mean"]


def test_unknown_router_lists_known(small):
    with pytest.raises(UnknownNameError, match="power_of_two"):
        simulate(small.trace, router="random")


def test_more_load_means_more_latency(shared_data):
    tr = load_trace(shared_data / "azure_llm_2023" / "conv.csv", limit=1500)
    lo = simulate(tr.scale_rate(0.5))
    hi = simulate(tr.scale_rate(1.0))
    assert hi.metrics["ttft_p50"] > lo.metrics["ttft_p50"]
    assert hi.metrics["e2e_p99"] > lo.metrics["e2e_p99"]


def test_cpsat_bound_is_below_every_policy():
    inst = generate(preset="tiny", seed=0)
    sol, _ = check_solver("llm_serving.cpsat", inst, time_limit=3)
    assert 0 < sol.bound <= sol.objective and 0 <= sol.gap < 1
    for name in ("vllm", "orca", "sarathi", "past_future", "vtc", "sjf"):
        other, _ = check_solver(f"llm_serving.{name}", inst)
        assert other.objective >= sol.bound - 1e-12


def test_request_dicts_tp_pp_and_evaluator_on_parallel_replicas():
    reqs = [{"arrival": 0.1 * i, "prompt_tokens": 300 + 10 * i, "output_tokens": 20 + i} for i in range(30)]
    tp2 = simulate(reqs, model="codellama-34b", tp=2)
    chunked = simulate(reqs, model="codellama-34b", tp=2, scheduler="sarathi", chunk_size=256)
    assert chunked.metrics["num_requests"] == 30
    pp2 = simulate(reqs, model="codellama-34b", tp=1, pp=2)
    assert tp2.metrics["num_requests"] == pp2.metrics["num_requests"] == 30
    # TP splits each GEMM over two GPUs; PP (stages in sequence, no micro-batching) does not: slower decode
    assert tp2.metrics["tbt_p50"] < pp2.metrics["tbt_p50"]
    inst = generate(preset="small", seed=0, num_requests=60, model="codellama-34b", pp=2)
    from sysgym.testing import check_solver as chk

    sol, m = chk("llm_serving.vllm", inst)
    assert m["num_requests"] == 60


def test_truncation_follows_max_tokens():
    reqs = [{"arrival": 0.0, "prompt_tokens": 5000, "output_tokens": 100}]
    r = simulate(reqs)
    assert r.requests.prompt[0] + r.requests.output[0] == 4096 and r.metrics["num_truncated"] == 1
    with pytest.raises(Exception, match="max_tokens"):
        simulate(reqs, oversize="error")


def test_bound_on_instances_too_large_for_cpsat_is_the_srpt_relaxation():
    inst = generate(preset="cluster", seed=0, num_requests=200)
    sol, _ = check_solver("llm_serving.cpsat", inst, time_limit=2, schedulers=["vllm"])
    assert sol.stats["cpsat_status"] == "SKIPPED"
    assert sol.stats["trivial_bound"] <= sol.bound <= sol.objective


def test_records_survive_a_json_round_trip(small):
    import json

    from sysgym.records import _jsonable

    sol = solvers.get("llm_serving.sarathi").solve(small)
    back = json.loads(json.dumps(_jsonable(sol.decisions)))
    assert evaluate(small, back)["e2e_mean"] == pytest.approx(sol.objective, rel=1e-12)


def test_a_request_larger_than_the_kv_pool_is_refused_by_name():
    from sysgym.errors import InvalidInstanceError

    with pytest.raises(InvalidInstanceError, match="request 1 needs 40 KV blocks"):
        simulate([{"arrival": 0.0, "prompt_tokens": 10, "output_tokens": 5},
                  {"arrival": 1.0, "prompt_tokens": 600, "output_tokens": 40}], num_blocks=30)


def test_instances_save_and_load_with_named_errors(tmp_path):
    import sysgym
    from sysgym.envs.llm_serving import load
    from sysgym.errors import TraceFormatError

    inst = generate(preset="tiny", seed=4)
    back = load(inst.save(tmp_path / "tiny.json"))
    assert back.digest() == inst.digest() and back.name == inst.name
    assert sysgym.instance(f"llm_serving/file:{tmp_path / 'tiny.json'}").digest() == inst.digest()
    csv = tmp_path / "t.csv"
    csv.write_text("arrived_at,num_prefill_tokens,num_decode_tokens\n0,10,5\n0.5,20,3\n")
    from_csv = load(csv, num_blocks=64)  # a trace file on a deployment
    assert len(from_csv.trace) == 2 and from_csv.num_blocks == 64 and from_csv.name == f"llm_serving/file:{csv}"
    (tmp_path / "bad.json").write_text('{"format": "sysgym.llm_serving.instance/1", "name": "x"}')
    with pytest.raises(TraceFormatError, match="lacks field 'trace'"):
        load(tmp_path / "bad.json")
    (tmp_path / "odd.json").write_text('{"trace": {"arrival": [0], "prompt": [1], "output": [1]}, "name": "x", '
                                       '"gpus": 3}')
    with pytest.raises(TraceFormatError, match="gpus"):
        load(tmp_path / "odd.json")
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(TraceFormatError, match="not a JSON"):
        load(tmp_path / "broken.json")
    with pytest.raises(UnknownNameError, match="burstgpt"):
        load(csv, format="sharegpt")


def test_digests_of_existing_specs_are_unchanged():
    """The digest hashes the deployment and the trace's digest, as before the family kit (pinned values)."""
    assert generate(preset="small", seed=0).digest() == "8b7de92fa38bfeeb"
    assert generate(preset="tiny", seed=1).digest() == "5fd658d0072462b0"
