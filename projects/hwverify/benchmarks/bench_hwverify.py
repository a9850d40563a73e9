"""Throughput of the synthetic "and" generator and of one training step of each verifier (prints, never asserts).

    OMP_NUM_THREADS=1 uv run benchmarks/bench_hwverify.py
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F

from hwverify.config import VLMConfig
from hwverify.data import make_pairs, model_input
from hwverify.model import SiameseResNet18
from shared.data.handwriting import handwriting_and


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    torch.manual_seed(0)
    print(f"torch threads: {torch.get_num_threads()}")
    t = timed(lambda: handwriting_and(100, 6, seed=1), 2)
    print(f"generator: {600 / t:8.0f} samples/s  (100 writers x 6 samples, 64x64, {t:.2f} s)")

    hw = handwriting_and(9, 6, seed=2)
    images = torch.from_numpy(model_input(hw.images))
    pairs = torch.as_tensor(make_pairs(hw.writer_ids, np.arange(len(hw)), np.random.default_rng(0)))
    model = SiameseResNet18()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def resnet_step():
        emb = model.embedding(images)
        loss = F.cross_entropy(model.pair_logits(emb[pairs[:, 0]], emb[pairs[:, 1]]), pairs[:, 2])
        opt.zero_grad()
        loss.backward()
        opt.step()

    t = timed(resnet_step, 2)
    print(f"ResNet-18 step: {t:.2f} s for {len(images)} images / {len(pairs)} pairs "
          f"({len(pairs) / t:.0f} pairs/s, {1000 * t / len(images):.0f} ms per image)")

    from hwverify.vlm import VLMVerifier, load_base, prepare_tuning

    originals = np.rint(hw.images * 255).astype(np.uint8)
    batch = pairs[:32].numpy()
    suffixes = ["yes" if y else "no" for y in batch[:, 2]]
    for name, cfg in (("random SigLIP + LoRA", VLMConfig(pretrained=None, image_size=64, tuning="lora")),
                      ("random SigLIP, full", VLMConfig(pretrained=None, image_size=64, tuning="full")),
                      ("ImageNet Lite0 tower (frozen), full", VLMConfig(pretrained=None, image_size=64, tuning="full",
                                                                        vision_tower="lite0", freeze_vision=True))):
        base, processor = load_base(cfg)
        verifier = VLMVerifier(prepare_tuning(base, cfg), processor, cfg, torch.device("cpu"))
        vopt = torch.optim.AdamW([p for p in verifier.model.parameters() if p.requires_grad], lr=1e-3)

        def vlm_step():
            verifier.train()
            loss = verifier.loss(originals, batch, suffixes)
            vopt.zero_grad()
            loss.backward()
            vopt.step()

        t = timed(vlm_step, 2)
        print(f"tiny PaliGemma ({name}) step: {t:.2f} s for 32 pairs ({32 / t:.0f} pairs/s)")


if __name__ == "__main__":
    main()
