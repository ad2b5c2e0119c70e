"""Trace loaders (Azure, BurstGPT), malformed rows, fitted generators."""
import numpy as np
import pytest

from sysgym.envs.llm_serving import fit_lengths, generate_trace, load_trace
from sysgym.errors import TraceFormatError, UnknownNameError


def test_azure_conv_trace_loads_with_published_shape(shared_data):
    tr = load_trace(shared_data / "azure_llm_2023" / "conv.csv", format="azure")
    s = tr.stats()
    assert s["num_requests"] == 19366
    assert 3400 < s["duration_s"] < 3600
    assert s["interarrival_cv"] == pytest.approx(1.1, abs=0.1)  # the data README's figure


def test_burstgpt_format(tmp_path):
    p = tmp_path / "burst.csv"
    p.write_text("Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
                 "5,ChatGPT,100,20,120,Conversation log\n"
                 "7,GPT-4,50,0,50,Conversation log\n"  # failed request: dropped
                 "6,GPT-4,30,40,70,API log\n")
    tr = load_trace(p, format="burstgpt")
    assert len(tr) == 2
    assert tr.arrival.tolist() == [0.0, 1.0]
    assert tr.prompt.tolist() == [100, 30] and tr.output.tolist() == [20, 40]
    assert tr.client_names == ("ChatGPT", "GPT-4") and tr.client.tolist() == [0, 1]


@pytest.mark.parametrize("body,where", [
    ("arrived_at,num_prefill_tokens,num_decode_tokens\n0,10,5\n1.5,abc,3\n", "line 3, column 'num_prefill_tokens'"),
    ("arrived_at,num_prefill_tokens,num_decode_tokens\n0,10,5\nx,3,3\n", "line 3, column 'arrived_at'"),
    ("arrived_at,num_prefill_tokens,num_decode_tokens\n0,10,-5\n", "line 2, column 'num_decode_tokens'"),
    ("a,b\n1,2\n", "line 1"),
])
def test_malformed_rows_name_file_line_column(tmp_path, body, where):
    p = tmp_path / "bad.csv"
    p.write_text(body)
    with pytest.raises(TraceFormatError) as exc:
        load_trace(p)
    assert str(p) in str(exc.value) and where in str(exc.value)


def test_unknown_format_lists_known(tmp_path):
    with pytest.raises(UnknownNameError, match="burstgpt"):
        load_trace(tmp_path / "x.csv", format="sharegpt")


def test_fitted_generator_reproduces_trace_means_and_cv(shared_data):
    tr = load_trace(shared_data / "azure_llm_2023" / "conv.csv")
    model = fit_lengths(tr)
    s = tr.stats()
    gen = generate_trace(num_requests=20000, rate=s["rate_rps"], process="gamma", cv=s["interarrival_cv"],
                         lengths=model, seed=1)
    g = gen.stats()
    for key in ("mean_prompt", "mean_output", "interarrival_cv", "rate_rps"):
        assert g[key] == pytest.approx(s[key], rel=0.10), key


def test_gamma_burstiness_and_multi_tenant_mix():
    tr = generate_trace(num_requests=20000, rate=10, process="gamma", cv=3.0, seed=0)
    assert tr.stats()["interarrival_cv"] == pytest.approx(3.0, rel=0.1)
    mt = generate_trace(num_requests=3000, num_clients=3, client_rates=[3, 1, 1], seed=0)
    counts = np.bincount(mt.client)
    assert counts[0] == pytest.approx(1800, rel=0.05) and counts[1] == pytest.approx(600, rel=0.05)
    assert np.all(np.diff(mt.arrival) >= 0)


def test_generator_is_seeded():
    a, b = generate_trace(num_requests=50, seed=3), generate_trace(num_requests=50, seed=3)
    assert a.digest() == b.digest()
    assert a.digest() != generate_trace(num_requests=50, seed=4).digest()
