"""Feature extractors and policies that fit sysgym's observations (plain torch; ONNX-exportable).

* `mlp` (baseline): SB3's own `FlattenExtractor` / `CombinedExtractor` -- every entry flattened into an MLP.
* `set_attention`: every 2-D Box entry of a Dict observation, shape (N, F), is a *set* of N items
  (PMs and VMs, DAG stages, queued requests). Each item is embedded by a shared MLP, tagged with a learned
  per-set type vector, and all items attend to each other (Transformer encoder layers, padding rows masked
  out by a presence column); masked mean + max pooling per set, concatenated with the 1-D entries, gives a
  summary that does not change when the items of a set are permuted.
* `pair` action head (with `set_attention`): for actions that pick an item of set A and an item of set B
  (VM -> PM), the logit of (a, b, j) is a scaled dot product of the two items' embeddings (a pointer
  network, as VMR2L's actor), so the policy is permutation-*equivariant*: permuting the VMs permutes the
  logits the same way, and the net is the same size for any number of items.
* *pair features*: a 3-D Box entry (N_a, N_b * k, F) of the observation holds features of each (a, b, j)
  action (VmResched-v0's `observation="pairs"`: the move's exact remainder changes). The extractor pools
  them (mean and min per feature) into the summary and passes them through to the pair head
  (`action_head_kwargs.pair=<key>`), which adds a small MLP over [pair features, e_a, e_b] to each logit:
  facts that are cheap to compute exactly but slow for a net to learn (modular arithmetic) come in as input.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from gymnasium import spaces
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from sysgym.agents.common import AgentError


class _Block(nn.Module):
    """Pre-norm Transformer encoder block with a key-padding mask (written out so ONNX export is plain)."""

    def __init__(self, d: int, heads: int):
        super().__init__()
        if d % heads:
            raise AgentError(f"set_attention: embed_dim {d} must be a multiple of heads {heads}")
        self.h, self.dk = heads, d // heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)
        self.ff = nn.Sequential(nn.Linear(d, 2 * d), nn.ReLU(), nn.Linear(2 * d, d))

    def forward(self, x: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        qkv = self.qkv(self.ln1(x)).reshape(b, t, 3, self.h, self.dk).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.dk)  # (b, h, t, t)
        scores = scores.masked_fill(~present[:, None, None, :], -1e9)
        att = torch.matmul(torch.softmax(scores, dim=-1), v)  # (b, h, t, dk)
        x = x + self.out(att.transpose(1, 2).reshape(b, t, d))
        return x + self.ff(self.ln2(x))


class SetAttentionExtractor(BaseFeaturesExtractor):
    """Permutation-aware extractor for Dict observations whose 2-D entries are sets of items.

    `presence_columns` maps a set key to the column that is 1 for real items and 0 for padding rows
    (VmResched-v0's `vm` column 7); other sets have no padding. `token_keys` (set by the `pair` head) also
    passes the per-item embeddings of those sets through, after the pooled summary.
    """

    def __init__(self, observation_space: spaces.Dict, embed_dim: int = 64, heads: int = 4, layers: int = 1,
                 pooled_dim: int = 128, presence_columns: dict[str, int] | None = None,
                 token_keys: list[str] | tuple[str, ...] = (), pair_keys: list[str] | tuple[str, ...] = ()):
        if not isinstance(observation_space, spaces.Dict):
            raise AgentError("set_attention needs a Dict observation with (N, F) set entries; "
                             f"got {observation_space}: use extractor=mlp")
        set_keys = [k for k, s in observation_space.spaces.items() if isinstance(s, spaces.Box) and len(s.shape) == 2]
        all_pairs = [k for k, s in observation_space.spaces.items() if isinstance(s, spaces.Box) and len(s.shape) == 3]
        glob_keys = [k for k in observation_space.spaces if k not in set_keys and k not in all_pairs]
        for k in pair_keys:
            if k not in all_pairs:
                raise AgentError(f"set_attention: {k!r} is not a (N_a, N_b, F) pair entry of the observation; "
                                 f"pair entries: {all_pairs}")
        if not set_keys:
            raise AgentError("set_attention found no (N, F) Box entry in the observation; use extractor=mlp")
        presence = dict(presence_columns or {})
        for k in list(presence) + list(token_keys):
            if k not in set_keys:
                raise AgentError(f"set_attention: {k!r} is not a set entry of the observation; sets: {set_keys}")
        sizes = {k: observation_space[k].shape for k in set_keys}
        glob_dim = sum(spaces.flatdim(observation_space[k]) for k in glob_keys)
        glob_dim += sum(2 * observation_space[k].shape[2] for k in all_pairs)  # mean and min per feature
        tok_dim = sum(sizes[k][0] * embed_dim for k in token_keys)
        pair_dim = sum(spaces.flatdim(observation_space[k]) for k in pair_keys)
        super().__init__(observation_space, features_dim=pooled_dim + tok_dim + pair_dim)
        self.set_keys, self.glob_keys, self.token_keys = set_keys, glob_keys, list(token_keys)
        self.all_pair_keys, self.pair_keys = all_pairs, list(pair_keys)
        self.pair_shapes = {k: tuple(observation_space[k].shape) for k in all_pairs}
        self.sizes, self.presence, self.embed_dim, self.pooled_dim = sizes, presence, embed_dim, pooled_dim
        self.embed = nn.ModuleDict({k: nn.Sequential(nn.Linear(sizes[k][1], embed_dim), nn.ReLU(),
                                                     nn.Linear(embed_dim, embed_dim)) for k in set_keys})
        self.type_emb = nn.Parameter(torch.zeros(len(set_keys), embed_dim))
        self.blocks = nn.ModuleList([_Block(embed_dim, heads) for _ in range(layers)])
        self.norm = nn.LayerNorm(embed_dim)
        self.head = nn.Sequential(nn.Linear(2 * embed_dim * len(set_keys) + glob_dim, pooled_dim), nn.ReLU())
        # where each token set sits in the output, for the pair head
        self.token_offsets: dict[str, int] = {}
        off = pooled_dim
        for k in self.token_keys:
            self.token_offsets[k] = off
            off += sizes[k][0] * embed_dim
        for k in self.pair_keys:
            self.token_offsets[k] = off
            off += spaces.flatdim(observation_space[k])

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        toks, pres = [], []
        for i, k in enumerate(self.set_keys):
            x = obs[k].float()
            toks.append(self.embed[k](x) + self.type_emb[i])
            if k in self.presence:
                pres.append(x[..., self.presence[k]] > 0.5)
            else:
                pres.append(torch.ones(x.shape[:-1], dtype=torch.bool, device=x.device))
        h = torch.cat(toks, dim=1)
        present = torch.cat(pres, dim=1)
        for blk in self.blocks:
            h = blk(h, present)
        h = self.norm(h)
        pooled, per_set, start = [], {}, 0
        for k in self.set_keys:
            n = self.sizes[k][0]
            hk, pk = h[:, start:start + n], present[:, start:start + n, None]
            start += n
            per_set[k] = hk * pk.float()
            cnt = pk.float().sum(1).clamp(min=1.0)
            pooled.append((hk * pk).sum(1) / cnt)
            mx = hk.masked_fill(~pk, -1e9).max(dim=1).values
            pooled.append(torch.where(mx > -1e8, mx, torch.zeros_like(mx)))
        for k in self.glob_keys:
            pooled.append(obs[k].float().reshape(obs[k].shape[0], -1))
        for k in self.all_pair_keys:
            p = obs[k].float().reshape(h.shape[0], -1, self.pair_shapes[k][2])
            pooled.append(p.mean(1))
            pooled.append(p.min(1).values)
        out = [self.head(torch.cat(pooled, dim=1))]
        for k in self.token_keys:
            out.append(per_set[k].reshape(h.shape[0], -1))
        for k in self.pair_keys:
            out.append(obs[k].float().reshape(h.shape[0], -1))
        return torch.cat(out, dim=1)


class PairHead(nn.Module):
    """Logits for a flat action `a * (N_b * per_pair) + b * per_pair + j` from item embeddings.

    logit(a, b, j) = <W_j e_a, U e_b> / sqrt(h) + c_j . e_a (+ a per-j bias), read from the extractor's
    token outputs; the pooled summary is left to the value head. With `pair=<key>` (a pair entry of the
    observation, laid out (N_a, N_b * per_pair, F) like the flat action) each logit also gets
    w . relu(A e_a + B e_b + C x_abj + d_j), x_abj being that action's pair features.
    """

    def __init__(self, ext: SetAttentionExtractor, rows: str, cols: str, per_pair: int = 1, hidden: int = 64,
                 pair: str | None = None, pair_hidden: int = 32):
        super().__init__()
        d = ext.embed_dim
        self.na, self.nb, self.k, self.d, self.hid = ext.sizes[rows][0], ext.sizes[cols][0], per_pair, d, hidden
        self.ra, self.rb = ext.token_offsets[rows], ext.token_offsets[cols]
        self.q = nn.Linear(d, per_pair * hidden)
        self.kk = nn.Linear(d, hidden)
        self.row_bias = nn.Linear(d, per_pair)
        for lin in (self.q, self.row_bias):
            nn.init.orthogonal_(lin.weight, gain=0.01)
            nn.init.zeros_(lin.bias)
        self.pair = pair
        if pair is not None:
            if pair not in ext.pair_keys:
                raise AgentError(f"pair head: {pair!r} is not a pair entry passed by the extractor ({ext.pair_keys})")
            shape = ext.pair_shapes[pair]
            if shape[:2] != (self.na, self.nb * per_pair):
                raise AgentError(f"pair head: {pair!r} has shape {shape}; the action needs "
                                 f"({self.na}, {self.nb * per_pair}, F)")
            self.rp, self.nf = ext.token_offsets[pair], shape[2]
            self.pa, self.pb = nn.Linear(d, pair_hidden), nn.Linear(d, pair_hidden, bias=False)
            self.px = nn.Linear(self.nf, pair_hidden, bias=False)
            self.pj = nn.Parameter(torch.zeros(per_pair, pair_hidden))
            self.pout = nn.Linear(pair_hidden, 1)
            nn.init.orthogonal_(self.pout.weight, gain=0.01)
            nn.init.zeros_(self.pout.bias)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        b = latent.shape[0]
        ea = latent[:, self.ra:self.ra + self.na * self.d].reshape(b, self.na, self.d)
        eb = latent[:, self.rb:self.rb + self.nb * self.d].reshape(b, self.nb, self.d)
        q = self.q(ea).reshape(b, self.na * self.k, self.hid)
        s = torch.matmul(q, self.kk(eb).transpose(1, 2)) / math.sqrt(self.hid)  # (b, na*k, nb)
        s = s.reshape(b, self.na, self.k, self.nb).permute(0, 1, 3, 2)  # (b, na, nb, k)
        s = s + self.row_bias(ea)[:, :, None, :]
        if self.pair is not None:
            x = latent[:, self.rp:self.rp + self.na * self.nb * self.k * self.nf]
            x = x.reshape(b, self.na, self.nb, self.k, self.nf)
            h = (self.px(x) + self.pa(ea)[:, :, None, None, :] + self.pb(eb)[:, None, :, None, :]
                 + self.pj[None, None, None, :, :])
            s = s + self.pout(torch.relu(h)).squeeze(-1)
        return s.reshape(b, self.na * self.nb * self.k)


class _PairHeadMixin:
    """Replaces the policy's linear action net with a `PairHead` when `action_head` asks for one."""

    def __init__(self, *args: Any, action_head: dict | None = None, **kwargs: Any):
        self.action_head = action_head  # read by _build, which the base constructor calls
        super().__init__(*args, **kwargs)

    def _build(self, lr_schedule) -> None:
        super()._build(lr_schedule)
        self._install_head(lr_schedule)

    def _install_head(self, lr_schedule) -> None:
        spec = self.action_head
        if not spec:
            return
        spec = dict(spec)
        kind = spec.pop("type", "pair")
        if kind != "pair":
            raise AgentError(f"unknown action_head type {kind!r}; known: pair")
        ext = self.pi_features_extractor if not self.share_features_extractor else self.features_extractor
        if not isinstance(ext, SetAttentionExtractor):
            raise AgentError("action_head=pair needs extractor=set_attention")
        if self.mlp_extractor.latent_dim_pi != ext.features_dim:
            raise AgentError("action_head=pair needs an empty policy MLP: policy_kwargs.net_arch={pi: [], vf: [...]}")
        head = PairHead(ext, **spec)
        n = head.na * head.nb * head.k
        if not isinstance(self.action_space, spaces.Discrete) or self.action_space.n != n:
            raise AgentError(f"action_head=pair gives {head.na}x{head.nb}x{head.k}={n} actions; "
                             f"the env's action space is {self.action_space}")
        self.action_net = head
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)


class SetMaskablePolicy(_PairHeadMixin, MaskableActorCriticPolicy):
    """MaskablePPO's policy with an optional `action_head={'type': 'pair', 'rows':..., 'cols':..., ...}`."""


class SetActorCriticPolicy(_PairHeadMixin, ActorCriticPolicy):
    """PPO/A2C's policy with the same optional pair head."""


EXTRACTORS = {"mlp": None, "set_attention": SetAttentionExtractor}
