"""`sysgym kv inspect`: attention on the first k tokens and heavy-hitter concentration per layer."""
import json

import numpy as np
import pytest

from sysgym.envs.kv_eviction.patterns import _uniform, attention_patterns
from sysgym.errors import InvalidArgumentError
from sysgym.experiments.cli import main


def test_patterns_are_shares_with_their_uniform_reference(tiny_instance):
    p = attention_patterns("tiny", num_sequences=2, seq_len=64)
    sink, heavy = np.array(p["sink_share_per_head"]), np.array(p["heavy_share_per_head"])
    assert sink.shape == heavy.shape == (2, 2)  # tiny: 2 layers x 2 heads
    assert np.all((sink >= 0) & (sink <= 1)) and np.all((heavy >= 0.2) & (heavy <= 1))
    assert p["sink_share"] == pytest.approx(sink.mean(1).tolist())
    assert p == attention_patterns("tiny", num_sequences=2, seq_len=64)  # seeded


def test_uniform_reference_matches_a_uniform_attention_matrix():
    t_len, k = 40, 4
    a = np.tril(np.ones((t_len, t_len)))
    a /= a.sum(1, keepdims=True)
    sink = a[k:, :k].sum(1).mean()
    acc = a.sum(0)
    heavy = np.sort(acc)[::-1][:8].sum() / acc.sum()
    assert _uniform(t_len, k, 0.2) == pytest.approx((sink, heavy))


def test_inspect_command_prints_and_plots(tmp_path, capsys, tiny_instance):
    png = tmp_path / "p.png"
    assert main(["kv-eviction", "inspect", "--model", "tiny", "--num-sequences", "1", "--seq-len", "64",
                 "--plot", str(png), "--json"]) == 0
    out = capsys.readouterr().out
    data = json.loads(out[:out.index("\n}\n") + 3])
    assert len(data["sink_share"]) == 2 and png.stat().st_size > 0
    assert "layers with >= 20 % of attention on the first 4 tokens" in out


def test_bad_arguments_are_named_errors(tiny_instance):
    with pytest.raises(InvalidArgumentError):
        attention_patterns("tiny", seq_len=4096)
    with pytest.raises(InvalidArgumentError):
        attention_patterns("tiny", heavy=1.5)
