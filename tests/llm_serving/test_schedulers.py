"""The schedulers' defining rules: watermark, newest-first recompute preemption, chunked-prefill budget,
Past-Future's peak formula, VTC's counter lift, Orca's reservation, SJF's order."""
import numpy as np
import pytest

from sysgym.envs.llm_serving import Trace, make_scheduler, simulate
from sysgym.errors import InvalidArgumentError, UnknownNameError
from sysgym.solvers.llm_serving.schedulers import (
    PastFutureScheduler,
    SjfScheduler,
    VllmScheduler,
    VtcScheduler,
    peak_tokens,
)


class FakeSim:
    """The scheduler-facing view of a replica, for unit tests of single rules."""

    def __init__(self, n=8, num_blocks=1000, clients=None):
        self.num_blocks, self.block_size, self.max_tokens = num_blocks, 16, 4096
        self.used = 0
        self.prompt = np.full(n, 32)
        self.output = np.full(n, 8)
        self.generated = np.zeros(n, np.int64)
        self.arrival = np.arange(n, dtype=float)
        self.client = np.zeros(n, np.int64) if clients is None else np.asarray(clients)
        self.running = []

    @property
    def free_blocks(self):
        return self.num_blocks - self.used


def test_watermark_rule_keeps_one_percent_of_blocks_free():
    sim = FakeSim(num_blocks=1000)
    s = VllmScheduler(watermark=0.01)
    s.bind(sim)
    assert s.watermark_blocks == 10
    sim.used = 890  # 110 free
    assert s.fits(0, 100)  # leaves 10 = watermark
    assert not s.fits(0, 101)  # would leave 9


def test_watermark_delays_admission_in_the_simulator():
    # one long request holds almost all blocks; a second one fits the pool but not above the watermark
    tr = Trace([0.0, 0.01], [16 * 90, 16 * 6], [50, 5])
    r = simulate(tr, num_blocks=100, watermark=0.05)  # watermark 5 blocks: 100 - 90 - 6 < 5
    first_done = r.requests.finish[0]
    assert r.requests.first_scheduled[1] >= first_done - 1e-12
    r0 = simulate(tr, num_blocks=100, watermark=0.0)
    assert r0.requests.first_scheduled[1] < r0.requests.finish[0]


def test_newest_request_is_preempted_first_by_recompute():
    # three requests of 1 block each grow to 14 blocks; 30 blocks hold only two of them at the end
    tr = Trace([0.0, 0.001, 0.002], [15, 15, 15], [200, 200, 200])
    r = simulate(tr, num_blocks=30, watermark=0.0)
    pre = r.requests.num_preemptions
    assert pre[2] >= 1 and pre[0] == 0 and pre[1] == 0
    # recompute: the victim re-prefills prompt + generated tokens, so it finishes after the others
    assert r.requests.finish[2] > r.requests.finish[1]
    assert r.metrics["num_preemptions"] == int(pre.sum())
    # victim choice on a running list: latest arrival, whatever its position
    sim = FakeSim()
    s = VllmScheduler()
    s.bind(sim)
    assert s.victim([3, 5, 1]) == 5


def test_swap_preemption_keeps_the_kv_and_costs_pcie_time():
    tr = Trace([0.0, 0.001, 0.002], [15, 15, 15], [200, 200, 200])
    r = simulate(tr, num_blocks=30, watermark=0.0, preemption_mode="swap")
    assert r.requests.num_preemptions[2] >= 1
    assert r.metrics["num_requests"] == 3


@pytest.mark.parametrize("chunk", [64, 256])
def test_sarathi_iterations_respect_the_token_budget(chunk):
    tr = Trace(np.linspace(0, 1, 30), np.full(30, 700), np.full(30, 20))
    r = simulate(tr, scheduler="sarathi", chunk_size=chunk)
    tokens = r.iterations["tokens"]
    assert tokens.max() == chunk  # the budget is used in full while prompts wait
    assert np.all(tokens <= chunk)
    # a 700-token prompt needs ceil(700 / chunk) iterations before its first token
    first_iters = np.searchsorted(r.iterations["end"], r.requests.first_token[0]) + 1
    assert first_iters >= int(np.ceil(700 / chunk))
    whole = simulate(tr, scheduler="vllm")
    assert whole.iterations["tokens"].max() >= 700  # without chunks, one iteration takes whole prompts


