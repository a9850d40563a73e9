"""The ten label nodes of SJEDD, their text descriptions and the training label vectors.

Node order (official ``SO_Graph.py``): 0 fake | 1 expression, 2 identity, 3 physical inconsistency (global) |
4 eye, 5 eyebrow, 6 lip, 7 mouth, 8 nose, 9 skin (local).
"""

from __future__ import annotations

import torch

NODE_NAMES: tuple[str, ...] = (
    "fake", "expression", "identity", "physical inconsistency", "eye", "eyebrow", "lip", "mouth", "nose", "skin",
)
GLOBAL_NODES: tuple[int, ...] = (1, 2, 3)
LOCAL_NODES: tuple[int, ...] = (4, 5, 6, 7, 8, 9)

BINARY_PROMPT = "A photo of a fake face"
GLOBAL_TEMPLATE = "A photo of a face with the global attribute of {} altered"
LOCAL_TEMPLATE = "A photo of a face with the local attribute of {} altered"


def prompts() -> list[str]:
    """The 1 + 3 + 6 text descriptions, byte-exact to the official training script, in node order."""
    return ([BINARY_PROMPT]
            + [GLOBAL_TEMPLATE.format(x) for x in NODE_NAMES[1:4]]
            + [LOCAL_TEMPLATE.format(x) for x in NODE_NAMES[4:]])


# Official ``set_dataset_train.py`` ``label_map_soff``: the training targets, keyed by manipulation class.
LABEL_MAP_SOFF: dict[str, tuple[int, ...]] = {
    "real":       (0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
    "phys_eyes":  (1, 0, 0, 1, 1, 0, 0, 0, 0, 0),
    "expr_mouth": (1, 1, 0, 1, 0, 0, 1, 1, 0, 0),
    "phy_mouth":  (1, 0, 0, 1, 0, 0, 1, 1, 0, 0),
    "phy_nose":   (1, 0, 0, 1, 0, 0, 0, 0, 1, 0),
    "id":         (1, 0, 1, 1, 1, 1, 1, 1, 1, 1),
}

# Official ``SO_Graph.py`` ``label_map_ffso``: the graph file's variant (no physical bit for expr_mouth and id).
# Kept for reference and tests; training uses LABEL_MAP_SOFF, as the official script does.
LABEL_MAP_FFSO: dict[str, tuple[int, ...]] = {
    **LABEL_MAP_SOFF,
    "expr_mouth": (1, 1, 0, 0, 0, 0, 1, 1, 0, 0),
    "id":         (1, 0, 1, 0, 1, 1, 1, 1, 1, 1),
}

CLASSES: tuple[str, ...] = tuple(LABEL_MAP_SOFF)


def label_vectors(classes: list[str] | tuple[str, ...]) -> torch.Tensor:
    """(N, 10) float tensor of ``label_map_soff`` vectors for a list of class names."""
    unknown = sorted(set(classes) - set(LABEL_MAP_SOFF))
    if unknown:
        raise ValueError(f"unknown manipulation class(es) {unknown}; expected some of {list(CLASSES)}")
    return torch.tensor([LABEL_MAP_SOFF[c] for c in classes], dtype=torch.float32)
