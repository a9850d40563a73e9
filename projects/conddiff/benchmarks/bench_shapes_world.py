"""Throughput of the shapes-world generator and of one base-model training step (prints, never asserts)."""

import time

import torch

from shared.data import shapes_world as sw

torch.set_num_threads(1)  # one thread: figures comparable across runs

for size, n in ((32, 20000), (64, 4000)):
    sw.generate(64, 0, image_size=size)
    t = time.perf_counter()
    sw.generate(n, 1, image_size=size)
    dt = time.perf_counter() - t
    print(f"shapes_world.generate {size}x{size}: {n / dt:,.0f} scenes/s (1-3 objects, captions and masks)")
    t = time.perf_counter()
    sw.generate(n, 1, image_size=size, textures=True)
    print(f"  with textures: {n / (time.perf_counter() - t):,.0f} scenes/s")
t = time.perf_counter()
recs = sw.edit_records(500, 0)
print(f"shapes_world.edit_records: {500 / (time.perf_counter() - t):,.0f} records/s")

from conddiff import train  # noqa: E402
from conddiff.data import DataConfig, ShapesStream  # noqa: E402
from conddiff.diffusion import add_noise, ddpm_loss  # noqa: E402
from conddiff.model import UNetConfig  # noqa: E402
from conddiff.text import tokenize  # noqa: E402

for channels, batch in (((16, 32, 32), 32), ((32, 64, 64), 48)):
    cfg = train.TrainConfig()
    cfg.model.unet = UNetConfig(block_out_channels=channels)
    pipe = train.build_pipeline(cfg)
    opt = torch.optim.AdamW(list(pipe.unet.parameters()) + list(pipe.text_encoder.parameters()), 1e-3)
    stream, abar = ShapesStream(DataConfig(), 0), pipe.scheduler.alphas_cumprod
    times = []
    for step in range(4):
        t = time.perf_counter()
        x0, caps = stream.batch(step, batch)
        tt = torch.randint(0, 1000, (batch,))
        eps = torch.randn_like(x0)
        emb = pipe.text_encoder(tokenize(pipe.tokenizer, caps))[0]
        loss = ddpm_loss(pipe.eps(add_noise(x0, eps, abar[tt]), tt, emb), eps, abar[tt], 5.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t)
    n_params = sum(p.numel() for p in pipe.unet.parameters())
    print(f"train step UNet {channels} ({n_params:,} params), batch {batch}: {sum(times[1:]) / 3:.2f} s/step")
