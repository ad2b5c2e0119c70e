"""A small causal transformer made here (no weights can be downloaded), trained on the stdlib corpus.

Architecture: GPT-2 style (Radford et al. 2019) pre-LayerNorm decoder with learned absolute positions,
multi-head softmax attention and a 4x GELU MLP, written in plain torch so that every attention weight
is visible and any key can be masked per layer, head and query step. Training is deterministic from
`ModelConfig.seed` (torch and numpy seeded, data windows drawn from a seeded generator). Every named model's
weights ship in the package (weights/<name>.pt, float16, with weights/<name>.json: the exact configuration,
steps, training-text file list and every step's loss; made by ship.py), so no named model trains on first use
and none depends on the machine (the same configuration trained on two CPUs gives different weights, and the
stdlib corpus is the running Python's). A custom `ModelConfig` trains on first use and is cached in
`cache_dir()` under a name that hashes the configuration, the corpus and the torch version, so a second call
loads instead of training.

`cache_dir()`: `$SYSGYM_CACHE_DIR/kv_eviction`, else `$XDG_CACHE_HOME/sysgym/kv_eviction`, else
`~/.cache/sysgym/kv_eviction`.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from sysgym.envs.kv_eviction.corpus import VOCAB_SIZE, load_corpus
from sysgym.errors import UnknownNameError


@dataclass(frozen=True)
class ModelConfig:
    n_layer: int = 4
    n_head: int = 4
    d_model: int = 96
    ctx: int = 512  # longest sequence (learned positions)
    train_steps: int = 1600
    batch_size: int = 4
    train_len: int = 512  # training window length (BOS + bytes)
    lr: float = 3e-3  # AdamW peak learning rate, cosine decay to 10 %
    warmup: int = 50
    weight_decay: float = 0.1
    seed: int = 0
    max_train_bytes: int = 4_000_000
    # StreamingLLM (Xiao et al. ICLR 2024, §3.3) pre-trains with a learnable sink token at the start of every
    # sample. BOS plays that role here; `sink_token=True` also gives it free keys and values in every layer
    # (added to the ones its embedding yields), so a head that has nothing to attend to can park its attention
    # there from the first steps on. It stays an ordinary cache entry (position 0) that a policy may evict.
    sink_token: bool = False
    corpus: str = "stdlib"  # training text: "stdlib" (load_corpus) or "mixed" (load_training_corpus)

    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:10]


# `default`: the benchmark/README model, shipped trained (weights/default.pt; about 1.0 M parameters, 1,024-token
# context, trained once with envs/kv_eviction/ship.py on one shared CPU core; weights/default.json records
# how). `legacy`: the earlier 0.5 M default (no attention sink; 1,600 steps, 4 minutes on one core).
# `small`: a mid-size model for quick experiments (16 s). `tiny`: the test suite's model (2 s). All four ship.
CONFIGS: dict[str, ModelConfig] = {
    "default": ModelConfig(n_layer=4, n_head=4, d_model=128, ctx=1024, train_steps=1200, batch_size=4,
                           train_len=1024, lr=3e-3, warmup=60, max_train_bytes=12_000_000, sink_token=True,
                           corpus="mixed"),
    "legacy": ModelConfig(),
    "small": ModelConfig(n_layer=2, n_head=4, d_model=64, ctx=256, train_steps=400, batch_size=8, train_len=256,
                         max_train_bytes=2_000_000),
    "tiny": ModelConfig(n_layer=2, n_head=2, d_model=32, ctx=128, train_steps=200, batch_size=8, train_len=96,
                        lr=1e-2, warmup=10, max_train_bytes=500_000),
}


def resolve_config(model: str | ModelConfig) -> tuple[str, ModelConfig]:
    if isinstance(model, ModelConfig):
        return f"custom-{model.key()}", model
    if model not in CONFIGS:
        raise UnknownNameError("kv_eviction model", model, CONFIGS)
    return model, CONFIGS[model]


def cache_dir() -> Path:
    if os.environ.get("SYSGYM_CACHE_DIR"):
        base = Path(os.environ["SYSGYM_CACHE_DIR"])
    elif os.environ.get("XDG_CACHE_HOME"):
        base = Path(os.environ["XDG_CACHE_HOME"]) / "sysgym"
    else:
        base = Path.home() / ".cache" / "sysgym"
    return base / "kv_eviction"


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_head, self.d_head = cfg.n_head, cfg.d_model // cfg.n_head
        if cfg.sink_token:  # zero at init: training decides how much of a sink position 0 becomes
            self.sink_k = nn.Parameter(torch.zeros(self.n_head, self.d_head))
            self.sink_v = nn.Parameter(torch.zeros(self.n_head, self.d_head))
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.fc = nn.Linear(cfg.d_model, 4 * cfg.d_model)
        self.out = nn.Linear(4 * cfg.d_model, cfg.d_model)

    def split(self, x: torch.Tensor, starts_at_0: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q, k, v (N, H, T, dh) of the positions in x; `starts_at_0`: x's first position is the sequence's first."""
        n, t, d = x.shape
        q, k, v = (z.view(n, t, self.n_head, self.d_head).transpose(1, 2) for z in self.qkv(self.ln1(x)).split(d, -1))
        if starts_at_0 and hasattr(self, "sink_k"):
            first = torch.zeros(t, 1)
            first[0] = 1.0
            k = k + first * self.sink_k[:, None, :]
            v = v + first * self.sink_v[:, None, :]
        return q, k, v

    def finish(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        n, _, t, _ = y.shape
        x = x + self.proj(y.transpose(1, 2).reshape(n, t, -1))
        return x + self.out(F.gelu(self.fc(self.ln2(x))))


class TinyCausalLM(nn.Module):
    """Decoder-only LM with explicit attention (weights returned, arbitrary boolean key masks)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if cfg.d_model % cfg.n_head:
            raise ValueError(f"d_model {cfg.d_model} is not divisible by n_head {cfg.n_head}")
        self.cfg = cfg
        self.tok = nn.Embedding(VOCAB_SIZE, cfg.d_model)
        self.pos = nn.Embedding(cfg.ctx, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, VOCAB_SIZE, bias=False)
        self.head.weight = self.tok.weight  # tied embeddings (GPT-2)
        self.apply(self._init)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    @property
    def n_layer(self) -> int:
        return self.cfg.n_layer

    @property
    def n_head(self) -> int:
        return self.cfg.n_head

    def forward(self, tokens: torch.Tensor, keep: torch.Tensor | None = None, need_attn: bool = False):
        """Logits (N, T, V) and, with `need_attn`, attention probabilities per layer (N, H, T, T).

        `keep`: bool, broadcastable to (N, L, H, T, T); entry [.., t, j] says whether query t sees key j.
        The causal mask is always applied on top of it. With `keep=None` the model sees the full cache.
        """
        n, t = tokens.shape
        if t > self.cfg.ctx:
            raise ValueError(f"sequence of {t} tokens is longer than the model's context {self.cfg.ctx}")
        x = self.tok(tokens) + self.pos(torch.arange(t))
        causal = torch.ones(t, t, dtype=torch.bool).tril()
        attns = []
        for li, blk in enumerate(self.blocks):
            q, k, v = blk.split(x)
            allowed = causal
            if keep is not None:
                kl = keep[:, li if keep.shape[1] > 1 else 0] if keep.dim() == 5 else keep
                allowed = allowed & kl
            if need_attn:  # the weights, for the record; the output always comes from the fused kernel, so
                # logits do not depend on need_attn (the full cache scores exactly zero loss increase)
                s = ((q @ k.transpose(-1, -2)) / math.sqrt(blk.d_head)).masked_fill(~allowed, float("-inf"))
                attns.append(torch.softmax(s, dim=-1))
            x = blk.finish(x, F.scaled_dot_product_attention(q, k, v, attn_mask=allowed))
        return self.head(self.ln_f(x)), attns

    # -- incremental decoding with an evictable KV cache -------------------------------------------
    def start(self, tokens: torch.Tensor, prompt_len: int) -> "Decoder":
        return Decoder(self, tokens, prompt_len)


class Decoder:
    """Incremental decoding of a batch of teacher-forced sequences over a KV cache with eviction.

    `prefill()` runs the first `prompt_len` tokens with full attention (as a serving engine's prefill);
    `step(t, keep)` then appends token t and attends to the keys where `keep` (N, L|1, H|1, t+1) is true.
    """

    def __init__(self, model: TinyCausalLM, tokens: torch.Tensor, prompt_len: int):
        self.model, self.tokens = model, tokens
        n, t = tokens.shape
        cfg = model.cfg
        dh = cfg.d_model // cfg.n_head
        self.k = torch.zeros(cfg.n_layer, n, cfg.n_head, t, dh)
        self.v = torch.zeros(cfg.n_layer, n, cfg.n_head, t, dh)
        self.prompt_len = prompt_len

    @torch.no_grad()
    def prefill(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (N, P, V) and attention (N, L, H, P, P) of the prompt."""
        m, p = self.model, self.prompt_len
        x = m.tok(self.tokens[:, :p]) + m.pos(torch.arange(p))
        causal = torch.ones(p, p, dtype=torch.bool).tril()
        attns = []
        for li, blk in enumerate(m.blocks):
            q, k, v = blk.split(x)
            self.k[li, :, :, :p], self.v[li, :, :, :p] = k, v
            s = ((q @ k.transpose(-1, -2)) / math.sqrt(blk.d_head)).masked_fill(~causal, float("-inf"))
            a = torch.softmax(s, dim=-1)
            attns.append(a)
            x = blk.finish(x, a @ v)
        return m.head(m.ln_f(x)), torch.stack(attns, 1)

    @torch.no_grad()
    def step(self, t: int, keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (N, V) of query t and its attention (N, L, H, t+1) (zero on evicted keys)."""
        m = self.model
        x = m.tok(self.tokens[:, t:t + 1]) + m.pos.weight[t]
        attns = []
        for li, blk in enumerate(m.blocks):
            q, k, v = blk.split(x, starts_at_0=False)
            self.k[li, :, :, t:t + 1], self.v[li, :, :, t:t + 1] = k, v
            kk, vv = self.k[li, :, :, :t + 1], self.v[li, :, :, :t + 1]
            s = (q @ kk.transpose(-1, -2)).squeeze(2) / math.sqrt(blk.d_head)  # (N, H, t+1)
            kl = keep[:, li] if keep.shape[1] > 1 else keep[:, 0]
            a = torch.softmax(s.masked_fill(~kl, float("-inf")), dim=-1)
            attns.append(a)
            x = blk.finish(x, (a.unsqueeze(2) @ vv))
        return m.head(m.ln_f(x))[:, 0], torch.stack(attns, 1)


# -- training and cache -----------------------------------------------------------------------------
def _lr(cfg: ModelConfig, step: int) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    frac = (step - cfg.warmup) / max(1, cfg.train_steps - cfg.warmup)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))


def training_corpus(cfg: ModelConfig):
    from sysgym.envs.kv_eviction.corpus import load_training_corpus

    if cfg.corpus == "stdlib":
        return load_corpus(cfg.max_train_bytes)
    if cfg.corpus == "mixed":
        return load_training_corpus(cfg.max_train_bytes)
    raise UnknownNameError("kv_eviction training corpus", cfg.corpus, ("stdlib", "mixed"))


def _optimizer(cfg: ModelConfig, model: TinyCausalLM) -> torch.optim.Optimizer:
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.95))


def train_model(cfg: ModelConfig, **kwargs: Any) -> tuple[TinyCausalLM, dict[str, Any]]:
    """`_train_model` on one torch thread: float reductions split across threads sum in another order, so the
    same configuration trained with 1 and with 2 threads gave different weights, and instances made for the
    model (whose digest includes the weights' hash) depended on the machine's thread setting."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train_model(cfg, **kwargs)
    finally:
        torch.set_num_threads(threads)


def _train_model(cfg: ModelConfig, *, progress: bool = True, steps: int | None = None,
                 checkpoint: Path | None = None, checkpoint_every_s: float = 180.0,
                 corpus=None) -> tuple[TinyCausalLM, dict[str, Any]]:
    """Train from scratch, deterministically from `cfg.seed`; returns the model and training stats.

    `steps`: stop after this many steps (default `cfg.train_steps`; the learning-rate schedule always follows
    `cfg.train_steps`, so a short run reproduces the first steps of the full one). `checkpoint`: a file that
    the run saves to every `checkpoint_every_s` seconds and resumes from (model, optimiser, data generator,
    losses), so an interrupted run continues where it stopped and gives the same weights.
    """
    corpus = training_corpus(cfg)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model = TinyCausalLM(cfg)
    opt = _optimizer(cfg, model)
    losses: list[float] = []
    elapsed = 0.0
    if checkpoint is not None and checkpoint.is_file():
        blob = torch.load(checkpoint, map_location="cpu", weights_only=False)
        if blob["config"] != asdict(cfg) or blob["corpus_digest"] != corpus.digest:
            raise ValueError(f"checkpoint {checkpoint} belongs to another configuration or corpus")
        model.load_state_dict(blob["state_dict"])
        opt.load_state_dict(blob["optimizer"])
        rng.bit_generator.state = blob["rng"]
        losses, elapsed = list(blob["losses"]), float(blob["seconds"])

    def save() -> None:
        tmp = checkpoint.with_suffix(f".tmp{os.getpid()}")
        torch.save({"config": asdict(cfg), "corpus_digest": corpus.digest, "state_dict": model.state_dict(),
                    "optimizer": opt.state_dict(), "rng": rng.bit_generator.state, "losses": losses,
                    "seconds": elapsed + time.perf_counter() - t0}, tmp)
        tmp.replace(checkpoint)  # atomic: a crash never leaves a half-written checkpoint

    t0 = last_save = time.perf_counter()
    todo = range(len(losses), cfg.train_steps if steps is None else steps)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(todo, desc=f"training kv_eviction model ({cfg.n_layer}L{cfg.n_head}H{cfg.d_model}d)",
                   leave=False, mininterval=1.0, disable=None)
        todo = bar
    model.train()
    for step in todo:
        batch = torch.from_numpy(corpus.sample("train", rng, cfg.batch_size, cfg.train_len + 1))
        for g in opt.param_groups:
            g["lr"] = _lr(cfg, step)
        logits, _ = model(batch[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, VOCAB_SIZE), batch[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(float(loss.detach()))
        if bar is not None:
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
        if checkpoint is not None and time.perf_counter() - last_save > checkpoint_every_s:
            save()
            last_save = time.perf_counter()
    if checkpoint is not None:
        save()
    model.eval()
    tail = losses[-max(1, len(losses) // 10):]
    stats = {"train_seconds": elapsed + time.perf_counter() - t0, "final_train_loss": float(np.mean(tail)),
             "corpus_digest": corpus.digest, "params": sum(p.numel() for p in model.parameters()),
             "torch": torch.__version__, "threads": torch.get_num_threads(), "steps": len(losses),
             "first_losses": losses[:20], "losses": losses}
    return model, stats


@dataclass
class LoadedModel:
    name: str
    cfg: ModelConfig
    module: TinyCausalLM
    digest: str  # hash of the weights: instances store it, the evaluator checks it
    stats: dict[str, Any]
    path: Path | None

    @property
    def n_layer(self) -> int:
        return self.cfg.n_layer

    @property
    def n_head(self) -> int:
        return self.cfg.n_head


def weights_digest(module: nn.Module) -> str:
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


_LOADED: dict[tuple[str, str], LoadedModel] = {}


SHIPPED_DIR = Path(__file__).resolve().parent / "weights"


def shipped(name: str, cfg: ModelConfig) -> tuple[Path, dict[str, Any]] | None:
    """The package's trained weights of a named configuration (weights/<name>.pt, float16) and their record
    (weights/<name>.json, written by ship.py), if shipped for exactly this configuration."""
    weights, meta_path = SHIPPED_DIR / f"{name}.pt", SHIPPED_DIR / f"{name}.json"
    if not (weights.is_file() and meta_path.is_file()):
        return None
    meta = json.loads(meta_path.read_text())
    return (weights, meta) if meta.get("config") == asdict(cfg) else None


def model_path(name: str, cfg: ModelConfig) -> Path:
    corpus = training_corpus(cfg)
    torch_ver = torch.__version__.split("+")[0]
    # "t1": trained on one thread (train_model); caches of multi-threaded training before that are not reused
    return cache_dir() / f"{name}-{cfg.key()}-{corpus.digest}-torch{torch_ver}-t1.pt"


def get_model(model: str | ModelConfig = "default", *, progress: bool = True, retrain: bool = False) -> LoadedModel:
    """The trained model of a named configuration (`default`, `small`, `tiny`) or a `ModelConfig`, or a
    local Hugging Face model directory `"hf:<dir>"` (needs `transformers`; see hf.py).

    Loads the package's shipped weights (every named model: no training on first use), else the cache, else trains and
    caches it (deterministic from the configuration's seed).
    """
    from sysgym.envs.kv_eviction.hf import is_hf, load_hf

    if is_hf(model):  # a local Hugging Face model directory (optional extra)
        key = (str(model), "hf")
        if key not in _LOADED:
            _LOADED[key] = load_hf(model)
        return _LOADED[key]
    name, cfg = resolve_config(model)
    ship = None if retrain else shipped(name, cfg)
    path = ship[0] if ship else model_path(name, cfg)
    key = (name, str(path))
    if not retrain and key in _LOADED:
        return _LOADED[key]
    module = TinyCausalLM(cfg)
    if ship:
        module.load_state_dict({k: v.float() for k, v in torch.load(path, map_location="cpu",
                                                                        weights_only=True).items()})
        stats = {k: v for k, v in ship[1].items() if k not in ("corpus_files", "losses", "config")}
        stats["first_losses"] = ship[1]["losses"][:20]
        stats["shipped"] = True
    elif path.is_file() and not retrain:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        module.load_state_dict(blob["state_dict"])
        stats = json.loads(blob["stats"])
    else:
        module, stats = train_model(cfg, progress=progress)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        torch.save({"state_dict": module.state_dict(), "stats": json.dumps(stats)}, tmp)
        tmp.replace(path)  # atomic: a crash never leaves a half-written model
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    loaded = LoadedModel(name, cfg, module, weights_digest(module), stats, path)
    _LOADED[key] = loaded
    return loaded
