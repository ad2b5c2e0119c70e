"""The attention patterns eviction policies rely on, measured on a model (`sysgym kv inspect`).

* Attention sinks (StreamingLLM, Xiao et al. ICLR 2024, §3.1, Fig. 2): the share of each layer's attention
  that goes to the first `k` tokens, averaged over heads, sequences and the query rows t >= k (rows where
  those tokens are not the whole context), next to the share uniform attention would give them.
* Heavy hitters (H2O, Zhang et al. NeurIPS 2023, §3.2 and Fig. 2): each key's accumulated attention (the sum
  over all later queries, H2O's score), and the share of the total that the top `heavy` fraction of keys
  receive, per layer (mean over heads and sequences). Under causal masking early keys accumulate more even
  with uniform attention, so the uniform figure is printed next to it.

Sequences are held-out stdlib text (the instances' split), seeded.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from sysgym.envs.kv_eviction.corpus import load_corpus
from sysgym.envs.kv_eviction.model import LoadedModel, get_model
from sysgym.errors import InvalidArgumentError


def _uniform(t_len: int, k: int, heavy: float) -> tuple[float, float]:
    rows = np.arange(k, t_len)
    sink = float(np.mean(k / (rows + 1)))
    acc = np.cumsum((1.0 / np.arange(1, t_len + 1))[::-1])[::-1]  # key j: sum over t >= j of 1/(t+1)
    top = int(np.ceil(heavy * t_len))
    return sink, float(np.sort(acc)[::-1][:top].sum() / acc.sum())


@torch.no_grad()
def attention_patterns(model: str | LoadedModel = "default", *, num_sequences: int = 8, seq_len: int | None = None,
                       k: int = 4, heavy: float = 0.2, seed: int = 0, chunk: int = 2) -> dict[str, Any]:
    """Per-layer sink share and heavy-hitter concentration (see the module doc) of the full-cache attention."""
    loaded = model if isinstance(model, LoadedModel) else get_model(model)
    t_len = int(seq_len or loaded.cfg.ctx)
    if not 2 * k <= t_len <= loaded.cfg.ctx:
        raise InvalidArgumentError(f"seq_len must be in {2 * k}..{loaded.cfg.ctx} (the model's context), got {t_len}")
    if not 0 < heavy < 1 or num_sequences < 1 or k < 1:
        raise InvalidArgumentError(f"need 0 < heavy < 1, num_sequences >= 1 and k >= 1; got heavy={heavy}, "
                                   f"num_sequences={num_sequences}, k={k}")
    tokens = load_corpus(loaded.cfg.max_train_bytes).sample("eval", np.random.default_rng(seed), num_sequences, t_len)
    top = int(np.ceil(heavy * t_len))
    sink, conc = [], []
    for c0 in range(0, num_sequences, chunk):
        _, attn = loaded.module(torch.from_numpy(tokens[c0:c0 + chunk]), need_attn=True)
        sink.append(torch.stack([a[:, :, k:, :k].sum(-1).mean(-1) for a in attn], 1))  # (n, L, H)
        acc = torch.stack([a.sum(2) for a in attn], 1).double()  # (n, L, H, T) accumulated attention per key
        conc.append(acc.sort(-1, descending=True).values[..., :top].sum(-1) / acc.sum(-1))
    sink_lh = torch.cat(sink).double().mean(0).numpy()  # (L, H)
    conc_lh = torch.cat(conc).mean(0).numpy()
    u_sink, u_conc = _uniform(t_len, k, heavy)
    return {"model": loaded.name, "weights": loaded.digest, "num_sequences": num_sequences, "seq_len": t_len,
            "k": k, "heavy": heavy, "sink_share": sink_lh.mean(1).tolist(), "sink_share_per_head": sink_lh.tolist(),
            "heavy_share": conc_lh.mean(1).tolist(), "heavy_share_per_head": conc_lh.tolist(),
            "uniform_sink_share": u_sink, "uniform_heavy_share": u_conc,
            "layers_with_sink": int((sink_lh.mean(1) >= 0.2).sum())}


def plot_patterns(p: dict[str, Any], path) -> Any:
    """Per-layer and per-head bars of both figures, with the uniform share as a dashed line."""
    from sysgym.plotting import pyplot, save_figure

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    panels = ((axes[0], "sink_share", "uniform_sink_share", f"attention on the first {p['k']} tokens"),
              (axes[1], "heavy_share", "uniform_heavy_share",
               f"accumulated attention on the top {p['heavy']:.0%} of keys"))
    for ax, key, uni, label in panels:
        per_head = np.asarray(p[key + "_per_head"])
        n_layer, n_head = per_head.shape
        for h in range(n_head):
            ax.scatter(np.arange(n_layer) + (h - n_head / 2) * 0.05, per_head[:, h], s=10, color="grey", alpha=0.6,
                       label="heads" if h == 0 else None)
        ax.bar(np.arange(n_layer), p[key], alpha=0.5, label="layer mean")
        ax.axhline(p[uni], ls="--", color="k", lw=0.8, label="uniform attention")
        ax.set_xlabel("layer")
        ax.set_ylabel(label)
        ax.set_ylim(0, 1)
        ax.set_xticks(range(n_layer))
    axes[0].legend(fontsize=8)
    fig.suptitle(f"model {p['model']} ({p['num_sequences']} x {p['seq_len']} held-out tokens)")
    return save_figure(fig, path)
