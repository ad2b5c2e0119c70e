"""Hardware-model speed: 100,000 token counts x every operator in one vectorised call (figures printed).

    python benchmarks/kernels_bench.py
"""
from sysgym.kernels.bench import main

if __name__ == "__main__":
    main()
