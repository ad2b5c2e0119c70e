"""At full clock the family's own iteration loop (envs/power_cap/server.py) replays a server's requests as the serving
family's simulator does with the same scheduler (Sarathi-Serve chunked prefill, 2048-token chunks, 256 sequences).

If this fails after a change to `sysgym.envs.llm_serving` (e.g. a new attention cost there), the two cost models
have drifted apart: price power_cap's iterations the same way again."""
import numpy as np
import pytest

from sysgym.envs.llm_serving import simulate
from sysgym.envs.power_cap import generate
from sysgym.envs.power_cap.evaluate import replay


def test_uncapped_servers_match_the_serving_simulator():
    inst = generate(seed=0, preset="tiny")
    first, finish = replay(inst, np.zeros((inst.num_intervals, inst.num_servers), int)).request_times()
    ours, ref = {"ttft": [], "tpot": []}, {"ttft": [], "tpot": []}
    for s in range(inst.num_servers):
        ix = np.flatnonzero(inst.server_of == s)
        reqs = np.stack([inst.arrival[ix], inst.prompt[ix], inst.output[ix]], 1)
        rec = simulate(reqs, model=inst.model, gpu=inst.gpu, scheduler="sarathi", chunk_size=inst.max_batched_tokens,
                       max_num_seqs=inst.max_num_seqs, memory_margin=1 - inst.kv_fraction).requests
        done = np.isfinite(finish[ix])  # the reference runs past the horizon; compare what both finished
        assert done.mean() > 0.8
        multi = done & (inst.output[ix] > 1)
        ours["ttft"].append((first[ix] - inst.arrival[ix])[done])
        ref["ttft"].append((rec.first_token - rec.arrival)[done])
        ours["tpot"].append(((finish[ix] - first[ix]) / np.maximum(inst.output[ix] - 1, 1))[multi])
        ref["tpot"].append(((rec.finish - rec.first_token) / np.maximum(rec.output - 1, 1))[multi])
    for key in ("ttft", "tpot"):
        a, b = np.concatenate(ours[key]), np.concatenate(ref[key])
        assert a.mean() == pytest.approx(b.mean(), rel=0.03), key  # measured: within 1.5 %
        assert np.median(a) == pytest.approx(np.median(b), rel=0.05), key
        # Request by request the two differ more (iteration boundaries fall elsewhere, so a request may wait one
        # iteration more or less), but not in distribution.
        assert np.quantile(a, 0.9) == pytest.approx(np.quantile(b, 0.9), rel=0.1), key
