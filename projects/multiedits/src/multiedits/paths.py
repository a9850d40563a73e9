"""Where the offline base model and the attribute judge live: ``projects/conddiff`` (a workspace member)."""

from __future__ import annotations

from pathlib import Path

import conddiff

CONDDIFF = Path(conddiff.__file__).resolve().parents[2]
DEFAULT_BASE = CONDDIFF / "checkpoints" / "base"  # committed by conddiff (diffusers layout, 32x32 pixel space)
DEFAULT_JUDGE = CONDDIFF / "checkpoints" / "judge"  # committed by conddiff (train_judge.py), 100% on renders
CONDDIFF_TRAIN = CONDDIFF / "train.py"
CONDDIFF_CPU_CONFIG = CONDDIFF / "configs" / "cpu.yaml"
