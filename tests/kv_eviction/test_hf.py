"""The optional Hugging Face path: a clear error without transformers; a real run with a local model.

The real run needs `transformers` and a local causal-LM directory in $SYSGYM_HF_MODEL_DIR (nothing is
downloaded); it is skipped otherwise.
"""
import importlib.util
import os

import pytest

from sysgym.envs.kv_eviction import get_model


@pytest.mark.skipif(importlib.util.find_spec("transformers") is not None, reason="transformers is installed")
def test_hf_model_without_transformers_names_the_missing_package():
    with pytest.raises(ImportError, match="transformers"):
        get_model("hf:/nonexistent")


def test_hf_model_scores_like_the_built_in_one():
    pytest.importorskip("transformers")
    path = os.environ.get("SYSGYM_HF_MODEL_DIR")
    if not path:
        pytest.skip("set SYSGYM_HF_MODEL_DIR to a local Hugging Face causal-LM directory")
    from sysgym.envs.kv_eviction import evaluate_policy

    full = evaluate_policy("full", budget=1.0, num_sequences=1, seq_len=48, model=f"hf:{path}")
    assert full["loss_increase"] == 0.0 and full["top1_agreement"] == 1.0
    m = evaluate_policy("streaming_llm", budget=16, num_sequences=1, seq_len=48, model=f"hf:{path}")
    assert m["cache_tokens"] <= 16 and 0 < m["attention_mass"] < 1