def _brute_peak(cur, rem):
    best = int(np.sum(cur))
    for t in range(1, int(rem.max()) + 1):
        alive = rem >= t
        best = max(best, int(np.sum(cur[alive] + t)))
    return best


def test_past_future_peak_formula_equals_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(300):
        n = int(rng.integers(1, 12))
        cur = rng.integers(1, 500, n)
        rem = rng.integers(1, 300, n)
        assert peak_tokens(cur, rem) == _brute_peak(cur, rem)


def test_past_future_prediction_follows_its_definition_as_the_history_turns_over():
    """The incrementally sorted history gives, for every generated count g, the quantile of the last `history`
    finished outputs longer than g (capped by max_tokens - prompt), minus g, at least 1."""
    rng = np.random.default_rng(1)
    n = 400
    sim = FakeSim(n=n)
    sim.output = rng.integers(1, 60, n)  # many ties: evictions must remove one copy of a repeated length
    sim.prompt = rng.integers(1, 4096 - 60, n)
    s = PastFutureScheduler(history=7, min_history=3, quantile=0.7)
    s.bind(sim)
    rids = np.arange(n)
    for k in range(n):
        s.on_finish(k)
        past = np.sort(sim.output[max(0, k - 6):k + 1])
        if len(past) < 3:
            continue
        sim.generated = rng.integers(0, 70, n)
        want = []
        for p, g in zip(sim.prompt, sim.generated):
            above = past[past > g]
            q = above[int(np.floor(0.7 * (len(above) - 1)))] if len(above) else 0
            want.append(max(min(int(q), 4096 - int(p)) - int(g), 1))
        assert s.predicted_remaining(rids).tolist() == want


def test_past_future_admits_less_than_its_peak_allows_and_oracle_avoids_preemption():
    tr = Trace(np.linspace(0, 0.5, 40), np.full(40, 100), np.full(40, 300))
    oracle = simulate(tr, scheduler="past_future", predictor="oracle", num_blocks=200, watermark=0.0)
    greedy = simulate(tr, scheduler="vllm", num_blocks=200, watermark=0.0)
    assert greedy.metrics["num_preemptions"] > 0
    assert oracle.metrics["num_preemptions"] == 0  # exact lengths: the peak never exceeds the pool
    assert oracle.iterations["blocks_max"].max() <= 200


def test_past_future_admission_is_its_peak_rule_whatever_decides_it():
    """can_admit's shortcuts (a batch of n within n x max_tokens, the sum bounds) give the rule's answer: the
    predicted peak of the batch with the candidate, plus a partly empty last block each, within the cache."""
    rng = np.random.default_rng(2)
    for num_blocks in (60, 300, 1000, 5000):
        sim = FakeSim(n=40, num_blocks=num_blocks)
        sim.output = rng.integers(2, 600, 40)
        sim.prompt = rng.integers(1, 4096 - sim.output + 1)
        s = PastFutureScheduler(min_history=5, history=30)
        s.bind(sim)
        for k in range(30):
            s.on_finish(k)
            sim.generated = rng.integers(0, sim.output)
            sim.running = sorted(rng.choice(39, int(rng.integers(0, 12)), replace=False).tolist())
            rids = np.array(sim.running + [39])
            cur = sim.prompt[rids] + sim.generated[rids]
            peak = peak_tokens(cur, s.predicted_remaining(rids)) + 15 * len(rids)
            assert s.can_admit(39, 0) == (peak <= (num_blocks - s.watermark_blocks) * 16)


