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

The held-out files themselves ship with the package (`data/stdlib_eval.bin.xz`, 170 KB, with a manifest of each
file's path hash, path, SHA-1 and size, and the PSF licence beside it): they are the evaluation text of every
instance, and the stdlib's files change between Python releases, so reading them from the running Python made
the same seed give other instances (and other scores) on another Python. `load_corpus` takes its `eval` split
from them and only its training split from the running Python (`Corpus.eval_source` says which);
`python -m sysgym.envs.kv_eviction.corpus --write-eval` rebuilds them from the running Python's stdlib.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import lzma
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
DEFAULT_EVAL_BYTES = 1_000_000  # load_corpus's cap on the held-out split: what the shipped text covers
DATA_DIR = Path(__file__).resolve().parent / "data"
EVAL_TEXT, EVAL_MANIFEST = DATA_DIR / "stdlib_eval.bin.xz", DATA_DIR / "stdlib_eval.json"


@dataclass(frozen=True)
class Corpus:
    train: np.ndarray  # uint8 bytes of the training files, joined by newlines
    eval: np.ndarray  # uint8 bytes of the held-out files
    digest: str  # hash of the file list and contents used
    root: str
    files: tuple[tuple[str, str, str], ...] = ()  # (source, relative path, sha1 of contents) of the train files
    eval_source: str = ""  # where `eval` came from: "shipped (Python <version>'s stdlib)" or the stdlib folder

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


def _eval_files(base: Path, max_eval_bytes: int) -> list[tuple[str, str, bytes]]:
    """(path hash, relative path, contents) of the held-out files under `base` that `load_corpus` takes (hash
    order, until `max_eval_bytes`)."""
    out, n = [], 0
    for digest, path in _files(base):
        if not _is_eval(digest):
            continue
        if n >= max_eval_bytes:
            break
        try:
            data = path.read_bytes()
        except OSError:
            continue
        out.append((digest, path.relative_to(base).as_posix(), data))
        n += len(data) + 1
    return out


def read_eval(text: Path, manifest_path: Path) -> tuple[dict, tuple[tuple[str, str, bytes], ...]]:
    """A held-out text written by `write_eval`: (manifest, ((path hash, relative path, contents), ...)). A text
    that does not match its manifest (sizes, SHA-1s) is refused by name (TraceFormatError)."""
    from sysgym.errors import TraceFormatError

    try:
        manifest = json.loads(manifest_path.read_text())
        blob = lzma.decompress(text.read_bytes())
        entries = [(str(d), str(rel), str(sha), int(size)) for d, rel, sha, size in manifest["files"]]
    except (OSError, ValueError, TypeError, KeyError, lzma.LZMAError) as e:
        raise TraceFormatError(f"{text} / {manifest_path}: unreadable ({type(e).__name__}: {e})") from e
    out, pos = [], 0
    for digest, rel, sha, size in entries:
        data = blob[pos:pos + size]
        if len(data) != size or hashlib.sha1(data).hexdigest() != sha:
            raise TraceFormatError(f"{text}: the bytes of {rel!r} do not match the SHA-1 in {manifest_path}")
        out.append((digest, rel, data))
        pos += size
    if pos != len(blob) or not out:
        raise TraceFormatError(f"{text}: {len(blob)} bytes, but {manifest_path} lists {pos} in {len(out)} files")
    return manifest, tuple(out)


@lru_cache(maxsize=1)
def shipped_eval() -> tuple[dict, tuple[tuple[str, str, bytes], ...]] | None:
    """The package's held-out files (`read_eval` of data/stdlib_eval.*), or None when it does not ship them."""
    if not (EVAL_TEXT.is_file() and EVAL_MANIFEST.is_file()):
        return None
    return read_eval(EVAL_TEXT, EVAL_MANIFEST)


def write_eval(base: Path | None = None, out_dir: Path = DATA_DIR) -> dict:
    """Write the held-out files of `base` (default: the running Python's stdlib) as the shipped text."""
    import platform

    base = Path(base) if base else stdlib_root()
    files = _eval_files(base, DEFAULT_EVAL_BYTES) if base.is_dir() else []
    if not files:
        raise FileNotFoundError(f"no held-out Python source files under {base}")
    manifest = {"python": platform.python_version(), "eval_share": EVAL_SHARE, "max_eval_bytes": DEFAULT_EVAL_BYTES,
                "licence": "PSF-2.0 (PSF-LICENSE.txt): Python standard library source files, unmodified",
                "files": [[d, rel, hashlib.sha1(data).hexdigest(), len(data)] for d, rel, data in files]}
    out_dir.mkdir(parents=True, exist_ok=True)
    # each written beside and then renamed, so neither file is ever half-written; a rebuild stopped between
    # the two renames leaves a text that does not match its manifest, which read_eval refuses by name
    for name, blob in ((EVAL_TEXT.name, lzma.compress(b"".join(d for _, _, d in files), preset=9)),
                       (EVAL_MANIFEST.name, (json.dumps(manifest, indent=0) + "\n").encode())):
        tmp = out_dir / f"{name}.tmp"
        tmp.write_bytes(blob)
        tmp.replace(out_dir / name)
    return manifest


@lru_cache(maxsize=4)
def load_corpus(max_train_bytes: int = 4_000_000, max_eval_bytes: int = DEFAULT_EVAL_BYTES,
                root: str | None = None) -> Corpus:
    """The stdlib corpus, capped at `max_train_bytes` / `max_eval_bytes` (files taken in hash order). The
    held-out split is the package's shipped text (module doc) unless `root` names another stdlib folder or
    `max_eval_bytes` asks for more than it holds; the training split is read from `root` (default: the running
    Python's stdlib)."""
    base = Path(root) if root else stdlib_root()
    if not base.is_dir():
        raise FileNotFoundError(f"Python standard library folder {base} does not exist")
    ship = None if root or max_eval_bytes > DEFAULT_EVAL_BYTES else shipped_eval()
    # (path hash, path on disk or None, contents if shipped): the local training files, and the held-out files
    # from the shipped text if there is one, else from disk; merged in hash order as the files were before
    entries: list[tuple[str, Path | None, bytes | None]] = [
        (d, p, None) for d, p in _files(base) if ship is None or not _is_eval(d)]
    if ship is not None:
        entries = sorted(entries + [(d, None, data) for d, _, data in ship[1]], key=lambda e: e[0])
    train, evl, files = [], [], []
    n_train = n_eval = 0
    h = hashlib.sha256()
    for digest, path, blob in entries:
        is_eval = _is_eval(digest)
        if (is_eval and n_eval >= max_eval_bytes) or (not is_eval and n_train >= max_train_bytes):
            if n_eval >= max_eval_bytes and n_train >= max_train_bytes:
                break
            continue
        if blob is None:
            try:
                data = path.read_bytes()
            except OSError:
                continue
        else:
            data = blob
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
    source = f"shipped (Python {ship[0]['python']}'s stdlib)" if ship is not None else str(base)
    # `files` lists the training files (a shipped model's record names its training text; the digest is unchanged)
    return Corpus(train=to_arr(train), eval=to_arr(evl), digest=h.hexdigest()[:12], root=str(base),
                  files=tuple(files), eval_source=source)


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


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Rebuild the shipped held-out evaluation text (module doc).")
    ap.add_argument("--write-eval", action="store_true", help="write data/stdlib_eval.* from this Python's stdlib")
    args = ap.parse_args(argv)
    if args.write_eval:
        m = write_eval()
        print(f"wrote {len(m['files'])} files of Python {m['python']}'s stdlib to {EVAL_TEXT} and {EVAL_MANIFEST}")


if __name__ == "__main__":
    main()
