"""KV-eviction tests run in a temporary cache directory (the `tiny` and `default` models ship; others train there)."""
import os

import pytest
import torch


@pytest.fixture(scope="session", autouse=True)
def kv_cache_dir(tmp_path_factory):
    torch.set_num_threads(1)
    old = os.environ.get("SYSGYM_CACHE_DIR")
    path = tmp_path_factory.mktemp("kv_cache")
    os.environ["SYSGYM_CACHE_DIR"] = str(path)
    from sysgym.envs.kv_eviction import model

    model._LOADED.clear()
    yield path
    model._LOADED.clear()
    if old is None:
        os.environ.pop("SYSGYM_CACHE_DIR", None)
    else:
        os.environ["SYSGYM_CACHE_DIR"] = old


@pytest.fixture(scope="session")
def tiny_instance(kv_cache_dir):
    from sysgym.envs.kv_eviction import generate

    return generate(seed=0, preset="tiny", progress=False)
