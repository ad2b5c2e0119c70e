"""Our default model (shipped, nothing trains) against published observations (slow: 8 x 256-token runs).

Run with `pytest -m slow tests/kv_eviction/test_calibration.py`. They use the user cache (not the tmp
cache of the fast tests).
"""
import pytest

from sysgym.envs.kv_eviction import evaluate_policy, generate
from sysgym.envs.kv_eviction.calibration import sink_share

pytestmark = pytest.mark.slow


@pytest.fixture
def user_cache(monkeypatch):
    from sysgym.envs.kv_eviction import model

    monkeypatch.delenv("SYSGYM_CACHE_DIR", raising=False)  # the fast tests' tmp cache -> the user cache
    model._LOADED.clear()
    yield
    model._LOADED.clear()


@pytest.mark.parametrize("budget", [0.05, 0.1, 0.2])
def test_sinks_plus_window_no_worse_than_window_alone(user_cache, budget):
    """StreamingLLM Table 1 direction: 4 sinks + window <= window-only perplexity (tolerance 0.5 %)."""
    sinks = evaluate_policy("streaming_llm", budget=budget)
    window = evaluate_policy("streaming_llm", budget=budget, start_size=0)
    assert sinks["perplexity_ratio"] <= window["perplexity_ratio"] * 1.005, (sinks, window)


_NO_SINK = ("the shipped 1.0 M-parameter model, trained on 4.9 M tokens (1,200 steps on one shared CPU core), has "
            "not formed an attention sink: the first 4 tokens get 2-4 % of each layer's attention against a uniform "
            "share of 2 %. Strict: this starts failing when a better-trained default model has one.")


@pytest.mark.xfail(strict=True, reason=_NO_SINK)
def test_first_tokens_are_an_attention_sink(user_cache):
    """StreamingLLM Fig. 2: beyond the bottom two layers the first tokens get most attention (>= 50 %)."""
    s = sink_share(generate(seed=0, preset="default"), k=4)
    assert (s["per_layer"][2:] >= 0.5).all(), s


@pytest.mark.xfail(strict=True, reason=_NO_SINK)
def test_first_tokens_get_a_fifth_of_the_attention_in_half_the_layers(user_cache):
    """Issue 23's target: >= 20 % of the attention on the first 4 tokens in at least half of the layers."""
    from sysgym.envs.kv_eviction.patterns import attention_patterns

    p = attention_patterns("default", num_sequences=4)
    assert 2 * p["layers_with_sink"] >= len(p["sink_share"]), p["sink_share"]


def test_heavy_hitters_concentrate_attention(user_cache):
    """H2O §3.2: a small set of keys receives most accumulated attention; here the top 20 % of keys get more
    than uniform attention would give them in every layer above the first."""
    from sysgym.envs.kv_eviction.patterns import attention_patterns

    p = attention_patterns("default", num_sequences=4)
    assert all(h > p["uniform_heavy_share"] + 0.1 for h in p["heavy_share"][1:]), p["heavy_share"]
