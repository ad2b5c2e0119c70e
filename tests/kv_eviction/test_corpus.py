"""The held-out evaluation text ships with the package, so instances do not depend on the running Python."""
from __future__ import annotations

import hashlib
import json
import lzma

import numpy as np
import pytest

from sysgym.envs.kv_eviction import corpus as C
from sysgym.errors import TraceFormatError


@pytest.fixture()
def fresh():
    C.load_corpus.cache_clear()
    C.shipped_eval.cache_clear()
    yield
    C.load_corpus.cache_clear()
    C.shipped_eval.cache_clear()


def _fake_stdlib(root, n=40, tag="a"):
    """A folder of `n` small .py files (some held out by their path hash, most not)."""
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (root / f"mod_{tag}{i}.py").write_text(f"# module {tag}{i}\n" + f"x_{i} = {i} * 2\n" * (i + 1))
    held = [i for i in range(n) if C._is_eval(hashlib.sha1(f"mod_{tag}{i}.py".encode()).hexdigest())]
    assert held and len(held) < n, "the fake stdlib needs held-out and training files"
    return root


def _use(monkeypatch, data_dir, stdlib):
    monkeypatch.setattr(C, "EVAL_TEXT", data_dir / C.EVAL_TEXT.name)
    monkeypatch.setattr(C, "EVAL_MANIFEST", data_dir / C.EVAL_MANIFEST.name)
    monkeypatch.setattr(C, "stdlib_root", lambda: stdlib)


def test_shipped_text_matches_its_manifest_and_is_the_default_eval_split(fresh):
    manifest, files = C.shipped_eval()
    assert manifest["max_eval_bytes"] == C.DEFAULT_EVAL_BYTES and manifest["eval_share"] == C.EVAL_SHARE
    assert all(C._is_eval(d) and d == hashlib.sha1(rel.encode()).hexdigest() for d, rel, _ in files)
    assert [d for d, _, _ in files] == sorted(d for d, _, _ in files)
    corpus = C.load_corpus()
    assert corpus.eval_source == f"shipped (Python {manifest['python']}'s stdlib)"
    assert bytes(corpus.eval) == b"\n".join(data for _, _, data in files)
    assert (C.DATA_DIR / "PSF-LICENSE.txt").is_file()


def test_shipped_text_gives_the_corpus_read_from_disk_and_ignores_the_running_stdlib(fresh, tmp_path, monkeypatch):
    old = _fake_stdlib(tmp_path / "old")
    C.write_eval(old, tmp_path / "data")
    _use(monkeypatch, tmp_path / "data", old)
    from_disk = C.load_corpus(root=str(old))
    shipped = C.load_corpus()
    assert from_disk.eval_source == str(old) and shipped.eval_source.startswith("shipped")
    assert np.array_equal(shipped.eval, from_disk.eval) and np.array_equal(shipped.train, from_disk.train)
    assert shipped.digest == from_disk.digest and shipped.files == from_disk.files
    # another Python: its held-out files changed; the evaluation text does not
    for i in range(40):
        (old / f"mod_a{i}.py").write_text(f"# rewritten {i}\n")
    C.load_corpus.cache_clear()
    other = C.load_corpus()
    assert np.array_equal(other.eval, shipped.eval)
    assert not np.array_equal(other.train, shipped.train)  # training text still comes from the running Python
    C.load_corpus.cache_clear()
    assert not np.array_equal(C.load_corpus(root=str(old)).eval, shipped.eval)
    # asking for more held-out text than ships reads it from disk, and says so
    assert C.load_corpus(max_eval_bytes=C.DEFAULT_EVAL_BYTES + 1).eval_source == str(old)


@pytest.mark.parametrize("damage", ["byte", "extra", "manifest", "missing_key"])
def test_damaged_shipped_text_is_refused_by_name(fresh, tmp_path, monkeypatch, damage):
    stdlib = _fake_stdlib(tmp_path / "lib")
    data = tmp_path / "data"
    C.write_eval(stdlib, data)
    text, manifest = data / C.EVAL_TEXT.name, data / C.EVAL_MANIFEST.name
    raw = lzma.decompress(text.read_bytes())
    if damage == "byte":
        text.write_bytes(lzma.compress(raw[:5] + bytes([raw[5] ^ 1]) + raw[6:]))
    elif damage == "extra":
        text.write_bytes(lzma.compress(raw + b"#"))
    elif damage == "manifest":
        manifest.write_text(manifest.read_text()[:-10])
    else:
        m = json.loads(manifest.read_text())
        del m["files"]
        manifest.write_text(json.dumps(m))
    _use(monkeypatch, data, stdlib)
    with pytest.raises(TraceFormatError, match="stdlib_eval"):
        C.load_corpus()


def test_write_eval_refuses_a_folder_without_python_files(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no held-out"):
        C.write_eval(tmp_path / "empty", tmp_path / "data")
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").iterdir())