def test_past_future_refusal_holds_as_long_as_it_says():
    """`refusal_holds`: a Past-Future refusal by the predicted peak, `over` tokens above the cache, stays a
    refusal at the next over - 1 boundaries while the running requests decode (the peak drops by at most one
    token per decode iteration), for the history-based prediction with ties, the cold start and the oracle."""
    rng = np.random.default_rng(3)
    checked = 0
    for predictor, min_history in (("past", 5), ("past", 1000), ("oracle", 5)):
        for _ in range(60):
            sim = FakeSim(n=40, num_blocks=int(rng.integers(60, 600)))
            sim.output = rng.integers(2, 80, 40)
            sim.prompt = rng.integers(1, 4096 - sim.output + 1)
            s = PastFutureScheduler(predictor=predictor, min_history=min_history, history=30,
                                    quantile=float(rng.uniform(0, 1)))
            s.bind(sim)
            for k in range(int(rng.integers(0, 30))):
                s.on_finish(k)
            sim.running = sorted(rng.choice(39, int(rng.integers(1, 12)), replace=False).tolist())
            sim.generated = rng.integers(0, sim.output)
            if s.can_admit(39, 0):
                continue
            hold = s.refusal_holds(39, 7)
            assert hold is not None and hold[1] == 7 + s.watermark_blocks and hold[0] >= 0
            run = np.array(sim.running)
            for _ in range(hold[0]):
                if (sim.generated[run] + 1 >= sim.output[run]).any():
                    break  # a completion ends the run (and changes the history)
                sim.generated[run] += 1
                assert not s.can_admit(39, 0)
                checked += 1
    assert checked > 200


def _calls(monkeypatch, name: str) -> list:
    """Wrap `Replica.<name>` to record each call's (keyword arguments, result)."""
    from sysgym.envs.llm_serving import replica

    seen = []
    orig = getattr(replica.Replica, name)

    def wrapped(self, *a, **k):
        out = orig(self, *a, **k)
        seen.append((k, out))
        return out

    monkeypatch.setattr(replica.Replica, name, wrapped)
    return seen


def _same_run(a, b) -> None:
    ra, rb = a.records(), b.records()
    for k in ("token_time", "first_scheduled", "finish", "num_preemptions", "kv_area", "tokens_processed"):
        np.testing.assert_array_equal(ra[k], rb[k])
    for k, v in ra["iterations"].items():
        np.testing.assert_array_equal(v, rb["iterations"][k])
    for ma, mb in zip(a.memory_trace, b.memory_trace, strict=True):
        np.testing.assert_array_equal(ma, mb)
    assert a.metrics == b.metrics


def test_decode_runs_of_a_refused_head_change_nothing(monkeypatch):
    """With Past-Future's refusal bound the replica runs the decode iterations of a refused head in one
    array pass (`Replica._decode_run`); every output, to the bit, is the iteration-by-iteration one."""

    class NoBound(PastFutureScheduler):
        refusal_holds = None  # the replica then steps every boundary

    rng = np.random.default_rng(4)
    n = 400
    tr = Trace(np.sort(rng.uniform(0, 20, n)), rng.integers(20, 600, n), rng.integers(5, 400, n))
    runs = _calls(monkeypatch, "_decode_run")
    fast = simulate(tr, scheduler="past_future", num_blocks=400, min_history=10)
    used = len(runs)
    slow = simulate(tr, scheduler=NoBound(min_history=10), num_blocks=400)
    assert used > 20 and len(runs) == used
    _same_run(fast, slow)


@pytest.mark.parametrize("kw", [dict(num_blocks=300), dict(num_blocks=3000),
                                dict(num_replicas=2, router="least_outstanding", num_blocks=500)])
