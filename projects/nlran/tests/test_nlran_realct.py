"""The real-CT sanity path: reading InVesalius projects and CC-CCII-style preprocessing of a real head CT."""

from __future__ import annotations

import io
import plistlib
import tarfile

import numpy as np
import pytest

from nlran.realct import APT_COMMAND, find_invesalius_example, load_inv3, preprocess_ct


def _write_inv3(path, volume: np.ndarray, spacing_xyz=(0.5, 0.5, 2.0)):
    meta = {"matrix": {"dtype": "int16", "filename": "matrix.dat", "shape": list(volume.shape)},
            "spacing": list(spacing_xyz), "name": "synthetic", "modality": "CT"}
    with tarfile.open(path, "w:gz") as tar:
        for name, data in (("p/main.plist", plistlib.dumps(meta)), ("p/matrix.dat", volume.astype("<i2").tobytes())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_load_inv3_and_preprocess_a_written_project(tmp_path):
    hu = np.full((6, 16, 12), -1000, np.int16)
    hu[1:5, 4:12, 2:10] = 40  # a soft-tissue box in air
    _write_inv3(tmp_path / "a.inv3", hu)
    volume, spacing, info = load_inv3(tmp_path / "a.inv3")
    np.testing.assert_array_equal(volume, hu)
    assert spacing == (2.0, 0.5, 0.5) and info["shape"] == [6, 16, 12]
    steps = preprocess_ct(volume, spacing, target_spacing=(1.0, 1.0, 1.0), volume_size=(4, 8, 8))
    assert steps["resampled"].shape == (12, 8, 6)  # 6 x 2 mm, 16 x 0.5 mm, 12 x 0.5 mm at 1 mm
    assert steps["cropped"].shape == (8, 4, 4)  # the box only (air cropped away)
    assert steps["volume"].shape == (1, 4, 8, 8)
    tissue = (40 + 1200) / 1800  # window [-1200, 600]
    np.testing.assert_allclose(steps["cropped"][2:6], tissue, atol=1e-5)  # inside the box, away from its blur
    assert steps["volume"].max() == pytest.approx(tissue, abs=1e-5)


def test_bad_inv3_files_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="invesalius-examples"):
        load_inv3(tmp_path / "missing.inv3")
    (tmp_path / "b.inv3").write_bytes(b"not a tar")
    with pytest.raises(ValueError, match="not an InVesalius"):
        load_inv3(tmp_path / "b.inv3")


@pytest.mark.skipif(find_invesalius_example() is None,
                    reason=f"Debian's invesalius-examples is not installed (real head CT); `{APT_COMMAND}`")
def test_real_head_ct_from_invesalius_examples(tmp_path):
    hu, spacing, info = load_inv3(find_invesalius_example())
    assert hu.shape == (108, 256, 256) and info["modality"] == "CT"
    assert spacing == pytest.approx((1.5, 0.957, 0.957), abs=1e-3)
    assert hu.min() == -1024 and hu.max() > 1000  # air and bone in Hounsfield units
    assert abs(float(np.median(hu[54, 96:160, 96:160])) - 35) < 25  # brain tissue ~20-45 HU
    steps = preprocess_ct(hu, spacing, volume_size=(32, 64, 64))
    x = steps["volume"]
    assert x.shape == (1, 32, 64, 64) and 0.0 <= x.min() and x.max() <= 1.0 and x.std() > 0.05
    assert steps["cropped"].size < steps["resampled"].size  # the crop removed air
    from nlran.realct import plot_real_ct

    assert plot_real_ct(hu, steps, tmp_path / "real.png").stat().st_size > 10_000
