"""A real-CT sanity path: CC-CCII-style preprocessing (HU window, resample, crop) run on a real scan.

The phantom is synthetic and CC-CCII needs a licence and hundreds of GB, so this module checks the
preprocessing on the one real CT that installs offline from a distribution package: Debian's
``invesalius-examples`` ships ``Cranium.inv3``, an InVesalius project holding a real head CT ("ProMED CT
0051", 108 x 256 x 256 int16 HU, 0.957 x 0.957 x 1.5 mm). It is a head, not a chest, so only the pipeline
is checked, not a diagnosis. Install it with::

    apt-get install -y --no-install-recommends invesalius-examples

An ``.inv3`` file is a gzip tar with ``main.plist`` (``matrix``: file name, dtype, shape (z, y, x);
``spacing``: (x, y, z) mm) and the raw little-endian voxel matrix.

    uv run python -m nlran.realct                       # figure + JSON in results/
"""

from __future__ import annotations

import argparse
import json
import plistlib
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from shared.runs import package_versions

INVESALIUS_EXAMPLE = Path("/usr/share/doc/invesalius-examples/examples/Cranium.inv3")
APT_COMMAND = "apt-get install -y --no-install-recommends invesalius-examples"


def find_invesalius_example() -> Path | None:
    """The path of Debian's ``invesalius-examples`` head CT, or ``None`` when the package is not installed."""
    return INVESALIUS_EXAMPLE if INVESALIUS_EXAMPLE.is_file() else None