def test_chunk_runs_change_nothing(monkeypatch, kw):
    """Sarathi's chunked prefills run their iterations in one call (`Replica._chunk_run`: tight memory with
    preemptions and recomputed prompts, roomy memory, and two replicas advanced to each arrival by a
    state-dependent router); every output, to the bit, is the boundary-by-boundary one."""
    from sysgym.envs.llm_serving import replica

    rng = np.random.default_rng(7)
    n = 300
    tr = Trace(np.sort(rng.uniform(0, 30, n)), rng.integers(20, 900, n), rng.integers(2, 300, n))
    runs = _calls(monkeypatch, "_chunk_run")
    fast = simulate(tr, scheduler="sarathi", chunk_size=64, **kw)
    taken = sum(took for _, took in runs)
    monkeypatch.setattr(replica.Replica, "_chunk_run", lambda self, *a: False)
    slow = simulate(tr, scheduler="sarathi", chunk_size=64, **kw)
    assert taken > 100
    if kw["num_blocks"] == 300:
        assert fast.records()["num_preemptions"].sum() > 20  # preempted, recomputed prompts run chunked again
    _same_run(fast, slow)


@pytest.mark.parametrize("sched,kw", [("vllm", {}), ("orca", {}), ("orca", {"reserve": "pow2"}),
                                      ("sarathi", {"chunk_size": 64})])
def test_scalar_fast_forward_is_the_array_one(monkeypatch, sched, kw):
    """Short decode runs of small batches are computed in Python scalars (`Replica._ff_scalar`, with Orca's
    reservations when they cover the whole run); with that path off (FF_SCALAR_ITERS = 0) every run takes the
    array branch: every output, to the bit, is the same."""
    from sysgym.envs.llm_serving import replica

    rng = np.random.default_rng(11)
    n = 300
    tr = Trace(np.sort(rng.uniform(0, 60, n)), rng.integers(20, 600, n), rng.integers(2, 300, n))
    calls = _calls(monkeypatch, "_ff_scalar")
    fast = simulate(tr, scheduler=sched, num_blocks=2000, **kw)
    assert len(calls) > 50
    if sched == "orca" and not kw:
        assert sum(k.get("reserved", False) for k, _ in calls) > 50  # the reserved branch ran
    monkeypatch.setattr(replica, "FF_SCALAR_ITERS", 0)
    n_fast = len(calls)
    slow = simulate(tr, scheduler=sched, num_blocks=2000, **kw)
    assert len(calls) == n_fast
    _same_run(fast, slow)


def test_scalar_decode_runs_are_the_array_ones(monkeypatch):
    """A refused head's decode runs of up to RUN_SCALAR_MAX requests are computed in Python numbers
    (`Replica._decode_run_scalar`); with that path off every run takes the array branch: the same outputs."""
    from sysgym.envs.llm_serving import replica

    rng = np.random.default_rng(4)
    n = 400
    tr = Trace(np.sort(rng.uniform(0, 20, n)), rng.integers(20, 600, n), rng.integers(5, 400, n))
    calls = _calls(monkeypatch, "_decode_run_scalar")
    fast = simulate(tr, scheduler="past_future", num_blocks=400, min_history=10)
    assert len(calls) > 20
    monkeypatch.setattr(replica, "RUN_SCALAR_MAX", 0)
    n_fast = len(calls)
    slow = simulate(tr, scheduler="past_future", num_blocks=400, min_history=10)
    assert len(calls) == n_fast
    _same_run(fast, slow)


def test_vtc_counter_lift():
    sim = FakeSim(n=6, clients=[0, 0, 1, 1, 2, 2])
    s = VtcScheduler()
    s.bind(sim)
    s.on_arrival(0)  # client 0 backlogged
    s.counter[0] = 1000.0
    s.on_arrival(2)  # client 1 arrives to an empty queue of its own: lifted to min backlogged counter
    assert s.counter[1] == 1000.0
    s.counter[2] = 5000.0
    s.on_arrival(4)  # a client already above the others keeps its counter
    assert s.counter[2] == 5000.0
    # the least-served backlogged client goes first
    s.counter[1] = 900.0
    assert s.peek() == 2
    s.pop(2)
    assert s.last_left == 1
    # when nobody is backlogged, a newcomer is lifted to the counter of the client that left last
    s.pop(0)
    s.pop(4)
    s.counter[0] = 0.0
    s.on_arrival(1)
    assert s.counter[0] == s.counter[2]


