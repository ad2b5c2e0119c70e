"""Our default model against published observations (slow: the default model trains for minutes once).

Run with `pytest -m slow tests/kv_eviction/test_calibration.py`. They use the user cache (not the tmp
cache of the fast tests), so the model trains only once per machine.
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


@pytest.mark.xfail(strict=True, reason="our 0.5 M-parameter model, trained on 3.3 M bytes, has not formed an "
                   "attention sink (first 4 tokens get about their uniform share); StreamingLLM's Fig. 2 needs a "
                   "much longer-trained model. Strict: this starts failing when a better default model has a sink.")
def test_first_tokens_are_an_attention_sink(user_cache):
    """StreamingLLM Fig. 2: beyond the bottom two layers the first tokens get most attention (>= 50 %)."""
    s = sink_share(generate(seed=0, preset="default"), k=4)
    assert (s["per_layer"][2:] >= 0.5).all(), s