def load_inv3(path: str | Path) -> tuple[np.ndarray, tuple[float, float, float], dict]:
    """Read an InVesalius ``.inv3`` project: HU volume float32 (z, y, x), spacing (z, y, x) in mm, metadata."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such .inv3 file (Debian: {APT_COMMAND})")
    try:
        with tarfile.open(path, "r:*") as tar:
            members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
            if "main.plist" not in members:
                raise ValueError(f"{path}: not an InVesalius project (no main.plist inside)")
            meta = plistlib.loads(tar.extractfile(members["main.plist"]).read())
            matrix = meta["matrix"]
            raw = tar.extractfile(members[matrix["filename"]]).read()
    except tarfile.TarError as err:
        raise ValueError(f"{path}: not an InVesalius .inv3 project (a gzip tar): {err}") from err
    shape = tuple(int(s) for s in matrix["shape"])
    dtype = np.dtype(matrix["dtype"]).newbyteorder("<")
    if len(raw) != int(np.prod(shape)) * dtype.itemsize:
        raise ValueError(f"{path}: {matrix['filename']} holds {len(raw)} bytes, expected {shape} x {dtype}")
    volume = np.frombuffer(raw, dtype=dtype).reshape(shape).astype(np.float32)
    spacing = tuple(float(s) for s in meta["spacing"])[::-1]  # plist (x, y, z) -> (z, y, x)
    info = {"name": meta.get("name"), "modality": meta.get("modality"), "shape": list(shape),
            "spacing_zyx_mm": list(spacing), "hu_range": [float(volume.min()), float(volume.max())]}
    return volume, spacing, info


def resample(volume: np.ndarray, spacing: tuple[float, float, float], target: tuple[float, float, float]
             ) -> np.ndarray:
    """Trilinear resampling of (z, y, x) ``volume`` from voxel ``spacing`` to ``target`` spacing (mm)."""
    size = [max(1, int(round(n * s / t))) for n, s, t in zip(volume.shape, spacing, target)]
    x = torch.as_tensor(np.ascontiguousarray(volume), dtype=torch.float32)[None, None]
    return F.interpolate(x, size=size, mode="trilinear", align_corners=False)[0, 0].numpy()


def body_bounding_box(volume01: np.ndarray, threshold: float) -> tuple[slice, slice, slice]:
    """The bounding box of the voxels above ``threshold`` (the body, not the air around it)."""
    inside = volume01 > threshold
    if not inside.any():
        raise ValueError(f"no voxel above {threshold}: nothing to crop to (is the HU window right?)")
    box = []
    for axis in range(3):
        hit = np.flatnonzero(inside.any(axis=tuple(a for a in range(3) if a != axis)))
        box.append(slice(int(hit[0]), int(hit[-1]) + 1))
    return tuple(box)


def preprocess_ct(hu: np.ndarray, spacing: tuple[float, float, float],
                  hu_window: tuple[float, float] = (-1200.0, 600.0),
                  target_spacing: tuple[float, float, float] = (1.5, 1.5, 1.5),
                  volume_size: tuple[int, int, int] = (64, 128, 128), body_hu: float = -500.0) -> dict[str, np.ndarray]:
    """CC-CCII-style preprocessing of a HU volume (z, y, x), each step kept for the figure:

    1. ``windowed``: HU window -> [0, 1], clipped (MONAI ``ScaleIntensityRange``, as the phantom pipeline);
    2. ``resampled``: to ``target_spacing`` mm (trilinear), so voxels are the same physical size everywhere;
    3. ``cropped``: to the bounding box of the body (voxels above ``body_hu`` HU), dropping the air;
    4. ``volume``: resized to the network's ``volume_size`` (MONAI ``Resize``), (1, D, H, W) float32.
    """
    from nlran.data import intensity_transform

    lo, hi = hu_window
    windowed = np.clip((hu - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)
    resampled = resample(windowed, spacing, target_spacing)
    cropped = resampled[body_bounding_box(resampled, (body_hu - lo) / (hi - lo))]
    volume = np.asarray(intensity_transform((0.0, 1.0), volume_size)(cropped[None])).astype(np.float32)
    return {"windowed": windowed, "resampled": resampled, "cropped": cropped, "volume": volume}


def plot_real_ct(hu: np.ndarray, steps: dict[str, np.ndarray], path: str | Path, title: str = "") -> Path:
    """Middle axial / coronal / sagittal slices of the raw HU scan and of the network input, with colour bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [("raw scan (HU)", hu, dict(cmap="gray", vmin=-1200, vmax=600), "HU"),
            ("network input", steps["volume"][0], dict(cmap="gray", vmin=0, vmax=1), "windowed [0, 1]")]
    fig, axes = plt.subplots(2, 3, figsize=(9, 6.2))
    for r, (name, vol, style, unit) in enumerate(rows):
        d, h, w = vol.shape
        views = [("axial", vol[d // 2]), ("coronal", vol[:, h // 2][::-1]), ("sagittal", vol[:, :, w // 2][::-1])]
        for c, (view, image) in enumerate(views):
            shown = axes[r, c].imshow(image, aspect="auto", **style)
            axes[r, c].set_title(f"{name}: {view} {tuple(vol.shape)}" if c == 0 else view, fontsize=8)
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
        fig.colorbar(shown, ax=axes[r].tolist(), fraction=0.025, pad=0.02).set_label(unit, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> dict:
    here = Path(__file__).resolve().parents[2]
    parser = argparse.ArgumentParser(description="CC-CCII-style preprocessing of a real CT (invesalius-examples).")
    parser.add_argument("--inv3", type=Path, default=None, help=f"an .inv3 file (default: {INVESALIUS_EXAMPLE})")
    parser.add_argument("--out", type=Path, default=here / "results", help="folder for real_ct.png / real_ct.json")
    parser.add_argument("--volume-size", type=int, nargs=3, default=[64, 128, 128], help="network input (D H W)")
    parser.add_argument("--spacing", type=float, nargs=3, default=[1.5, 1.5, 1.5], help="target spacing (mm)")
    args = parser.parse_args(argv)
    path = args.inv3 or find_invesalius_example()
    if path is None:
        raise SystemExit(f"no real CT: {INVESALIUS_EXAMPLE} is missing; install it with `{APT_COMMAND}`")
    wall = time.time()
    hu, spacing, info = load_inv3(path)
    steps = preprocess_ct(hu, spacing, target_spacing=tuple(args.spacing), volume_size=tuple(args.volume_size))
    vol = steps["volume"]
    summary = {**info, "source": str(path), "resampled_shape": list(steps["resampled"].shape),
               "cropped_shape": list(steps["cropped"].shape), "input_shape": list(vol.shape),
               "input_range": [float(vol.min()), float(vol.max())], "input_mean": float(vol.mean())}
    figure = plot_real_ct(hu, steps, args.out / "real_ct.png",
                          f"{info['name']} ({Path(path).name}): window [-1200, 600] HU, {args.spacing} mm, body crop")
    target = " x ".join(f"{s:.3f}" for s in args.spacing)
    steps_table = [["raw scan (HU)", str(tuple(hu.shape)), " x ".join(f"{s:.3f}" for s in spacing)],
                   ["windowed [-1200, 600] HU -> [0, 1]", str(tuple(steps["windowed"].shape)), "same"],
                   ["resampled", str(tuple(steps["resampled"].shape)), target],
                   ["cropped to the body", str(tuple(steps["cropped"].shape)), target],
                   ["network input", str(tuple(vol.shape[1:])), "resized"]]
    out = {"tables": {"steps": {"columns": ["step", "shape (z, y, x)", "spacing mm"], "rows": steps_table}},
           "summary": summary, "seeds": [], "versions": package_versions("nlran"), "wall_time_s": time.time() - wall,
           "command": "uv run python -m nlran.realct " + " ".join(argv if argv is not None else sys.argv[1:])}
    (args.out / "real_ct.json").write_text(json.dumps(out, indent=2) + "\n")
    print(f"{info['name']}: {tuple(hu.shape)} HU {info['hu_range']} -> {summary['resampled_shape']} at "
          f"{args.spacing} mm -> crop {summary['cropped_shape']} -> input {summary['input_shape']}; wrote {figure}")
    return summary


if __name__ == "__main__":
    main()
