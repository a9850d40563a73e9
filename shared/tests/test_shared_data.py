"""shared.data: the offline sources and the real-dataset root check."""

import numpy as np
import pytest

from shared.data import PHOTO_NAMES, DatasetRoot, digits, faces, photos, require_root


def test_digits_shape_range_labels():
    images, labels = digits()
    assert images.shape == (1797, 8, 8) and images.dtype == np.float32
    assert images.min() == 0.0 and images.max() == 1.0
    assert labels.dtype == np.int64 and set(np.unique(labels)) == set(range(10))


def test_photos_named_rgb_uint8():
    out = photos(["astronaut", "china", "camera"])
    assert list(out) == ["astronaut", "china", "camera"]
    for image in out.values():
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    cam = out["camera"]
    assert np.array_equal(cam[..., 0], cam[..., 2])  # grayscale replicated
    default = photos()
    assert "camera" not in default and "flower" in default
    assert len(photos(include_gray=True)) == len(PHOTO_NAMES)
    # a copy each call: mutating one result does not change the next
    out["astronaut"][:] = 0
    assert photos(["astronaut"])["astronaut"].max() == 255


def test_photos_unknown_name():
    with pytest.raises(ValueError, match="unknown photo name.*expected some of"):
        photos(["lena"])


def test_faces():
    out = faces()
    assert len(out) == 101
    assert all(f.shape == (25, 25) and f.dtype == np.float32 for f in out[:100])
    assert out[100].ndim == 3 and 0.0 <= out[100].min() and out[100].max() <= 1.0
    assert len(faces(include_astronaut=False)) == 100


def test_require_root_errors_name_path_and_layout(tmp_path):
    layout = "root/\n  train/\n  test/"
    with pytest.raises(FileNotFoundError, match="no data root given"):
        require_root(None, ["train"], dataset="Toy", layout=layout)
    with pytest.raises(FileNotFoundError, match="(?s)does not exist.*Expected layout of Toy"):
        require_root(tmp_path / "nope", ["train"], dataset="Toy", layout=layout)
    (tmp_path / "train").mkdir()
    with pytest.raises(FileNotFoundError, match=r"missing \['test', 'images/\*.png'\]"):
        require_root(tmp_path, ["train", "test", "images/*.png"], dataset="Toy", layout=layout)
    (tmp_path / "test").mkdir()
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.png").write_bytes(b"")
    assert require_root(tmp_path, ["train", "test", "images/*.png"], dataset="Toy", layout=layout) == tmp_path.resolve()


def test_dataset_root_subclass(tmp_path):
    class Toy(DatasetRoot):
        name = "Toy"
        layout = "root/\n  labels.csv"
        required = ("labels.csv",)

    with pytest.raises(FileNotFoundError, match="labels.csv"):
        Toy(tmp_path)
    (tmp_path / "labels.csv").write_text("a,b\n")
    toy = Toy(tmp_path)
    assert toy.root == tmp_path.resolve()
    assert "images/x.png" in str(toy.missing_file("images/x.png"))
