"""Optional: a local Hugging Face causal LM instead of the model made here (`model="hf:/path/to/dir"`).

Needs `transformers` (not a sysgym dependency; `pip install transformers`). Nothing is downloaded: the
directory must hold the weights and tokenizer. The model runs on CPU in float32 with eager attention, so
attention weights are returned. A Hugging Face model takes one mask for all layers and heads, so only
`granularity="sequence"` schedules run on it; the online decoder re-runs the masked prefix at every step
(quadratic in the sequence length: keep sequences short). Evaluation text is the same held-out stdlib
source, tokenised by the model's tokenizer (BOS first when it has one).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

PREFIX = "hf:"


def is_hf(model) -> bool:
    return isinstance(model, str) and model.startswith(PREFIX)


def _transformers():
    try:
        import transformers
    except ImportError:
        raise ImportError("model 'hf:<dir>' needs the optional package transformers (pip install transformers); "
                          "the built-in models 'default', 'small' and 'tiny' do not") from None
    return transformers


class HFCausalLM(torch.nn.Module):
    """The TinyCausalLM interface (forward with a keep mask, start() for decoding) over a HF model."""

    def __init__(self, model, cfg):
        super().__init__()
        self.hf, self.cfg = model, cfg

    @property
    def n_layer(self) -> int:
        return self.cfg.n_layer

    @property
    def n_head(self) -> int:
        return self.cfg.n_head

    def _mask(self, t: int, keep: torch.Tensor | None, n: int) -> torch.Tensor:
        allowed = torch.ones(t, t, dtype=torch.bool).tril().expand(n, 1, t, t)
        if keep is not None:
            k = keep
            if k.dim() == 5:
                if k.shape[1] != 1 or k.shape[2] != 1:
                    raise ValueError("a Hugging Face model takes one mask for all layers and heads: use "
                                     "granularity='sequence'")
                k = k[:, 0]
            allowed = allowed & k
        zero = torch.zeros((), dtype=torch.float32)
        return torch.where(allowed, zero, torch.tensor(torch.finfo(torch.float32).min))

    @torch.no_grad()
    def forward(self, tokens: torch.Tensor, keep: torch.Tensor | None = None, need_attn: bool = False):
        n, t = tokens.shape
        out = self.hf(input_ids=tokens, attention_mask=self._mask(t, keep, n), output_attentions=need_attn,
                      use_cache=False)
        return out.logits.float(), list(out.attentions) if need_attn else []

    def start(self, tokens: torch.Tensor, prompt_len: int) -> "RecomputeDecoder":
        return RecomputeDecoder(self, tokens, prompt_len)


class RecomputeDecoder:
    """Decoding by re-running the masked prefix (each past row keeps the cache it had at its step)."""

    def __init__(self, model: HFCausalLM, tokens: torch.Tensor, prompt_len: int):
        self.model, self.tokens, self.prompt_len = model, tokens, prompt_len
        n, t = tokens.shape
        self.rows = torch.ones(n, t, t, dtype=torch.bool).tril()

    def prefill(self):
        p = self.prompt_len
        logits, attn = self.model(self.tokens[:, :p], need_attn=True)
        return logits, torch.stack(attn, 1).float()

    def step(self, t: int, keep: torch.Tensor):
        if keep.shape[1] != 1 or keep.shape[2] != 1:
            raise ValueError("a Hugging Face model takes one mask for all layers and heads: use "
                             "granularity='sequence'")
        self.rows[:, t, :t + 1] = keep[:, 0, 0]
        k = self.rows[:, None, None, :t + 1, :t + 1]
        logits, attn = self.model(self.tokens[:, :t + 1], keep=k, need_attn=True)
        return logits[:, -1], torch.stack([a[:, :, -1, :] for a in attn], 1).float()


def load_hf(model: str):
    """A `LoadedModel` for `hf:<dir>` (see the module docstring)."""
    from sysgym.envs.kv_eviction.model import LoadedModel, ModelConfig

    tr = _transformers()
    path = Path(model[len(PREFIX):]).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"Hugging Face model directory {path} does not exist")
    hf = tr.AutoModelForCausalLM.from_pretrained(str(path), attn_implementation="eager", torch_dtype=torch.float32,
                                                 local_files_only=True)
    hf.eval()
    c = hf.config
    cfg = ModelConfig(n_layer=int(c.num_hidden_layers), n_head=int(c.num_attention_heads),
                      d_model=int(c.hidden_size), ctx=int(getattr(c, "max_position_embeddings", 2048)))
    digest = hashlib.sha256((str(path.resolve()) + c.to_json_string()).encode()).hexdigest()[:16]
    module = HFCausalLM(hf, cfg)
    module.tokenizer = tr.AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    module.vocab_size = int(c.vocab_size)
    return LoadedModel(model, cfg, module, digest, {"source": str(path)}, path)


def sample_hf_tokens(loaded, rng: np.random.Generator, num: int, length: int) -> np.ndarray:
    """`num` windows of `length` tokens of held-out stdlib text in the model's own tokenisation."""
    from sysgym.envs.kv_eviction.corpus import load_corpus

    tok = loaded.module.tokenizer
    text = bytes(load_corpus().eval[:400_000]).decode("utf-8", errors="replace")
    ids = np.asarray(tok(text, add_special_tokens=False)["input_ids"], np.int64)
    bos = tok.bos_token_id
    body = length - 1 if bos is not None else length
    if len(ids) <= body:
        raise ValueError(f"held-out text has {len(ids)} tokens, too few for sequences of {length}")
    starts = rng.integers(0, len(ids) - body, size=num)
    out = np.stack([ids[s:s + body] for s in starts])
    return np.concatenate([np.full((num, 1), bos), out], 1) if bos is not None else out
