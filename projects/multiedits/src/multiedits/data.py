"""Multi-aspect edit records: the offline shapes-world benchmark, and the PIE-Bench / PIE-Bench++ loaders.

Every record is a dict in PIE-Bench++'s form (``source_prompt``, ``target_prompt``, ``editing_prompt`` with the
changed words in ``[ ]``, ``edit_action`` {aspect text: {"position", "edit_type", "action"}}, ``aspect_mapping``,
``blended_words``, ``mask`` (PIE-Bench RLE, 1 = region to edit)), plus, for the offline benchmark, what an exact
judge needs (``aspects`` with each one's attribute, source / target value and own RLE mask, ``source_scene``,
``target_scene``). :func:`load_images` gives the source image (uint8 (H, W, 3)) and the edit mask of a record.

Offline benchmark (:func:`attribute_edit_records`): single-object shapes-world scenes (what the committed base
model of ``projects/conddiff`` was trained on) with 1-4 aspects edited at once among colour, shape, size and
background, each a one-word swap ("red" -> "blue"). Built on ``shared.data.shapes_world``'s public API; its
``edit_records`` edits distinct objects of multi-object scenes, which that base model cannot draw.

Real data (``--data-root``), official layouts:

* PIE-Bench (Ju et al. 2024, github.com/cure-lab/PnPInversion)::

      <root>/mapping_file.json              # {"000000000000": {"image_path", "original_prompt",
      <root>/annotation_images/<image_path> #   "editing_prompt", "editing_type_id", "blended_word", "mask"}}

* PIE-Bench++ (Hugging Face ``UB-CVML-Group/PIE_Bench_pp``, 10 configs, split V1)::

      <root>/<config>/*.parquet             # columns image, id, source_prompt, target_prompt, edit_action,
                                            # aspect_mapping, blended_words, mask (strings)
      (or <root>/*.json / *.jsonl with the same keys and an "image_path" relative to <root>)
"""

from __future__ import annotations

import ast
import io
import json
from pathlib import Path

import numpy as np

from shared.data import require_root
from shared.data import shapes_world as sw

ATTRIBUTE_EDIT_TYPES = {"shape": sw.EDIT_TYPES["change_object"], "colour": sw.EDIT_TYPES["change_colour"],
                        "size": sw.EDIT_TYPES["change_size"], "background": sw.EDIT_TYPES["change_background"]}
ATTRIBUTE_VALUES = {"shape": sw.SHAPES, "colour": sw.COLOURS, "size": sw.SIZES, "background": sw.BACKGROUNDS}
EDITABLE = ("colour", "shape", "size", "background")


def _word_index(caption: str, attribute: str) -> int:
    """Word index of an attribute in a single-object caption "a {size} {colour} {shape} ... on a {bg} background"."""
    n = len(caption.split())
    return {"size": 1, "colour": 2, "shape": 3, "background": n - 2}[attribute]


def attribute_edit_records(n: int, seed: int, n_aspects: int | tuple[int, int] = (1, 4), image_size: int = 32,
                           attributes: tuple[str, ...] = EDITABLE, balance_background: bool = True) -> list[dict]:
    """``n`` multi-aspect edit records on single-object scenes (deterministic in ``seed``).

    Each record edits ``k`` distinct attributes of the scene at once (k uniform in ``n_aspects``, or exactly
    ``n_aspects``), each to a different value; no jitter, so source and target renders align pixel for pixel.
    With ``balance_background`` exactly every other record (odd ones) edits the background when ``k`` allows a
    choice: a background edit leaves no unedited region for PIE-Bench's background metrics.
    """
    lo, hi = (n_aspects, n_aspects) if isinstance(n_aspects, int) else n_aspects
    if not 1 <= lo <= hi <= len(attributes):
        raise ValueError(f"n_aspects must lie in 1..{len(attributes)}, got {n_aspects}")
    rng = np.random.default_rng(seed)
    base = sw.generate(n, int(rng.integers(2**31)), image_size, 1, 1, jitter=0)
    records = []
    for i in range(n):
        src = base.scene(i)
        obj, bg = src.objects[0], src.background
        k = int(rng.integers(lo, hi + 1))
        pool = list(attributes)
        if balance_background and "background" in pool and k < len(pool):
            # every other record edits the background, so that half of them keep an unedited region to measure
            forced, pool = (["background"], [a for a in pool if a != "background"]) if i % 2 else ([], [
                a for a in pool if a != "background"])
            chosen = forced + [str(a) for a in rng.choice(pool, size=k - len(forced), replace=False)]
        else:
            chosen = [str(a) for a in rng.choice(pool, size=k, replace=False)]
        chosen.sort(key=EDITABLE.index)  # caption order, so annotation order = reading order
        values = {"shape": obj.shape, "colour": obj.colour, "size": obj.size, "background": bg}
        new = dict(values)
        for a in chosen:
            new[a] = str(rng.choice([v for v in ATTRIBUTE_VALUES[a] if v != values[a]]))
        tgt = sw.Scene(new["background"], (sw.ShapeObject(new["shape"], new["colour"], new["size"], obj.position),))
        records.append(_record(i, src, tgt, chosen, values, new, image_size))
    return records


