"""The scalar fast-forward's KV-area sum must be numpy's pairwise summation to the bit (speed work keeps every
output identical: benchmarks/llm_serving_golden.py)."""
import numpy as np

from sysgym.envs.llm_serving.replica import pairwise_sum


def test_pairwise_sum_is_numpy_add_reduce_to_the_bit():
    rng = np.random.default_rng(0)
    for n in list(range(1, 300)) + [513, 1000]:
        x = rng.random(n) * 10.0 ** rng.uniform(-3, 3, n)
        assert pairwise_sum(x.tolist()) == float(np.add.reduce(x)), n
