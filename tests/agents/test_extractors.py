"""The set/attention extractor is permutation-invariant, the pair head permutation-equivariant."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces

from sysgym.agents.common import AgentError
from sysgym.agents.extractors import PairHead, SetAttentionExtractor

torch.manual_seed(0)
SPACE = spaces.Dict({"pm": spaces.Box(0, 1, (4, 8), np.float32), "vm": spaces.Box(0, 1, (6, 14), np.float32),
                     "progress": spaces.Box(0, 1, (1,), np.float32)})


def _obs(batch=3, pad=2):
    rng = np.random.default_rng(1)
    vm = rng.random((batch, 6, 14)).astype(np.float32)
    vm[:, :, 7] = 1.0
    vm[:, 6 - pad:, :] = 0.0  # padding rows
    return {"pm": torch.tensor(rng.random((batch, 4, 8)), dtype=torch.float32), "vm": torch.tensor(vm),
            "progress": torch.tensor(rng.random((batch, 1)), dtype=torch.float32)}


def _ext(**kw):
    return SetAttentionExtractor(SPACE, embed_dim=16, heads=2, layers=2, pooled_dim=32,
                                 presence_columns={"vm": 7}, **kw).eval()


def test_pooled_features_ignore_item_order():
    ext, obs = _ext(), _obs()
    with torch.no_grad():
        base = ext(obs)
        perm_vm = {**obs, "vm": obs["vm"][:, [3, 0, 2, 1, 4, 5]]}
        perm_pm = {**obs, "pm": obs["pm"][:, [2, 3, 1, 0]]}
        torch.testing.assert_close(ext(perm_vm), base, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(ext(perm_pm), base, atol=1e-5, rtol=1e-5)
        changed = {**obs, "pm": obs["pm"] * 0.5}
        assert not torch.allclose(ext(changed), base, atol=1e-4)


def test_padding_rows_do_not_matter():
    ext, obs = _ext(), _obs()
    noisy = {**obs, "vm": obs["vm"].clone()}
    noisy["vm"][:, 4:, :7] = 0.9  # garbage in padding rows (presence column stays 0)
    with torch.no_grad():
        torch.testing.assert_close(ext(noisy), ext(obs), atol=1e-5, rtol=1e-5)


def test_pair_head_is_equivariant():
    ext = _ext(token_keys=["vm", "pm"])
    head = PairHead(ext, rows="vm", cols="pm", per_pair=2, hidden=8)
    torch.nn.init.normal_(head.q.weight)
    obs = _obs(pad=0)
    p = [3, 0, 2, 1, 4, 5]
    with torch.no_grad():
        base = head(ext(obs)).reshape(3, 6, 4, 2)
        perm = head(ext({**obs, "vm": obs["vm"][:, p]})).reshape(3, 6, 4, 2)
    torch.testing.assert_close(perm, base[:, p], atol=1e-5, rtol=1e-5)
    assert base.std() > 0


def test_bad_extractor_requests_are_refused():
    with pytest.raises(AgentError, match="Dict observation"):
        SetAttentionExtractor(spaces.Box(0, 1, (4,)))
    with pytest.raises(AgentError, match="not a set entry"):
        SetAttentionExtractor(SPACE, presence_columns={"progress": 0})
    with pytest.raises(AgentError, match="multiple of heads"):
        SetAttentionExtractor(SPACE, embed_dim=10, heads=4)


PAIR_SPACE = spaces.Dict({**SPACE.spaces, "pair": spaces.Box(-4, 4, (6, 8, 5), np.float32)})


def test_pair_features_reach_the_logits_and_keep_equivariance():
    torch.manual_seed(0)
    ext = SetAttentionExtractor(PAIR_SPACE, embed_dim=16, heads=2, layers=1, pooled_dim=32,
                                presence_columns={"vm": 7}, token_keys=["vm", "pm"], pair_keys=["pair"]).eval()
    head = PairHead(ext, rows="vm", cols="pm", per_pair=2, hidden=8, pair="pair", pair_hidden=8)
    torch.nn.init.normal_(head.pout.weight)
    obs = _obs(pad=0)
    obs["pair"] = torch.tensor(np.random.default_rng(2).normal(size=(3, 6, 8, 5)), dtype=torch.float32)
    p = [3, 0, 2, 1, 4, 5]
    with torch.no_grad():
        base = head(ext(obs)).reshape(3, 6, 4, 2)
        perm = head(ext({**obs, "vm": obs["vm"][:, p], "pair": obs["pair"][:, p]})).reshape(3, 6, 4, 2)
        torch.testing.assert_close(perm, base[:, p], atol=1e-5, rtol=1e-5)
        # one action's pair features change: that logit moves (others only through the pooled summary)
        bumped = {**obs, "pair": obs["pair"].clone()}
        bumped["pair"][0, 1, 5, :] += 1.0
        diff = (head(ext(bumped)).reshape(3, 6, 8) - base.reshape(3, 6, 8)).abs()
    assert diff[0, 1, 5] > 1e-4 and float(diff[1:].max()) == 0.0


def test_bad_pair_requests_are_refused():
    with pytest.raises(AgentError, match="not a .* pair entry"):
        SetAttentionExtractor(SPACE, pair_keys=["pm"])
    small = spaces.Dict({**SPACE.spaces, "pair": spaces.Box(-4, 4, (6, 4, 5), np.float32)})
    ext = SetAttentionExtractor(small, embed_dim=16, heads=2, presence_columns={"vm": 7},
                                token_keys=["vm", "pm"], pair_keys=["pair"])
    with pytest.raises(AgentError, match="has shape"):
        PairHead(ext, rows="vm", cols="pm", per_pair=2, pair="pair")
