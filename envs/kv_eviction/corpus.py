"""Text that exists on every machine: the Python standard library's own source files.

Files are ordered by the SHA-1 of their path relative to the stdlib folder (so the order does not depend
on the file system), `site-packages` and `__pycache__` are skipped, and each file goes to the held-out
evaluation split when the first byte of that hash is below `EVAL_SHARE * 256`. Tokens are bytes (0..255)
plus a beginning-of-sequence token `BOS = 256`, which every training and evaluation sequence starts with
(as Llama's `<s>`; StreamingLLM, Xiao et al. ICLR 2024, §3.3, shows that a fixed first token is where a
model puts its attention sink).
"""
from __future__ import annotations

import hashlib
import sysconfig
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

BOS = 256
VOCAB_SIZE = 257
EVAL_SHARE = 0.1  # share of files held out for evaluation sequences


@dataclass(frozen=True)
class Corpus:
    train: np.ndarray  # uint8 bytes of the training files, joined by newlines
    eval: np.ndarray  # uint8 bytes of the held-out files
    digest: str  # hash of the file list and contents used
    root: str

    def sample(self, split: str, rng: np.random.Generator, num: int, length: int) -> np.ndarray:
        """`num` windows of `length` tokens: BOS followed by `length - 1` consecutive bytes."""
        data = self.train if split == "train" else self.eval
        if length < 2:
            raise ValueError(f"sequence length must be >= 2, got {length}")
        if len(data) <= length:
            raise ValueError(f"the {split} corpus has {len(data)} bytes, too few for sequences of {length}")
        starts = rng.integers(0, len(data) - length, size=num)
        out = np.empty((num, length), np.int64)
        out[:, 0] = BOS
        for i, s in enumerate(starts):
            out[i, 1:] = data[s:s + length - 1]
        return out


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def _files(root: Path) -> list[tuple[str, Path]]:
    out = []
    for path in root.rglob("*.py"):
        rel = path.relative_to(root).as_posix()
        if "site-packages" in rel or "__pycache__" in rel:
            continue
        out.append((hashlib.sha1(rel.encode()).hexdigest(), path))
    out.sort()
    return out


@lru_cache(maxsize=4)
def load_corpus(max_train_bytes: int = 4_000_000, max_eval_bytes: int = 1_000_000, root: str | None = None) -> Corpus:
    """The stdlib corpus, capped at `max_train_bytes` / `max_eval_bytes` (files taken in hash order)."""
    base = Path(root) if root else stdlib_root()
    if not base.is_dir():
        raise FileNotFoundError(f"Python standard library folder {base} does not exist")
    train, evl = [], []
    n_train = n_eval = 0
    h = hashlib.sha256()
    for digest, path in _files(base):
        is_eval = int(digest[:2], 16) < EVAL_SHARE * 256
        if (is_eval and n_eval >= max_eval_bytes) or (not is_eval and n_train >= max_train_bytes):
            if n_eval >= max_eval_bytes and n_train >= max_train_bytes:
                break
            continue
        try:
            data = path.read_bytes()
        except OSError:
            continue
        h.update(digest.encode())
        h.update(hashlib.sha1(data).digest())
        if is_eval:
            evl.append(data)
            n_eval += len(data) + 1
        else:
            train.append(data)
            n_train += len(data) + 1
    if not train or not evl:
        raise FileNotFoundError(f"no Python source files found under {base}")
    to_arr = lambda parts: np.frombuffer(b"\n".join(parts), np.uint8).copy()  # noqa: E731
    return Corpus(train=to_arr(train), eval=to_arr(evl), digest=h.hexdigest()[:12], root=str(base))
