"""Checks of our model against published observations on large models (see tests/kv_eviction/test_calibration.py).

* Attention sinks (StreamingLLM, Xiao et al. ICLR 2024, §3.1 and Fig. 2): in Llama-2-7B, beyond the bottom
  two layers, most heads put most of their attention on the first token(s), far above their share of the
  context. `sink_share` measures the share of full-cache attention on the first `k` tokens per layer,
  and the share those tokens would get under uniform attention.
* Sinks matter for eviction (StreamingLLM Table 1): at the same cache size, keeping 4 initial tokens + a
  window beats a window alone (Llama-2-13B on PG19: window-only perplexity 5158 vs 5.40 with 4 sinks).
"""
from __future__ import annotations

import numpy as np

from sysgym.envs.kv_eviction.evaluate import full_attention
from sysgym.envs.kv_eviction.instance import KvInstance


def sink_share(instance: KvInstance, k: int = 4) -> dict[str, np.ndarray | float]:
    """Per layer: mean attention on the first `k` tokens over the decode rows, and the uniform share."""
    w = full_attention(instance, "layer")  # (N, L, 1, T, T)
    rows = np.arange(instance.prompt_len, instance.seq_len - 1)
    share = w[:, :, 0][:, :, rows, :k].sum(-1).mean(axis=(0, 2))  # (L,)
    return {"per_layer": share, "uniform": float(np.mean(np.minimum(k, rows + 1) / (rows + 1)))}
