"""Cost of the training and scoring steps of the offline default (tiny LLaVA, 64 px faces), one thread.

Prints milliseconds of CPU time (process time) and wall time per step. Never asserts.

    OMP_NUM_THREADS=1 uv run benchmarks/bench_train_step.py
"""

from __future__ import annotations

import time

import numpy as np
import torch

from shared.data import faces_synth as fs
from x2dfd import mfa, prompts, wfs
from x2dfd.mllm import MLLM
from x2dfd.pipeline import corpus


def timed(fn, repeat: int) -> tuple[float, float]:
    fn()  # warm-up
    c, w = time.process_time(), time.perf_counter()
    for _ in range(repeat):
        fn()
    return 1000 * (time.process_time() - c) / repeat, 1000 * (time.perf_counter() - w) / repeat


def main() -> None:
    torch.set_num_threads(1)
    faces = fs.make_dataset(8, 4, ("real", "sbi"), size=64, seed=0)
    m = MLLM.tiny(corpus(mfa.load_question_bank()))
    m.add_lora()
    opt = torch.optim.AdamW(m.param_groups(2e-3, 2e-4))
    asks = [wfs.expert_question({"Blending": 0.5})] * 8
    ans = ["This image is fake. The eyes look wrong. The nose looks unnatural."] * 8

    def lora_step():
        m.model.train()
        loss = m.loss(faces.images[:8], asks, ans)
        opt.zero_grad()
        loss.backward()
        opt.step()

    expert = wfs.BlendingExpert()
    eopt = torch.optim.Adam(expert.parameters(), 1e-3)
    x = wfs.to_tensor(faces.images[:32])
    y = torch.arange(32) % 2

    def expert_step():
        loss = torch.nn.functional.cross_entropy(expert(x), y)
        eopt.zero_grad()
        loss.backward()
        eopt.step()

    rng = np.random.default_rng(0)
    rows = [
        ("LoRA step, batch 8 (tiny LLaVA)", timed(lora_step, 5)),
        ("P(fake), 32 images", timed(lambda: m.p_fake(faces.images, asks[0]), 3)),
        ("expert step, batch 32 (16 real + 16 SBI)", timed(expert_step, 5)),
        ("SBI pairs, 16 faces", timed(lambda: [fs.self_blend(faces.images[i], faces.landmarks[i], rng)
                                               for i in range(16)], 3)),
        ("generate 16 tokens, 8 images", timed(lambda: m.generate(faces.images[:8], [prompts.human_turn()] * 8,
                                                                 max_new_tokens=16), 2)),
    ]
    print(f"{'step':<44} {'ms (CPU)':>10} {'ms (wall)':>10}")
    for name, (cpu, wall) in rows:
        print(f"{name:<44} {cpu:10.1f} {wall:10.1f}")


if __name__ == "__main__":
    main()
