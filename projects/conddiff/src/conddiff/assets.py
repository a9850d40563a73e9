"""Where conddiff's committed models live (its project folder), for conddiff itself and for other projects.

    from conddiff.assets import BASE_MULTI, SCENE_JUDGE   # e.g. projects/multiedits builds on them

* :data:`BASE` -- the single-object base model (diffusers layout, 32x32 pixel space, 1,500 steps);
* :data:`BASE_MULTI` -- the multi-object base model (``BASE`` fine-tuned on 1-3-object scenes,
  ``configs/base_multi.yaml``);
* :data:`JUDGE` / :data:`SCENE_JUDGE` / :data:`NOISY_CLASSIFIER` -- the attribute judges (``train_judge.py``).
"""

from __future__ import annotations

from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]  # projects/conddiff (an editable workspace member)
CHECKPOINTS = PROJECT / "checkpoints"
BASE = CHECKPOINTS / "base"
BASE_MULTI = CHECKPOINTS / "base_multi"
JUDGE = CHECKPOINTS / "judge"
SCENE_JUDGE = CHECKPOINTS / "scene_judge"
NOISY_CLASSIFIER = CHECKPOINTS / "noisy_classifier"
CONFIGS = PROJECT / "configs"