def _record(i: int, src: sw.Scene, tgt: sw.Scene, chosen: list[str], old: dict, new: dict, image_size: int) -> dict:
    src_b, tgt_b = sw.render_scenes([src], image_size), sw.render_scenes([tgt], image_size)
    obj_union = src_b.masks[0, 0] | tgt_b.masks[0, 0]
    background = ~src_b.masks[0, 0] & ~tgt_b.masks[0, 0]
    caption_s, caption_t = src.caption(), tgt.caption()
    edit_action, aspect_mapping, blended, aspects = {}, {}, [], []
    union = np.zeros((image_size, image_size), bool)
    for a in chosen:
        mask = background if a == "background" else obj_union
        union |= mask
        edit_action[new[a]] = {"position": _word_index(caption_s, a), "edit_type": ATTRIBUTE_EDIT_TYPES[a],
                               "action": old[a]}
        aspect_mapping[new[a]] = [a]
        noun = "background" if a == "background" else None
        blended.append(f"{noun or old['shape']} {noun or new['shape']}")
        aspects.append({"type": f"change_{a}", "attribute": a, "object": None if a == "background" else 0,
                        "source": old[a], "target": new[a], "mask": sw.rle_encode(mask)})
    marked = [w if k not in [_word_index(caption_t, a) for a in chosen] else f"[{w}]"
              for k, w in enumerate(caption_t.split())]
    return {
        "id": f"{i:012d}", "image_size": image_size,
        "original_prompt": caption_s, "editing_prompt": " ".join(marked),
        "source_prompt": caption_s, "target_prompt": caption_t,
        "editing_type_id": ATTRIBUTE_EDIT_TYPES[chosen[0]], "blended_word": blended[0], "blended_words": blended,
        "mask": sw.rle_encode(union), "edit_action": edit_action, "aspect_mapping": aspect_mapping,
        "aspects": aspects, "source_scene": src.to_dict(), "target_scene": tgt.to_dict(),
        "target_source_index": [0], "jitter_xy": np.zeros((sw.MAX_OBJECTS, 2)).tolist(),
    }


def benchmark_records(n_per_count: int, seed: int, counts: tuple[int, ...] = (1, 2, 3, 4),
                      image_size: int = 32) -> list[dict]:
    """The offline benchmark: ``n_per_count`` records for each number of edited aspects."""
    out = []
    for k in counts:
        for r in attribute_edit_records(n_per_count, seed * 1000 + k, k, image_size):
            r["id"] = f"{k}{r['id'][1:]}"
            out.append(r)
    return out


def scene_records(n_per_count: int, seed: int, counts: tuple[int, ...] = (1, 2, 3), image_size: int = 32,
                  max_tries: int = 20) -> list[dict]:
    """The multi-object benchmark: ``n_per_count`` PIE-Bench++-style records per number of edited aspects, from
    ``shared.data.shapes_world.edit_records`` on 1-3-object scenes (no jitter): the aspects sit on different
    objects and the background (change colour / size / shape, add, delete, change background), each with its
    own mask. Records are drawn until each count has ``n_per_count`` (a scene may allow fewer aspects)."""
    out = []
    for k in counts:
        got, tries = [], 0
        while len(got) < n_per_count and tries < max_tries:
            batch = sw.edit_records(4 * n_per_count, seed * 1000 + 10 * k + tries, n_aspects=(k, k),
                                    image_size=image_size, min_objects=max(1, k - 1), max_objects=3, jitter=0)
            got += [r for r in batch if len(r["aspects"]) == k][: n_per_count - len(got)]
            tries += 1
        for j, r in enumerate(got):
            r["id"] = f"{k}{j:011d}"
            out.append(r)
    return out


