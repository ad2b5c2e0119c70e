from pathlib import Path

import pytest

from sysgym.envs.serverless import ServerlessInstance

DATA = Path(__file__).resolve().parent / "data"


def hand_instance(capacity_mb: float = 1536.0, memory_weight: float = 0.5) -> ServerlessInstance:
    """Two functions, three invocations, every figure checkable by hand (see test_evaluate.py).

    f0: 1024 MB, cold start 1.0 s (0.5 pod, 0.1 code, 0.2 dependencies, 0.2 scheduling); invoked at 0 s (runs
    2 s) and 10 s (runs 1 s). f1: 512 MB, cold start 2.0 s (0.4, 0.4, 0.4, 0.8); invoked at 5 s (runs 1 s).
    """
    return ServerlessInstance(
        mem_mb=[1024, 512], pod_alloc_s=[0.5, 0.4], deploy_code_s=[0.1, 0.4], deploy_dep_s=[0.2, 0.4],
        scheduling_s=[0.2, 0.8], trigger=[0, 4], inv_func=[0, 1, 0], inv_time=[0.0, 5.0, 10.0],
        inv_exec=[2.0, 1.0, 1.0], capacity_mb=capacity_mb, memory_weight=memory_weight, horizon_s=20.0,
        name="serverless/hand")


@pytest.fixture
def hand():
    return hand_instance()
