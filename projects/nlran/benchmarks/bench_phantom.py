"""Time the chest-CT phantom generator (shared.data.ct_phantom) at several sizes. Prints, never asserts.

    uv run benchmarks/bench_phantom.py
"""

from __future__ import annotations

import time

import numpy as np

from shared.data.ct_phantom import chest_ct_phantom


def main(repeats: int = 6) -> None:
    rng = np.random.default_rng(0)
    for shape in [(32, 32, 32), (64, 64, 64), (64, 128, 128)]:
        chest_ct_phantom(0, shape, rng)  # warm-up
        times = []
        for i in range(repeats):
            start = time.perf_counter()
            chest_ct_phantom(i % 3, shape, rng)
            times.append(time.perf_counter() - start)
        print(f"phantom {shape}: median {np.median(times) * 1000:.0f} ms/volume (min {min(times) * 1000:.0f} ms)")


if __name__ == "__main__":
    main()
