"""Times 100,000 operator-time predictions in one vectorised call (`python -m sysgym.kernels.bench`)."""
from __future__ import annotations

import time

import numpy as np

from .predict import predict_op_times


def main(n: int = 100_000, repeats: int = 5) -> float:
    tokens = np.random.default_rng(0).integers(1, 32_768, size=n)
    predict_op_times("a100-80gb", "llama-3-8b", tokens[:10], 1)  # load catalogues and calibration once
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        times = predict_op_times("a100-80gb", "llama-3-8b", tokens, 2)
        best = min(best, time.perf_counter() - start)
    count = n * len(times)
    print(f"predict_op_times: {n:,} token counts x {len(times)} operators = {count:,} operator times "
          f"in {best * 1e3:.1f} ms (best of {repeats})")
    return best


if __name__ == "__main__":
    main()
