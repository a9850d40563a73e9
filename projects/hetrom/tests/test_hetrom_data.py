"""Task samplers and the real-dataset loaders (on tiny fake roots in the official layouts)."""

import cv2
import numpy as np
import pytest

from hetrom.data import FewShotTasks, GlyphClasses, MiniImageNetRoot, OmniglotRoot, SinusoidTasks
from shared.data.glyphs import GlyphAlphabet
from shared.data.sinusoid import SinusoidFamily


def test_sinusoid_meta_batch_schema():
    batch = SinusoidTasks(SinusoidFamily(noisy_rate=0.5), 5, 7).sample(np.random.default_rng(0), 11)
    assert batch["x_support"].shape == (11, 5, 1) and batch["y_query"].shape == (11, 7, 1)
    assert set(batch) == {"x_support", "y_support", "x_query", "y_query", "f_query", "kind"}


def test_fewshot_clean_noisy_and_outlier_tasks():
    source = GlyphClasses(GlyphAlphabet(30, seed=0), 0, 20, image_size=12)
    tasks = FewShotTasks(source, n_way=4, k_shot=2, k_query=3, noisy_rate=0.4, outlier_rate=0.3, label_noise=1.0)
    batch = tasks.sample(np.random.default_rng(0), 400)
    assert batch["x_support"].shape == (400, 8, 1, 12, 12) and batch["y_query"].shape == (400, 12)
    kind = batch["kind"]
    assert 0.33 < (kind == 1).mean() < 0.47 and 0.23 < (kind == 2).mean() < 0.37
    clean = np.repeat(np.arange(4), 2)
    assert (batch["y_support"][kind != 1] == clean).all()  # clean and outlier tasks keep their labels
    agree = (batch["y_support"][kind == 1] == clean).mean()  # noisy: uniform labels, 1/4 agree by chance
    assert 0.18 < agree < 0.32
    # outlier tasks are photometric inversions: their background is 1, not 0
    assert batch["x_query"][kind == 2].mean() > 0.7 and batch["x_query"][kind == 0].mean() < 0.3


def test_fewshot_rejects_too_few_classes_and_bad_rates():
    source = GlyphClasses(GlyphAlphabet(10, seed=0), 0, 3)
    with pytest.raises(ValueError, match="at least 5 classes"):
        FewShotTasks(source, n_way=5)
    with pytest.raises(ValueError, match="rates"):
        FewShotTasks(GlyphClasses(GlyphAlphabet(10), 0, 10), noisy_rate=0.8, outlier_rate=0.5)
    with pytest.raises(ValueError, match="exceeds"):
        GlyphClasses(GlyphAlphabet(10), 5, 6)


def _write(path, image):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), image)


def test_omniglot_loader_reads_the_official_layout(tmp_path):
    rng = np.random.default_rng(0)
    for folder, n_chars in (("images_background", 1250), ("images_evaluation", 60)):
        for c in range(n_chars):
            (tmp_path / folder / f"Alphabet_{c % 3}" / f"character{c:04d}").mkdir(parents=True)
    for char in sorted(tmp_path.glob("*/*/*")):  # two tiny drawings per character
        for j in range(2):
            img = np.full((20, 20), 255, np.uint8)
            img[4:16, 8:12] = 0  # black ink on white, as in Omniglot
            _write(char / f"{char.name}_{j:02d}.png", img)
    train = OmniglotRoot(tmp_path).classes("train", image_size=10)
    test = OmniglotRoot(tmp_path).classes("test", image_size=10)
    assert train.n_classes == 1200 and test.n_classes == 1310 - 1300
    images = train.sample(np.array([0, 7]), 2, rng)
    assert images.shape == (2, 2, 1, 10, 10) and images.max() == pytest.approx(1.0) and images.min() == 0.0
    with pytest.raises(ValueError, match="fewer than"):
        train.sample(np.array([0]), 3, rng)
    rotated = OmniglotRoot(tmp_path).classes("train", image_size=10, rotations=True)
    assert rotated.n_classes == 4 * 1200
    quarter = rotated.sample(np.array([4 * 7 + 1]), 2, np.random.default_rng(1))  # class 7 turned by 90 degrees
    plain = train.sample(np.array([7]), 2, np.random.default_rng(1))
    np.testing.assert_array_equal(quarter, np.rot90(plain, 1, axes=(-2, -1)))
    assert not np.array_equal(quarter, plain)  # the drawing is a vertical bar: rotation changes it


def test_miniimagenet_loader_reads_the_ravi_split(tmp_path):
    for split, labels in (("train", ["n01", "n02"]), ("val", ["n03"]), ("test", ["n04", "n05"])):
        rows = ["filename,label"]
        for label in labels:
            for j in range(3):
                name = f"{label}0000{j}.jpg"
                _write(tmp_path / "images" / name, np.full((30, 40, 3), (10, 20, 200), np.uint8))
                rows.append(f"{name},{label}")
        (tmp_path / f"{split}.csv").write_text("\n".join(rows) + "\n")
    classes = MiniImageNetRoot(tmp_path).classes("test", image_size=8)
    assert classes.n_classes == 2
    images = classes.sample(np.array([1]), 3, np.random.default_rng(0))
    assert images.shape == (1, 3, 3, 8, 8)
    assert images[0, 0, 0].mean() > 0.7 and images[0, 0, 2].mean() < 0.05  # BGR file (10, 20, 200) -> RGB


def test_missing_roots_name_the_path_and_the_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match="images_background"):
        OmniglotRoot(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="train.csv"):
        MiniImageNetRoot(tmp_path)