def test_vtc_counts_service_tokens():
    tr = Trace([0.0, 0.0], [100, 50], [10, 20], client=[0, 1])
    sched = make_scheduler("vtc")
    simulate(tr, scheduler=sched)
    assert sched.counter.tolist() == [100 + 2 * 10, 50 + 2 * 20]


def test_orca_reserves_the_worst_case_and_never_preempts():
    tr = Trace(np.linspace(0, 0.2, 20), np.full(20, 100), np.full(20, 400))
    orca = simulate(tr, scheduler="orca", reserve="oracle", num_blocks=200, watermark=0.0)
    assert orca.metrics["num_preemptions"] == 0
    assert orca.iterations["blocks_max"].max() <= 200
    mx = simulate(tr, scheduler="orca", reserve="max", max_tokens=1024, num_blocks=200)
    assert mx.iterations["seqs"].max() <= 200 // 64  # 1024-token reservations: three at a time


def test_sjf_runs_short_jobs_first():
    tr = Trace([0, 0, 0, 0.0], [50, 50, 50, 50], [400, 10, 300, 5])
    r = simulate(tr, scheduler="sjf", max_num_seqs=1)
    order = np.argsort(r.requests.first_scheduled)
    assert order.tolist() == [3, 1, 2, 0]


def test_unknown_scheduler_and_parameter_errors():
    with pytest.raises(UnknownNameError, match="sarathi"):
        simulate(Trace([0.0], [10], [5]), scheduler="fastserve")
    with pytest.raises(UnknownNameError, match="known schedulers"):
        make_scheduler("cpsat")  # a registered method, but no scheduler
    with pytest.raises(InvalidArgumentError, match="chunk_size"):
        make_scheduler("sarathi", chunk=5)
    assert isinstance(make_scheduler("sjf", predictor="noisy", seed=3), SjfScheduler)


def test_a_scheduler_object_serves_every_replica_with_its_own_state():
    tr = Trace(np.linspace(0, 1, 40), np.full(40, 64), np.full(40, 30), client=np.arange(40) % 2)
    sched = make_scheduler("vtc", w_output=3.0)
    by_object = simulate(tr, scheduler=sched, num_replicas=2)
    by_name = simulate(tr, scheduler="vtc", w_output=3.0, num_replicas=2)
    assert by_object.metrics == by_name.metrics  # replica 1 got a clone with w_output=3, not the defaults
    assert by_object.config["scheduler_params"]["w_output"] == 3.0


def test_which_refusals_hold_while_the_batch_decodes():
    """The replica skips boundaries only where the scheduler's decision cannot change: a memory refusal holds;
    Past-Future's refusal by the predicted peak does not (the batch's predicted future shrinks as it decodes);
    VTC's head may change while its client's counter grows."""
    sim = FakeSim(n=4, clients=[0, 0, 1, 1])
    pf = PastFutureScheduler()
    pf.bind(sim)
    assert pf.holds_while_decoding(0, 10, False) and not pf.holds_while_decoding(0, 10, True)
    vtc = VtcScheduler()
    vtc.bind(sim)
    sim.running = [1]
    assert not vtc.holds_while_decoding(0, 10, False)  # client 0 runs request 1: its counter grows
    assert vtc.holds_while_decoding(2, 10, False)  # client 1 has nothing running


def test_vtc_shields_light_clients_from_a_heavy_one():
    from sysgym.envs.llm_serving import generate

    inst = generate(preset="multi_tenant", seed=0, num_requests=600, client_rates=[8.0, 0.5, 0.5, 0.5])
    fcfs = simulate(inst.trace, scheduler="vllm").metrics
    fair = simulate(inst.trace, scheduler="vtc").metrics
    light = [f"client{c}_ttft_mean" for c in (1, 2, 3)]
    for key in light:
        assert fair[key] < 0.2 * fcfs[key]  # FCFS makes everyone queue behind the heavy client
    assert fair["client0_ttft_mean"] >= fcfs["client0_ttft_mean"]  # the heavy client pays for it
