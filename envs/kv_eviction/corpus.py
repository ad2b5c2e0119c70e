"""Text that exists on every machine: the Python standard library's own source files.

Files are ordered by the SHA-1 of their path relative to the stdlib folder (so the order does not depend
on the file system), `site-packages` and `__pycache__` are skipped, and each file goes to the held-out
evaluation split when the first byte of that hash is below `EVAL_SHARE * 256`. Tokens are bytes (0..255)
plus a beginning-of-sequence token `BOS = 256`, which every training and evaluation sequence starts with
(as Llama's `<s>`; StreamingLLM, Xiao et al. ICLR 2024, §3.3, shows that a fixed first token is where a
model puts its attention sink).

`load_training_corpus` widens the *training* text (the shipped `default` model's): the stdlib's training
files, plus the repository's own sources and the text files that installed packages ship. Evaluation
sequences always come from the stdlib's held-out files (`load_corpus(...).eval`), which no training mix
contains. Its `files` list (source, relative path, SHA-1) is recorded with the shipped weights.
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


TRAINING_SOURCES = ("stdlib", "repo", "packages")
_PACKAGE_TEXT = (".md", ".rst", ".txt")  # package docs; code of packages is left out (the stdlib has plenty)
_MAX_FILE = 300_000  # bytes: larger files are data tables or generated code, not text


@dataclass(frozen=True)
class Corpus:
    train: np.ndarray  # uint8 bytes of the training files, joined by newlines
    eval: np.ndarray  # uint8 bytes of the held-out files
    digest: str  # hash of the file list and contents used
    root: str
    files: tuple[tuple[str, str, str], ...] = ()  # (source, relative path, sha1 of contents) of the train files

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
    train, evl, files = [], [], []
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
        sha = hashlib.sha1(data)
        h.update(digest.encode())
        h.update(sha.digest())
        if is_eval:
            evl.append(data)
            n_eval += len(data) + 1
        else:
            train.append(data)
            n_train += len(data) + 1
            files.append(("stdlib", path.relative_to(base).as_posix(), sha.hexdigest()))
    if not train or not evl:
        raise FileNotFoundError(f"no Python source files found under {base}")
    to_arr = lambda parts: np.frombuffer(b"\n".join(parts), np.uint8).copy()  # noqa: E731
    # `files` lists the training files (a shipped model's record names its training text; the digest is unchanged)
    return Corpus(train=to_arr(train), eval=to_arr(evl), digest=h.hexdigest()[:12], root=str(base),
                  files=tuple(files))


def _is_eval(path_hash: str) -> bool:
    return int(path_hash[:2], 16) < EVAL_SHARE * 256


def _source_files(source: str) -> list[tuple[str, Path]]:
    """(hash of 'source:relative path', path) of one training source's files."""
    if source == "stdlib":
        # the same split as load_corpus: the held-out stdlib files never enter training
        return [(h, p) for h, p in _files(stdlib_root()) if not _is_eval(h)]
    if source == "repo":
        base = Path(__file__).resolve().parents[2]
        pats, skip = ("*.py", "*.md"), (".venv", "site-packages", "__pycache__", ".git", "node_modules")
    elif source == "packages":
        base = Path(sysconfig.get_paths()["purelib"])
        pats, skip = tuple(f"*{e}" for e in _PACKAGE_TEXT), ("__pycache__", ".dist-info", "sysgym")
    else:
        raise ValueError(f"unknown training source {source!r}; known: {TRAINING_SOURCES}")
    out = []
    for pat in pats:
        for path in base.rglob(pat):
            rel = path.relative_to(base).as_posix()
            if any(s in rel for s in skip) or not path.is_file() or path.stat().st_size > _MAX_FILE:
                continue
            out.append((hashlib.sha1(f"{source}:{rel}".encode()).hexdigest(), path))
    return sorted(out)


@lru_cache(maxsize=2)
def load_training_corpus(max_train_bytes: int, sources: tuple[str, ...] = TRAINING_SOURCES) -> Corpus:
    """Training text from `sources` (files of all sources merged in hash order, capped at `max_train_bytes`);
    its `eval` split is the stdlib's held-out files (as `load_corpus`)."""
    held_out = load_corpus(max_train_bytes)
    merged = sorted((h, src, p) for src in sources for h, p in _source_files(src))
    parts, files, n = [], [], 0
    digest = hashlib.sha256()
    for h, src, path in merged:
        if n >= max_train_bytes:
            break
        try:
            data = path.read_bytes()
        except OSError:
            continue
        if b"\0" in data:  # binary
            continue
        sha = hashlib.sha1(data).hexdigest()
        rel = h  # stable name independent of where the source folder lies
        files.append((src, path.name, sha))
        digest.update(rel.encode())
        digest.update(sha.encode())
        parts.append(data)
        n += len(data) + 1
    if not parts:
        raise FileNotFoundError(f"no training text found in sources {sources}")
    train = np.frombuffer(b"\n".join(parts), np.uint8).copy()
    return Corpus(train=train, eval=held_out.eval, digest=digest.hexdigest()[:12], root=held_out.root,
                  files=tuple(files))
