"""Throughput of the procedural face generator (shared.data.faces_synth), 64x64, one thread.

Prints faces per second of CPU time (process time, so other jobs on a shared machine do not count) and of wall
time, per manipulation and for the full mix. Never asserts.

    OMP_NUM_THREADS=1 uv run benchmarks/bench_faces_synth.py
"""

from __future__ import annotations

import time

import cv2

from shared.data import faces_synth as fs


def measure(manipulations, families=("toon", "shaded", "lfw"), n_videos=60, frames=4):
    t_cpu, t_wall = time.process_time(), time.perf_counter()
    batch = fs.make_dataset(n_videos, frames, manipulations, families, size=64, seed=0)
    return len(batch) / (time.process_time() - t_cpu), len(batch) / (time.perf_counter() - t_wall)


def main() -> None:
    cv2.setNumThreads(1)
    fs.make_dataset(2, 1, fs.MANIPULATIONS, ("toon", "shaded", "lfw"))  # warm-up (loads the LFW crops)
    print(f"{'manipulation':<14} {'faces/s (CPU)':>14} {'faces/s (wall)':>15}")
    for name in fs.MANIPULATIONS:
        cpu, wall = measure((name,))
        print(f"{name:<14} {cpu:14.0f} {wall:15.0f}")
    cpu, wall = measure(fs.MANIPULATIONS)
    print(f"{'all (mix)':<14} {cpu:14.0f} {wall:15.0f}")


if __name__ == "__main__":
    main()
