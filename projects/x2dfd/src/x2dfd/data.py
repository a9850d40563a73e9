"""Data: the offline procedural face sets and a loader for DeepfakeBench's preprocessed frame layout."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from shared.data import DatasetRoot
from shared.data import faces_synth as fs


@dataclass
class FaceSet:
    """Frames with labels (0 real, 1 fake), video ids, manipulation names and the regions each touched."""

    images: np.ndarray  # uint8 (N, S, S, 3)
    labels: np.ndarray  # int64 (N,)
    videos: np.ndarray  # int64 (N,)
    manipulations: list[str]
    regions: list[tuple[str, ...]]

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, index) -> FaceSet:
        index = np.asarray(index)
        return FaceSet(self.images[index], self.labels[index], self.videos[index],
                       [self.manipulations[i] for i in index], [self.regions[i] for i in index])


def _from_batch(batch: fs.FaceBatch) -> FaceSet:
    return FaceSet(batch.images, batch.labels, batch.videos, [r["manipulation"] for r in batch.records],
                   [tuple(r["regions"]) for r in batch.records])


N_TRAIN_IDENTITIES = 30


def offline_splits(cfg, seed: int) -> dict[str, FaceSet]:
    """The FF++-like offline protocol: train on identity swaps and expression warps of the training families;
    test on held-out identities (``in_domain``), held-out manipulation types (``unseen_manip``) and a held-out
    face family (``unseen_family``). Video ids are unique across splits."""
    d = cfg
    train_ids, test_ids = range(N_TRAIN_IDENTITIES), range(N_TRAIN_IDENTITIES, N_TRAIN_IDENTITIES + 10)
    f = d.frames_per_video
    splits = {
        "train": fs.make_dataset(d.train_videos, f, d.train_manipulations, d.train_families, d.size, seed,
                                 train_ids, video_offset=0),
        "in_domain": fs.make_dataset(d.test_videos, f, d.train_manipulations, d.train_families, d.size, seed + 1,
                                     test_ids, video_offset=10_000),
        "unseen_manip": fs.make_dataset(d.test_videos, f, d.unseen_manipulations, d.train_families, d.size,
                                        seed + 2, test_ids, video_offset=20_000),
        "unseen_family": fs.make_dataset(d.test_videos, f, ("real", "id", "real", "expr_mouth", "real", "sbi"),
                                         (d.unseen_family,), d.size, seed + 3, test_ids, video_offset=30_000),
    }
    return {k: _from_batch(v) for k, v in splits.items()}


def training_reals(cfg, seed: int, n_videos: int) -> fs.FaceBatch:
    """Real frames of the training identities and families, with landmarks, for online SBI."""
    return fs.make_dataset(n_videos, cfg.frames_per_video, ("real",), cfg.train_families, cfg.size, seed + 17,
                           range(N_TRAIN_IDENTITIES), video_offset=50_000)


# ----------------------------------------------------------------------------------------------------------------
# DeepfakeBench preprocessed frames


DEEPFAKEBENCH_LAYOUT = """\
<data-root>/                                  (DeepfakeBench datasets/rgb after its preprocessing)
  FaceForensics++/
    original_sequences/youtube/c23/frames/<video>/<frame>.png
    manipulated_sequences/{Deepfakes,Face2Face,FaceSwap,NeuralTextures}/c23/frames/<video>/<frame>.png
  Celeb-DF-v2/
    Celeb-real/frames/<video>/<frame>.png   YouTube-real/frames/...   Celeb-synthesis/frames/...
  DeepFakeDetection/   (DFD)
    original_sequences/actors/c23/frames/...  manipulated_sequences/DeepFakeDetection/c23/frames/...
  UADFV/
    real/frames/...   fake/frames/...
  DFDC/                (test set)
    test/labels.csv   (columns filename,label; label 1 = fake)   test/frames/<video>/<frame>.png
  DFDCP/               (DFDC preview; videos whose "set" is "test")
    dataset.json      ({"method_A/<...>/<video>.mp4": {"label": "real"|"fake", "set": "test"}, ...})
    {original_videos,method_A,method_B}/frames/<video>/<frame>.png"""

FOLDERS: dict[str, dict[str, list[str]]] = {
    "FaceForensics++": {
        "real": ["original_sequences/youtube/c23/frames"],
        "fake": [f"manipulated_sequences/{m}/c23/frames" for m in ("Deepfakes", "Face2Face", "FaceSwap",
                                                                     "NeuralTextures")],
    },
    "Celeb-DF-v2": {"real": ["Celeb-real/frames", "YouTube-real/frames"], "fake": ["Celeb-synthesis/frames"]},
    "DFD": {"real": ["original_sequences/actors/c23/frames"],
            "fake": ["manipulated_sequences/DeepFakeDetection/c23/frames"]},
    "UADFV": {"real": ["real/frames"], "fake": ["fake/frames"]},
}
"""Datasets whose label is the folder (DeepfakeBench ``rearrange.py``)."""
LABEL_FILES = {"DFDC": "test/labels.csv", "DFDCP": "dataset.json"}
"""Datasets whose labels come from a file (DeepfakeBench ``rearrange.py``: DFDC test ``labels.csv``, DFDC-P
``dataset.json`` with the split in ``"set"``)."""
DATASET_DIR = {"FaceForensics++": "FaceForensics++", "Celeb-DF-v2": "Celeb-DF-v2", "DFD": "DeepFakeDetection",
               "UADFV": "UADFV", "DFDC": "DFDC", "DFDCP": "DFDCP"}


class DeepfakeBenchRoot(DatasetRoot):
    name = "DeepfakeBench preprocessed frames"
    layout = DEEPFAKEBENCH_LAYOUT

    def __init__(self, root, dataset: str):
        if dataset not in DATASET_DIR:
            raise ValueError(f"unknown dataset {dataset!r}; expected one of {list(DATASET_DIR)}")
        self.dataset = dataset
        base = DATASET_DIR[dataset]
        if dataset in LABEL_FILES:
            self.required = (f"{base}/{LABEL_FILES[dataset]}",)
        else:
            self.required = tuple(f"{base}/{p}" for p in FOLDERS[dataset]["real"][:1] + FOLDERS[dataset]["fake"][:1])
        super().__init__(root)

    def videos(self) -> list[tuple[int, str, Path]]:
        """``(label, manipulation, frame folder)`` of every test video of the dataset."""
        base = self.root / DATASET_DIR[self.dataset]
        out: list[tuple[int, str, Path]] = []
        if self.dataset == "DFDC":
            import csv

            with open(base / LABEL_FILES["DFDC"], newline="") as f:
                rows = list(csv.DictReader(f))
            if rows and not {"filename", "label"} <= set(rows[0]):
                raise self.missing_file(f"DFDC/{LABEL_FILES['DFDC']} (columns filename,label)")
            for row in rows:
                label = int(row["label"])
                out.append((label, "DFDC" if label else "real", base / "test" / "frames" / Path(row["filename"]).stem))
        elif self.dataset == "DFDCP":
            import json

            info = json.loads((base / LABEL_FILES["DFDCP"]).read_text())
            for key, meta in sorted(info.items()):
                if meta.get("set") != "test":
                    continue
                index = key.split("/")[0]
                label = int(meta["label"] != "real")
                out.append((label, index if label else "real", base / index / "frames" / Path(key).stem))
        else:
            for label, key in ((0, "real"), (1, "fake")):
                for folder in FOLDERS[self.dataset][key]:
                    top = base / folder
                    if not top.is_dir():
                        continue
                    man = Path(folder).parts[1] if key == "fake" and len(Path(folder).parts) > 2 else key
                    out += [(label, man, v) for v in sorted(p for p in top.iterdir() if p.is_dir())]
        return out

    def load(self, frames_per_video: int, size: int, video_offset: int = 0) -> FaceSet:
        """``frames_per_video`` uniformly spaced frames of every video (``np.linspace``), resized to ``size``."""
        images, labels, videos, mans = [], [], [], []
        vid = video_offset
        for label, man, video in self.videos():
            frames = (sorted(video.glob("*.png")) + sorted(video.glob("*.jpg"))) if video.is_dir() else []
            if not frames:
                continue
            pick = np.unique(np.linspace(0, len(frames) - 1, frames_per_video).round().astype(int))
            for k in pick:
                img = cv2.imread(str(frames[k]), cv2.IMREAD_COLOR)
                if img is None:
                    raise self.missing_file(frames[k].relative_to(self.root))
                images.append(cv2.resize(cv2.cvtColor(img, cv2.COLOR_BGR2RGB), (size, size),
                                         interpolation=cv2.INTER_AREA))
                labels.append(label)
                videos.append(vid)
                mans.append(man)
            vid += 1
        if not images:
            raise self.missing_file(f"{DATASET_DIR[self.dataset]}/<video>/<frame>.png")
        return FaceSet(np.stack(images), np.array(labels, np.int64), np.array(videos, np.int64), mans,
                       [("skin",)] * len(images))


def real_splits(cfg, root) -> dict[str, FaceSet]:
    """The paper protocol: train on FF++ c23, test cross-dataset."""
    splits = {"train": DeepfakeBenchRoot(root, cfg.train_set).load(cfg.frames_per_real_video, cfg.size)}
    for k, name in enumerate(cfg.test_sets, start=1):
        splits[name] = DeepfakeBenchRoot(root, name).load(cfg.frames_per_real_video, cfg.size, 10_000 * k)
    return splits
