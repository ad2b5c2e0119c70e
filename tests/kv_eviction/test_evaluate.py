"""The evaluator runs the real model: the full cache is exact, schedules are checked, seeds replay."""
from dataclasses import replace

import numpy as np
import pytest
import torch

from sysgym.envs.kv_eviction import evaluate_policy, generate, get_model, load, make_policy, run_policy, save
from sysgym.envs.kv_eviction.corpus import BOS, load_corpus
from sysgym.envs.kv_eviction.evaluate import evaluate
from sysgym.envs.kv_eviction.model import _LOADED, CONFIGS
from sysgym.errors import InfeasibleSolutionError, InvalidInstanceError
from sysgym.instances import from_spec


def test_full_cache_has_zero_loss_increase(tiny_instance):
    sim = run_policy(tiny_instance, make_policy("full"))
    m = evaluate(tiny_instance, sim.decisions(reference=True))
    assert m["loss_increase"] == 0.0 and m["perplexity_ratio"] == 1.0
    assert m["top1_agreement"] == 1.0 and m["attention_mass"] == pytest.approx(1.0, abs=1e-6)
    assert m["cache_tokens"] == tiny_instance.seq_len - 1 and not m["within_budget"]


def test_eviction_changes_the_model_output_and_keeps_less_mass(tiny_instance):
    m = evaluate_policy("streaming_llm", budget=8, num_sequences=2, seq_len=64, model="tiny")
    assert m["cache_tokens"] <= 8 and m["within_budget"]
    assert m["loss_increase"] != 0.0
    assert m["top1_agreement"] < 1.0
    assert 0.0 < m["attention_mass"] < 0.9
    for key in ("loss_increase", "perplexity_ratio", "top1_agreement", "attention_mass"):
        assert np.isfinite(m[key])
    assert m["perplexity_ratio"] == pytest.approx(np.exp(m["loss_increase"]))


def test_budget_as_fraction_equals_budget_as_count():
    a = evaluate_policy("h2o", budget=0.25, num_sequences=1, seq_len=64, model="tiny")
    b = evaluate_policy("h2o", budget=16, num_sequences=1, seq_len=64, model="tiny")
    assert a["budget_tokens"] == b["budget_tokens"] == 16
    assert a["loss_increase"] == b["loss_increase"]


def test_incremental_decoding_equals_the_masked_parallel_forward(tiny_instance):
    """The policy's own decode (KV cache with eviction) and the evaluator's one-pass mask agree."""
    sim = run_policy(tiny_instance, make_policy("tova"))
    from sysgym.envs.kv_eviction.evaluate import keep_mask

    model = get_model("tiny").module
    tokens = torch.from_numpy(tiny_instance.tokens.copy())
    with torch.no_grad():
        logits, _ = model(tokens, keep=keep_mask(sim.evict_step))
    np.testing.assert_allclose(sim.logits.numpy(), logits.numpy(), atol=2e-4)


def _schedule(inst, fill):
    e = np.full((inst.num_sequences, 1, 1, inst.seq_len), inst.seq_len, np.int64)
    return fill(e)


def test_infeasible_schedules_name_the_constraint(tiny_instance):
    inst = tiny_instance
    with pytest.raises(InfeasibleSolutionError, match="budget"):
        evaluate(inst, {"evict_step": _schedule(inst, lambda e: e), "granularity": "sequence"})
    ok = run_policy(inst, make_policy("streaming_llm")).evict_step.astype(np.int64)

    def early(e):
        e = ok.copy()
        e[0, 0, 0, 2] = inst.prompt_len - 1
        return e

    with pytest.raises(InfeasibleSolutionError, match="prompt"):
        evaluate(inst, {"evict_step": early(None), "granularity": "sequence"})
    own = ok.copy()
    own[0, 0, 0, 40] = 40
    with pytest.raises(InfeasibleSolutionError, match="own step"):
        evaluate(inst, {"evict_step": own, "granularity": "sequence"})
    with pytest.raises(InfeasibleSolutionError, match="shape"):
        evaluate(inst, {"evict_step": ok, "granularity": "head"})
    with pytest.raises(InfeasibleSolutionError, match="format"):
        evaluate(inst, {"schedule": ok})


def test_same_seed_same_instance_and_metrics(tiny_instance):
    again = generate(seed=0, preset="tiny", progress=False)
    assert again.digest() == tiny_instance.digest()
    assert generate(seed=1, preset="tiny", progress=False).digest() != tiny_instance.digest()
    assert (tiny_instance.tokens[:, 0] == BOS).all()
    rebuilt = from_spec(tiny_instance.name)
    assert rebuilt.digest() == tiny_instance.digest()
    a = evaluate_policy("random", budget=0.25, num_sequences=2, seq_len=64, model="tiny", seed=3)
    b = evaluate_policy("random", budget=0.25, num_sequences=2, seq_len=64, model="tiny", seed=3)
    assert a == {**b, "tokens_per_s": a["tokens_per_s"]}


def test_instance_save_load_roundtrip_and_validation(tiny_instance, tmp_path):
    path = save(tiny_instance, tmp_path / "inst.json")
    assert load(path).digest() == tiny_instance.digest()
    (tmp_path / "bad.json").write_text('{"format": "other"}')
    with pytest.raises(Exception, match="not a kv_eviction instance"):
        load(tmp_path / "bad.json")
    with pytest.raises(InvalidInstanceError, match="prompt_len"):
        generate(seed=0, preset="tiny", prompt_len=63, progress=False)
    with pytest.raises(InvalidInstanceError, match="context"):
        generate(seed=0, preset="tiny", seq_len=1000, progress=False)


def test_model_is_cached_deterministic_and_better_than_byte_frequencies(kv_cache_dir):
    # a configuration that does not ship (tiny's with another seed) trains on first use into the cache
    cfg = replace(CONFIGS["tiny"], seed=CONFIGS["tiny"].seed + 1)
    first = get_model(cfg, progress=False)
    assert first.path.is_file() and str(first.path).startswith(str(kv_cache_dir))
    _LOADED.clear()
    again = get_model(cfg, progress=False)  # from the file
    assert again.digest == first.digest and again.path == first.path
    assert first.digest != get_model("tiny", progress=False).digest  # (the shipped tiny is another model)
    # held-out loss of the trained model beats the unigram (byte-frequency) entropy of the training split
    corpus = load_corpus(CONFIGS["tiny"].max_train_bytes)
    freq = np.bincount(corpus.train, minlength=256) + 1.0
    p = freq / freq.sum()
    unigram = float(-(p * np.log(p)).sum())
    m = evaluate_policy("full", budget=1.0, num_sequences=4, seq_len=64, model="tiny")
    assert m["loss_full"] < unigram - 0.3, (m["loss_full"], unigram)