def render_record(record: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source image, target image (uint8 (H, W, 3)) and edit mask (bool (H, W)) of a shapes-world record."""
    src, tgt = sw.render_edit(record)
    mask = sw.rle_decode(record["mask"], (record["image_size"],) * 2, border=False)
    return src.images[0], tgt.images[0], mask


# ------------------------------------------------------------------------------------------- real data
PIE_BENCH_LAYOUT = """<root>/
  mapping_file.json                 # {id: {image_path, original_prompt, editing_prompt, editing_type_id,
                                    #       blended_word, mask}}  (github.com/cure-lab/PnPInversion)
  annotation_images/
    0_random_140/000000000000.jpg ...
"""
PIE_BENCH_PP_LAYOUT = """<root>/
  0_random_140/*.parquet ... 9_change_style_80/*.parquet   # Hugging Face UB-CVML-Group/PIE_Bench_pp (split V1):
                                                           # image, id, source_prompt, target_prompt,
                                                           # edit_action, aspect_mapping, blended_words, mask
  (or *.json / *.jsonl records with the same keys and image_path relative to <root>)
"""


def _maybe_json(value):
    """PIE-Bench++ stores dicts / lists as strings (JSON or Python literals)."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if not text or text[0] not in "[{":
        return value
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return ast.literal_eval(text)


def load_pie_bench(root: str | Path) -> list[dict]:
    """PIE-Bench records (``mapping_file.json``); each gains ``id``, ``image_file``, ``source_prompt`` and
    ``target_prompt`` (the editing prompt with its ``[ ]`` stripped) and ``blended_words`` (split on space)."""
    path = require_root(root, ["mapping_file.json", "annotation_images"], dataset="PIE-Bench",
                        layout=PIE_BENCH_LAYOUT)
    mapping = json.loads((path / "mapping_file.json").read_text())
    out = []
    for key, item in mapping.items():
        for field_ in ("image_path", "original_prompt", "editing_prompt", "mask"):
            if field_ not in item:
                raise ValueError(f"PIE-Bench record {key} in {path / 'mapping_file.json'} lacks '{field_}'")
        rec = dict(item)
        rec.update(id=key, image_file=str(path / "annotation_images" / item["image_path"]),
                   source_prompt=sw.strip_brackets(item["original_prompt"]),
                   target_prompt=sw.strip_brackets(item["editing_prompt"]),
                   blended_words=str(item.get("blended_word", "")).split())
        out.append(rec)
    return out


def load_pie_bench_pp(root: str | Path) -> list[dict]:
    """PIE-Bench++ records from the Hugging Face parquet files (or JSON / JSONL), string fields parsed."""
    path = require_root(root, [], dataset="PIE-Bench++", layout=PIE_BENCH_PP_LAYOUT)
    parquet = sorted(path.rglob("*.parquet"))
    rows: list[dict] = []
    if parquet:
        import pyarrow.parquet as pq

        for f in parquet:
            for row in pq.read_table(f).to_pylist():
                row["config"] = f.parent.name
                rows.append(row)
    else:
        for f in sorted(path.glob("*.json")) + sorted(path.glob("*.jsonl")):
            text = f.read_text()
            items = [json.loads(line) for line in text.splitlines() if line.strip()] if f.suffix == ".jsonl" \
                else json.loads(text)
            items = list(items.values()) if isinstance(items, dict) else items
            for it in items:
                if "image_path" in it:
                    it["image_file"] = str(path / it["image_path"])
                rows.append(it)
    if not rows:
        raise FileNotFoundError(f"PIE-Bench++: no *.parquet, *.json or *.jsonl records under '{path}'.\n"
                                f"Expected layout of PIE-Bench++:\n{PIE_BENCH_PP_LAYOUT}")
    for r in rows:
        for key in ("edit_action", "aspect_mapping", "blended_words"):
            if key not in r:
                raise ValueError(f"PIE-Bench++ record {r.get('id')} lacks '{key}'; expected the keys of "
                                 "UB-CVML-Group/PIE_Bench_pp")
            r[key] = _maybe_json(r[key])
        r["target_prompt"] = sw.strip_brackets(r["target_prompt"])
    return rows


def load_images(record: dict, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Source image (uint8 (size, size, 3)) and edit mask (bool, PIE-Bench RLE on 512x512 with the border set)
    of a real record, resized to ``size`` (nearest for the mask)."""
    import cv2
    from PIL import Image

    if isinstance(record.get("image"), dict) and record["image"].get("bytes") is not None:
        img = Image.open(io.BytesIO(record["image"]["bytes"]))
    elif "image_file" in record:
        if not Path(record["image_file"]).is_file():
            raise FileNotFoundError(f"image '{record['image_file']}' of record {record.get('id')} does not exist")
        img = Image.open(record["image_file"])
    else:
        raise ValueError(f"record {record.get('id')} has neither 'image' bytes nor 'image_file'")
    img = np.asarray(img.convert("RGB"))
    mask = sw.rle_decode(record["mask"], img.shape[:2]) if record.get("mask") is not None else np.zeros(
        img.shape[:2], bool)
    img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    mask = cv2.resize(mask.astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST).astype(bool)
    return img, mask
