import os
from pathlib import Path

import pytest
import torch

# Tests run tiny tensors, where torch's intra-op threads cost more than they give (and oversubscribe a
# shared 2-core machine): one thread for every test.
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
# `../shared/data` beside the checkout; SYSGYM_SHARED_DATA points elsewhere (a worktree, a CI cache).
SHARED_DATA = Path(os.environ.get("SYSGYM_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture
def shared_data() -> Path:
    """`../shared/data` (public traces); tests that need it skip where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder {SHARED_DATA} is absent (public traces are not shipped with sysgym)")
    return SHARED_DATA
