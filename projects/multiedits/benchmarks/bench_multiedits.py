"""Throughput figures: offline record generation, one batched UNet call per number of branches, and one edit
per method (committed base model, CPU, OMP_NUM_THREADS threads). Prints figures; asserts nothing.

    OMP_NUM_THREADS=1 uv run python benchmarks/bench_multiedits.py
"""

from __future__ import annotations

import time

import torch

from conddiff.assets import BASE_MULTI as DEFAULT_BASE
from conddiff.data import to_tensor
from conddiff.pipeline import load_pipeline
from multiedits.data import attribute_edit_records, render_record
from multiedits.editor import EditConfig, P2PConfig, p2p_edit, parallel_edit, sequential_edit
from multiedits.grouping import aspects_from_edit_action


def timed(fn, repeat: int = 3) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat


def main() -> None:
    torch.set_num_threads(1)
    t = timed(lambda: attribute_edit_records(200, 0, (1, 4)), 2)
    print(f"attribute_edit_records: {200 / t:,.0f} records/s (32x32, 1-4 aspects, rendered masks)")
    pipe = load_pipeline(DEFAULT_BASE, "cpu")
    for n in (1, 2, 3):
        rows = 2 * (1 + 2 * n)
        x, emb = torch.randn(rows, 3, 32, 32), pipe.encode_prompts([""] * rows)
        with torch.no_grad():
            s = timed(lambda: pipe.eps(x, 500, emb), 5)
        print(f"one UNet call, {n} branch(es) = batch {rows}: {1000 * s:.1f} ms")
    for k in (1, 3):
        rec = attribute_edit_records(1, 11, k)[0]
        img = to_tensor(render_record(rec)[0][None])
        aspects = aspects_from_edit_action(rec["edit_action"], rec.get("blended_words"))
        for name, fn, cfg in (("ParallelEdits", parallel_edit, EditConfig()), ("sequential", sequential_edit,
                                                                               EditConfig()),
                              ("P2P", p2p_edit, P2PConfig())):
            res = fn(pipe, img, rec["source_prompt"], aspects, cfg)
            print(f"{name}, {k} aspect(s): {res.seconds:.2f} s, {res.unet_calls} UNet calls, "
                  f"{res.unet_images} images through the UNet")


if __name__ == "__main__":
    main()
