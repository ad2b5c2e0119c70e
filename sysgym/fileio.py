"""Writing files so a crash never leaves a half-written one (instances, solutions, caches)."""
from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write to a temporary sibling, then rename over `path` (atomic on POSIX)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + f".tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


def write_json_atomic(path: str | os.PathLike, data: Any, **dumps_kwargs: Any) -> Path:
    return write_text_atomic(path, json.dumps(data, **dumps_kwargs))


def writable_dir(path: str | os.PathLike) -> bool:
    """Whether files can be created in folder `path` (creating it if missing); tried, not guessed from modes
    (root ignores modes, read-only mounts do not)."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".tmp-probe-{uuid.uuid4().hex}"
        probe.touch(exist_ok=False)
        probe.unlink()
        return True
    except OSError:
        return False
