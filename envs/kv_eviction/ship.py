"""Train a named model once and ship it: `python -m sysgym.envs.kv_eviction.ship default`.

Training is resumable (a checkpoint in `cache_dir()` is saved every few minutes), and `--export-every`
writes the shipped files from the latest checkpoint while training runs, so a usable model exists early:

* `weights/<name>.pt`: the state dict in float16 (the package ships it; `get_model` loads it as float32);
* `weights/<name>.json`: the exact `ModelConfig`, the steps trained, the training corpus digest and its file
  list (source, file name, SHA-1), the torch version and threads, and every step's training loss (the
  first ones are what tests/kv_eviction/test_shipped.py reproduces).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import threading
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from sysgym.envs.kv_eviction.corpus import Corpus
from sysgym.envs.kv_eviction.model import CONFIGS, cache_dir, train_model, training_corpus

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


def frozen_corpus(name: str) -> Corpus:
    """The training corpus of `name`, read once and then kept in the cache folder (the repository's sources,
    part of the text, change while a run trains; a resumed run must see the same text)."""
    path = cache_dir() / f"corpus-{name}-{CONFIGS[name].key()}.npz"
    if path.is_file():
        z = np.load(path)
        return Corpus(train=z["train"], eval=z["eval"], digest=str(z["digest"]), root=str(z["root"]),
                      files=tuple(tuple(f) for f in json.loads(str(z["files"]))))
    c = training_corpus(CONFIGS[name])
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, train=c.train, eval=c.eval, digest=c.digest, root=c.root, files=json.dumps(c.files))
    return c


def export(name: str, checkpoint: Path, out_dir: Path = WEIGHTS_DIR) -> dict:
    """Write weights/<name>.pt (fp16) and weights/<name>.json from a training checkpoint."""
    cfg = CONFIGS[name]
    blob = torch.load(checkpoint, map_location="cpu", weights_only=False)
    if blob["config"] != asdict(cfg):
        raise ValueError(f"{checkpoint} was trained with another configuration than {name!r}")
    corpus = frozen_corpus(name)
    files = json.dumps(corpus.files).encode()
    meta = {"name": name, "config": asdict(cfg), "steps": len(blob["losses"]), "train_steps": cfg.train_steps,
            "train_seconds": blob["seconds"], "corpus_digest": blob["corpus_digest"],
            "corpus_files_sha256": hashlib.sha256(files).hexdigest(), "corpus_files": corpus.files,
            "torch": torch.__version__, "threads": torch.get_num_threads(),
            "params": sum(t.numel() for t in blob["state_dict"].values()),
            "final_train_loss": float(np.mean(blob["losses"][-max(1, len(blob["losses"]) // 10):])),
            "losses": blob["losses"]}
    out_dir.mkdir(parents=True, exist_ok=True)
    half = {k: v.to(torch.float16) for k, v in blob["state_dict"].items()}
    for path, write in ((out_dir / f"{name}.pt", lambda p: torch.save(half, p)),
                        (out_dir / f"{name}.json", lambda p: p.write_text(json.dumps(meta, indent=1) + "\n"))):
        tmp = path.with_suffix(path.suffix + ".tmp")
        write(tmp)
        tmp.replace(path)
    return meta


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("name", choices=sorted(CONFIGS))
    ap.add_argument("--checkpoint-every", type=float, default=180.0, help="seconds between checkpoints")
    ap.add_argument("--export-every", type=float, default=0.0, help="seconds between exports (0: at the end)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)  # the recorded losses are those of a one-thread run
    cfg = CONFIGS[args.name]
    ckpt = cache_dir() / f"train-{args.name}-{cfg.key()}.ckpt"
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    done = threading.Event()

    def exporter() -> None:
        while not done.wait(args.export_every):
            if ckpt.is_file():
                meta = export(args.name, ckpt)
                print(f"exported step {meta['steps']} loss {meta['losses'][-1]:.3f}", flush=True)

    if args.export_every > 0:
        threading.Thread(target=exporter, daemon=True).start()
    t0 = time.time()
    train_model(cfg, progress=False, checkpoint=ckpt, checkpoint_every_s=args.checkpoint_every,
                corpus=frozen_corpus(args.name))
    done.set()
    meta = export(args.name, ckpt)
    print(f"trained {meta['steps']} steps in {time.time() - t0:.0f} s; final loss {meta['losses'][-1]:.3f}")


if __name__ == "__main__":
    main()
