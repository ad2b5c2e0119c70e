"""Pipeline parallelism with up to pp micro-batches in flight (envs/llm_serving/pipeline.py)."""
import numpy as np
import pytest

from sysgym import kernels
from sysgym.envs.llm_serving import generate, simulate
from sysgym.envs.llm_serving.evaluate import evaluate
from sysgym.envs.llm_serving.latency import BatchLatency
from sysgym.envs.llm_serving.pipeline import StageSends, stage_layers
from sysgym.errors import InfeasibleSolutionError, UnknownNameError


def _loaded_trace():
    return generate(preset="small", seed=0, num_requests=300).trace.scale_rate(4)


@pytest.mark.parametrize("scheduler", ["vllm", "sarathi"])
def test_micro_batches_raise_throughput_up_to_pp_times_the_sequential_pipeline(scheduler):
    tr = _loaded_trace()
    kw = dict(model="codellama-34b", tp=1, pp=2, scheduler=scheduler)
    seq = simulate(tr, pipeline="sequential", **kw).metrics["throughput_rps"]
    mb = simulate(tr, **kw)
    assert mb.config["pipeline"] == "micro_batch"
    thr = mb.metrics["throughput_rps"]
    # several batches in flight keep both stages busy; never more than pp x one batch at a time
    assert 1.15 * seq < thr <= 2 * seq
    # at most pp batches overlap on a replica, and a request is in at most one of them
    it = mb.iterations
    assert np.all(it["start"][2:] >= it["end"][:-2] - 1e-12)
    assert np.any(it["start"][1:] < it["end"][:-1])
    assert evaluate(generate(preset="small", seed=0, num_requests=300, model="codellama-34b", pp=2)
                    .with_(trace=tr), mb.records())["feasible"]


def test_one_request_ttft_is_the_sum_of_stage_times_and_sends():
    model, gpu, tp, pp, prompt = "llama-2-7b", "a100-80gb", 4, 4, 700  # 16 GPUs: the middle boundary crosses nodes
    r = simulate([{"arrival": 0.0, "prompt_tokens": prompt, "output_tokens": 1}], model=model, gpu=gpu, tp=tp, pp=pp)
    lat = BatchLatency(model, gpu, tp=tp, pp=1)
    sends = StageSends(kernels.models.get(model), lat.gpu, tp, pp, lat.calibration)
    assert sends.crosses == [False, True, False]
    s = sends.seconds(prompt)
    assert s[1] > s[0] > 0  # the NIC is slower than NVLink
    want = lat.iteration(prompt, [(prompt, 0)], 0.0, 0) + sum(s)
    assert r.metrics["ttft_p50"] == pytest.approx(want, rel=1e-12)


def test_stage_imbalance_follows_vllm_layer_split():
    assert stage_layers(32, 3) == [11, 11, 10]
    assert stage_layers(48, 4) == [12] * 4
    assert stage_layers(80, 3) == [27, 27, 26]
    # a decode step of one request waits for its previous step to leave the last stage: TBT = traversal
    reqs = [{"arrival": 0.0, "prompt_tokens": 100, "output_tokens": 5}]
    one = simulate(reqs, model="llama-2-7b", pp=3)
    tt = one.requests.token_time
    assert np.allclose(np.diff(tt), np.diff(tt)[0], rtol=0.02)
    assert np.diff(tt)[0] > simulate(reqs, model="llama-2-7b", pp=3, pipeline="sequential").metrics["tbt_p50"] * 0.9


def test_pp1_ignores_the_pipeline_mode_and_bad_mode_is_named():
    tr = generate(preset="small", seed=1, num_requests=120).trace
    a = simulate(tr, scheduler="sarathi", pipeline="micro_batch").metrics
    b = simulate(tr, scheduler="sarathi", pipeline="sequential").metrics
    assert a == b
    with pytest.raises(UnknownNameError, match="pipeline"):
        simulate(tr, pp=2, pipeline="interleaved")


def test_evaluator_rejects_more_than_pp_batches_in_flight():
    inst = generate(preset="small", seed=0, num_requests=80, model="codellama-34b", pp=2)
    res = simulate(inst.trace, **inst.simulate_kwargs())
    rec = res.records()
    assert evaluate(inst, rec)["feasible"]
    it = {k: v.copy() for k, v in rec["iterations"].items()}
    it["end"][0] = it["start"][3] + 1.0  # batch 0 still in flight when batches 1, 2 and 3 launch
    with pytest.raises(InfeasibleSolutionError, match="in flight"):
        evaluate(inst, {**rec, "iterations": it})


def test_a_request_is_in_at_most_one_in_flight_batch(monkeypatch):
    from sysgym.envs.llm_serving.pipeline import PipelineReplica

    launched = []
    orig = PipelineReplica.execute

    def watched(self, prefills, d, extra):
        members = set(d.tolist()) | {r for r, _ in prefills}
        assert not members & self.busy, "a request launched while its previous batch is in flight"
        assert len(self.inflight) < self.pp
        launched.append(len(self.inflight))
        orig(self, prefills, d, extra)

    monkeypatch.setattr(PipelineReplica, "execute", watched)
    for scheduler in ("vllm", "sarathi", "orca"):
        simulate(_loaded_trace()[:150], model="codellama-34b", pp=4, scheduler=scheduler)
    assert max(launched) == 3  # the pipeline did fill: a batch launched with three others in flight


@pytest.mark.parametrize("scheduler", ["vllm", "orca", "sarathi", "past_future", "vtc", "sjf"])
def test_every_scheduler_runs_pipelined_and_the_evaluator_accepts_it(scheduler):
    from sysgym.testing import check_solver

    inst = generate(preset="small", seed=2, num_requests=80, model="codellama-34b", pp=2)
    sol, m = check_solver(f"llm_serving.{scheduler}", inst)
    assert m["num_requests"] == 80 and m["feasible"]
