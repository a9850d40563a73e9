"""Shapes world: procedural captioned scenes with exact masks, and PIE-Bench-style edit records.

A deterministic, vectorised (numpy) generator of small RGB scenes of 1-3 flat-coloured objects on a background,
with a caption, the exact visible mask of every object and its attribute record (colour, shape, size, position
and, with ``textures=True``, texture per object). It is the offline default of
``projects/conddiff`` (text-to-image base model and the survey's sampling mechanisms) and
``projects/multiedits`` (multi-aspect editing). Tens of thousands of 32x32 scenes render per second on one core
(see ``projects/conddiff/benchmarks/bench_shapes_world.py``).

World (the vocabulary is closed; every word of every caption is in :data:`VOCABULARY`):

* shapes :data:`SHAPES` = circle, square, triangle (upward, apex at the top);
* colours :data:`COLOURS` = red, green, blue, yellow, white (RGB in :data:`COLOUR_RGB`);
* sizes :data:`SIZES` = small, big (half-extent 3.5 / 6.5 px at 32x32);
* positions :data:`POSITIONS` = left, right, top, bottom: four slots (centres (7,16), (25,16), (16,7), (16,25)
  in (x, y) at 32x32, plus an integer jitter of up to ``jitter`` px); each object of a scene has its own slot;
* backgrounds :data:`BACKGROUNDS` = black, gray, striped (horizontal 2-px stripes of two grays);
* textures :data:`TEXTURES` = plain, checked (a 2-px checkerboard of the colour and its dark shade, 0.45 x RGB),
  only with ``textures=True``; a plain object's caption has no texture word (so an untextured world is exactly
  the world without textures), a checked one says "checked" before the shape ("a big red checked circle ...").

Objects are painted in list order (a later object covers an earlier one where two big shapes touch), so
``masks[i, k]`` is the *visible* region of object ``k``: the union of the masks is exactly the set of non-
background pixels and every masked pixel carries the object's colour (or, for a checked object, its dark
shade). Rendering has no anti-aliasing (a pixel is inside a shape when its centre is), so masks and pixels
agree exactly at any ``image_size`` (geometry scales
with ``image_size / 32``).

Captions: one phrase per object, ``"a {size} {colour} {shape} {position phrase}"`` (position phrases "on the
left", "on the right", "at the top", "at the bottom"), joined by ``" and "``, then ``" on a {background}
background"``, e.g. ``"a big red circle on the left and a small blue square at the top on a gray background"``.

Main API (stable; ``projects/multiedits`` builds on it):

* ``generate(n, seed, image_size=32, min_objects=1, max_objects=3, jitter=1) -> ShapesBatch`` -- random scenes,
  rendered. :class:`ShapesBatch` holds ``images`` uint8 (N, H, W, 3), ``masks`` bool (N, 3, H, W) (slot k =
  object k, all-False for absent objects), ``captions`` list[str], the integer attribute codes ``shape``,
  ``colour``, ``size``, ``position`` (N, 3) int64 (-1 = absent), ``background`` (N,), ``n_objects`` (N,) and
  ``scene(i) -> Scene``.
* :class:`Scene` / :class:`ShapeObject` -- frozen dataclasses of names (``Scene.caption()``, ``to_dict()``,
  ``from_dict()``); ``render_scenes(scenes, image_size, jitter_xy=None) -> ShapesBatch`` renders given scenes
  (no jitter by default, so a source scene and its edit line up pixel for pixel).
* ``edit_records(n, seed, n_aspects=(1, 3), image_size=32, ...) -> list[dict]`` -- PIE-Bench / PIE-Bench++-
  style multi-aspect edit records (see :func:`edit_records`), with ``render_edit(record)`` giving the source and
  target images and masks, and ``rle_encode`` / ``rle_decode`` for PIE-Bench's mask encoding.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
COLOURS: tuple[str, ...] = ("red", "green", "blue", "yellow", "white")
SIZES: tuple[str, ...] = ("small", "big")
POSITIONS: tuple[str, ...] = ("left", "right", "top", "bottom")
BACKGROUNDS: tuple[str, ...] = ("black", "gray", "striped")
TEXTURES: tuple[str, ...] = ("plain", "checked")
DARK_SHADE = 0.45
"""A checked object's second colour is DARK_SHADE x its RGB (rounded down)."""
MAX_OBJECTS = 3

COLOUR_RGB = np.array([[230, 30, 30], [30, 190, 40], [40, 80, 235], [240, 220, 30], [245, 245, 245]], np.uint8)
"""RGB of each colour in :data:`COLOURS` order."""
HALF_EXTENT = (3.5, 6.5)
"""Half-extent (radius of a circle, half side of a square / triangle) in px at 32x32, per :data:`SIZES`."""
SLOT_CENTRES = np.array([[7.0, 16.0], [25.0, 16.0], [16.0, 7.0], [16.0, 25.0]])
"""(x, y) centre in px at 32x32 of each slot in :data:`POSITIONS` order."""
POSITION_PHRASES = {"left": "on the left", "right": "on the right", "top": "at the top", "bottom": "at the bottom"}
_STRIPE_RGB = np.array([[70, 70, 70], [150, 150, 150]], np.uint8)
_BACKGROUND_RGB = np.array([[0, 0, 0], [128, 128, 128]], np.uint8)  # black, gray (striped is drawn)

VOCABULARY: tuple[str, ...] = tuple(
    dict.fromkeys(
        ["a", "and", "on", "the", "at", "background", *SHAPES, *COLOURS, *SIZES, *POSITIONS, *BACKGROUNDS,
         *TEXTURES[1:]]
    )
)
"""Every word a caption or an edit prompt can contain."""

EDIT_TYPES: dict[str, str] = {
    "change_object": "1",
    "add_object": "2",
    "delete_object": "3",
    "change_size": "5",
    "change_colour": "6",
    "change_texture": "7",
    "change_background": "8",
}
"""Our edit types -> PIE-Bench ``editing_type_id`` (change size stands in for PIE-Bench's 'change pose', change
texture for 'change material'; texture edits need ``textures=True``)."""


@dataclass(frozen=True)
class ShapeObject:
    """One object of a scene, by attribute name."""

    shape: str
    colour: str
    size: str
    position: str
    texture: str = "plain"

    def words(self) -> list[str]:
        """The phrase's words: a, size, colour, [texture unless plain], shape, position phrase."""
        tex = [] if self.texture == "plain" else [self.texture]
        return ["a", self.size, self.colour, *tex, self.shape, *POSITION_PHRASES[self.position].split()]

    def phrase(self) -> str:
        return " ".join(self.words())


@dataclass(frozen=True)
class Scene:
    """A scene: a background and 1-3 objects in distinct slots, painted in list order."""

    background: str
    objects: tuple[ShapeObject, ...]

    def caption(self) -> str:
        return " and ".join(o.phrase() for o in self.objects) + f" on a {self.background} background"

    def to_dict(self) -> dict:
        return {"background": self.background, "objects": [dataclasses.asdict(o) for o in self.objects]}

    @staticmethod
    def from_dict(d: dict) -> Scene:
        return Scene(d["background"], tuple(ShapeObject(**o) for o in d["objects"]))


@dataclass
class ShapesBatch:
    """Rendered scenes. Codes index :data:`SHAPES` etc.; -1 marks an absent object slot."""

    images: np.ndarray  # uint8 (N, H, W, 3)
    masks: np.ndarray  # bool (N, MAX_OBJECTS, H, W), visible region of object k
    shape: np.ndarray  # int64 (N, MAX_OBJECTS)
    colour: np.ndarray
    size: np.ndarray
    position: np.ndarray
    background: np.ndarray  # int64 (N,)
    captions: list[str]
    texture: np.ndarray | None = None  # int64 (N, MAX_OBJECTS) index of TEXTURES (-1 absent); None = all plain

    def __post_init__(self):
        if self.texture is None:
            self.texture = np.where(self.shape >= 0, 0, -1)

    @property
    def n_objects(self) -> np.ndarray:
        return (self.shape >= 0).sum(axis=1)

    def __len__(self) -> int:
        return len(self.images)

    def scene(self, i: int) -> Scene:
        objs = tuple(
            ShapeObject(SHAPES[self.shape[i, k]], COLOURS[self.colour[i, k]], SIZES[self.size[i, k]],
                        POSITIONS[self.position[i, k]], TEXTURES[self.texture[i, k]])
            for k in range(MAX_OBJECTS) if self.shape[i, k] >= 0
        )
        return Scene(BACKGROUNDS[self.background[i]], objs)

    def scenes(self) -> list[Scene]:
        return [self.scene(i) for i in range(len(self))]


# --------------------------------------------------------------------------------------------- rendering
def _captions(shape, colour, size, position, background, texture) -> list[str]:
    """Captions from codes through a precomputed phrase table (fast: no per-object formatting)."""
    table = np.empty((len(SHAPES), len(COLOURS), len(SIZES), len(POSITIONS), len(TEXTURES)), dtype=object)
    for idx in np.ndindex(table.shape):
        table[idx] = ShapeObject(SHAPES[idx[0]], COLOURS[idx[1]], SIZES[idx[2]], POSITIONS[idx[3]],
                                 TEXTURES[idx[4]]).phrase()
    present = shape >= 0
    phrases = table[np.maximum(shape, 0), np.maximum(colour, 0), np.maximum(size, 0), np.maximum(position, 0),
                    np.maximum(texture, 0)]
    tails = [f" on a {b} background" for b in BACKGROUNDS]
    counts = present.sum(axis=1).tolist()  # objects are always the first slots
    return [" and ".join(p[:c]) + tails[b] for p, c, b in zip(phrases.tolist(), counts, background.tolist())]


def _pack(rgb: np.ndarray) -> np.ndarray:
    """uint8 (..., 3) RGB -> uint32 (...) whose little-endian bytes are R, G, B, 0."""
    rgb = rgb.astype(np.uint32)
    return rgb[..., 0] | (rgb[..., 1] << 8) | (rgb[..., 2] << 16)


def _object_regions(shape, size, position, jitter_xy, image_size: int) -> np.ndarray:
    """Region of each object (bool (M, H, W)) for flat arrays of M objects; a pixel is in when its centre is."""
    scale = image_size / 32.0
    centre = ((SLOT_CENTRES[position] + jitter_xy) * scale).astype(np.float32)  # (M, 2)
    half = (np.asarray(HALF_EXTENT, np.float32)[size] * scale)[:, None, None]  # (M, 1, 1)
    coords = np.arange(image_size, dtype=np.float32) + 0.5  # pixel centres
    dx = coords[None, None, :] - centre[:, 0, None, None]  # (M, 1, W)
    dy = coords[None, :, None] - centre[:, 1, None, None]  # (M, H, 1)
    sh = shape[:, None, None]
    return np.where(
        sh == 0, dx**2 + dy**2 <= half**2,  # circle
        np.where(sh == 1, (np.abs(dx) <= half) & (np.abs(dy) <= half),  # square
                 (np.abs(dy) <= half) & (np.abs(dx) <= (dy + half) / 2)),  # triangle, apex (cx, cy - h), base below
    )


def _render(shape, colour, size, position, background, jitter_xy, image_size: int,
            texture=None) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised rasteriser: images (N, H, W, 3) uint8 and visible masks (N, K, H, W) bool.

    Each distinct (shape, size, position, jitter) object is rasterised once and gathered (scenes repeat them
    a lot); objects are then painted in list order over the background, in cache-sized chunks of scenes.
    """
    n, k = shape.shape
    present = shape >= 0
    rows = np.concatenate([np.stack([shape, size, position], -1).reshape(-1, 3).astype(np.float64),
                           jitter_xy.reshape(-1, 2)], axis=1)  # (N*K, 5)
    rows[~present.reshape(-1)] = 0.0
    if np.array_equal(rows, np.round(rows)) and np.abs(rows).max() < 64:  # integer jitter: a 1-D key is fast
        key = (rows + 64).astype(np.int64) @ (128 ** np.arange(5, dtype=np.int64))
        _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
        unique = rows[first]
    else:
        unique, inverse = np.unique(rows, axis=0, return_inverse=True)
    table = _object_regions(unique[:, 0].astype(int), unique[:, 1].astype(int), unique[:, 2].astype(int),
                            unique[:, 3:5], image_size)
    table = np.concatenate([table, np.zeros((1, image_size, image_size), bool)])  # last entry: absent object
    inverse = np.where(present.reshape(-1), inverse.reshape(-1), len(unique)).reshape(n, k)
    # colours packed as little-endian uint32 (R | G << 8 | B << 16) so that painting is one gather per pixel
    stripe_rows = (np.arange(image_size) // max(1, round(2 * image_size / 32.0))) % 2
    bg_rows = np.stack([np.broadcast_to(_BACKGROUND_RGB[0], (image_size, 3)),
                        np.broadcast_to(_BACKGROUND_RGB[1], (image_size, 3)), _STRIPE_RGB[stripe_rows]])
    bg_table = np.broadcast_to(_pack(bg_rows)[:, :, None], (len(BACKGROUNDS), image_size, image_size))
    palette = np.concatenate([np.zeros((n, 1), np.uint32), _pack(COLOUR_RGB)[np.maximum(colour, 0)]], axis=1)
    checked = texture is not None and bool((texture > 0).any())
    if checked:  # the second colour of each object: its dark shade when checked, else its own colour
        dark = _pack((COLOUR_RGB.astype(np.float64) * DARK_SHADE).astype(np.uint8))[np.maximum(colour, 0)]
        palette_dark = np.concatenate([np.zeros((n, 1), np.uint32),
                                       np.where(texture > 0, dark, palette[:, 1:])], axis=1)
        cell = max(1, round(2 * image_size / 32.0))
        yy, xx = np.mgrid[0:image_size, 0:image_size] // cell
        checker = ((yy + xx) % 2 == 1)[None]
    weight = np.arange(1, k + 1, dtype=np.uint8)[None, :, None, None]
    images = np.empty((n, image_size, image_size, 3), np.uint8)
    masks = np.empty((n, k, image_size, image_size), bool)
    chunk = max(1, 65536 // (image_size * image_size))
    for lo in range(0, n, chunk):
        sl = slice(lo, lo + chunk)
        inside = table[inverse[sl]]  # (C, K, H, W)
        # label: 0 = background, j + 1 = object j on top (later objects cover earlier ones: max over j)
        label = (inside.view(np.uint8) * weight).max(axis=1)
        masks[sl] = label[:, None] == weight
        offset = np.arange(len(label), dtype=np.intp)[:, None, None] * (k + 1)
        rgb = np.take(palette[sl].reshape(-1), offset + label)
        if checked:
            rgb = np.where(checker, np.take(palette_dark[sl].reshape(-1), offset + label), rgb)
        packed = np.where(label > 0, rgb, bg_table[background[sl]])
        images[sl] = packed.view(np.uint8).reshape(*packed.shape, 4)[..., :3]
    return images, masks


def _batch(shape, colour, size, position, background, jitter_xy, image_size, texture=None) -> ShapesBatch:
    if texture is None:
        texture = np.where(shape >= 0, 0, -1)
    images, masks = _render(shape, colour, size, position, background, jitter_xy, image_size, texture)
    return ShapesBatch(images, masks, shape, colour, size, position, background,
                       _captions(shape, colour, size, position, background, texture), texture)


def generate(n: int, seed: int, image_size: int = 32, min_objects: int = 1, max_objects: int = 3,
             jitter: int = 1, textures: bool = False) -> ShapesBatch:
    """``n`` random scenes, deterministic in ``seed`` (same seed and arguments -> identical batch).

    Args:
        n: number of scenes.
        seed: seed of a fresh ``numpy.random.default_rng``.
        image_size: side in px (geometry is defined at 32 and scaled).
        min_objects, max_objects: the object count is uniform in [min_objects, max_objects] (1 <= . <= 3).
        jitter: integer jitter (px at 32x32) of each object's centre, uniform in [-jitter, jitter].
        textures: draw each object's texture uniformly from :data:`TEXTURES` (default: all plain, and the
            random stream, hence every batch, is the same as without the texture attribute).
    """
    if not 1 <= min_objects <= max_objects <= MAX_OBJECTS:
        raise ValueError(f"need 1 <= min_objects <= max_objects <= {MAX_OBJECTS}, got {min_objects}, {max_objects}")
    if n < 1 or image_size < 8:
        raise ValueError(f"need n >= 1 and image_size >= 8, got n={n}, image_size={image_size}")
    rng = np.random.default_rng(seed)
    count = rng.integers(min_objects, max_objects + 1, size=n)
    slot_perm = np.argsort(rng.random((n, len(POSITIONS))), axis=1)[:, :MAX_OBJECTS]  # distinct slots
    present = np.arange(MAX_OBJECTS)[None, :] < count[:, None]
    shape = np.where(present, rng.integers(0, len(SHAPES), (n, MAX_OBJECTS)), -1)
    colour = np.where(present, rng.integers(0, len(COLOURS), (n, MAX_OBJECTS)), -1)
    size = np.where(present, rng.integers(0, len(SIZES), (n, MAX_OBJECTS)), -1)
    position = np.where(present, slot_perm, -1)
    background = rng.integers(0, len(BACKGROUNDS), n)
    jitter_xy = rng.integers(-jitter, jitter + 1, (n, MAX_OBJECTS, 2)).astype(np.float64)
    texture = np.where(present, rng.integers(0, len(TEXTURES), (n, MAX_OBJECTS)) if textures else 0, -1)
    return _batch(shape, colour, size, position, background, jitter_xy, image_size, texture)


def _codes(scenes: list[Scene]) -> tuple[np.ndarray, ...]:
    n = len(scenes)
    codes = np.full((5, n, MAX_OBJECTS), -1, dtype=np.int64)
    background = np.empty(n, dtype=np.int64)
    for i, s in enumerate(scenes):
        if not 1 <= len(s.objects) <= MAX_OBJECTS:
            raise ValueError(f"scene {i} has {len(s.objects)} objects; expected 1..{MAX_OBJECTS}")
        if len({o.position for o in s.objects}) != len(s.objects):
            raise ValueError(f"scene {i} puts two objects in the same position: {s}")
        background[i] = BACKGROUNDS.index(s.background)
        for k, o in enumerate(s.objects):
            codes[:, i, k] = (SHAPES.index(o.shape), COLOURS.index(o.colour), SIZES.index(o.size),
                              POSITIONS.index(o.position), TEXTURES.index(o.texture))
    return (*codes, background)


def render_scenes(scenes: list[Scene], image_size: int = 32, jitter_xy: np.ndarray | None = None) -> ShapesBatch:
    """Render given scenes (``jitter_xy`` (N, 3, 2) px offsets at 32x32; default none)."""
    shape, colour, size, position, texture, background = _codes(list(scenes))
    if jitter_xy is None:
        jitter_xy = np.zeros((len(scenes), MAX_OBJECTS, 2))
    return _batch(shape, colour, size, position, background, np.asarray(jitter_xy, np.float64), image_size, texture)


# ------------------------------------------------------------------------------------ PIE-Bench masks
def rle_encode(mask: np.ndarray) -> list[int]:
    """PIE-Bench RLE: pairs (start index, run length) of the 1-runs of the row-major flattened mask."""
    flat = np.asarray(mask, dtype=bool).reshape(-1).astype(np.int8)
    edges = np.diff(np.concatenate([[0], flat, [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return np.stack([starts, ends - starts], axis=1).reshape(-1).tolist()


def rle_decode(encoded: list[int] | str, shape: tuple[int, int], border: bool = True) -> np.ndarray:
    """Decode PIE-Bench's RLE (a list, or PIE-Bench++'s whitespace-separated string) to a bool (H, W) mask.

    As PIE-Bench's own decoder, runs are clipped at the end of the image and, with ``border`` (its default
    behaviour, "to avoid annotation errors"), the 1-pixel image border is set to 1.
    """
    if isinstance(encoded, str):
        encoded = [int(v) for v in encoded.replace(",", " ").replace("[", " ").replace("]", " ").split()]
    values = np.asarray(encoded, dtype=np.int64)
    if values.size % 2:
        raise ValueError(f"an RLE mask holds (start, length) pairs; got an odd count {values.size}")
    length = shape[0] * shape[1]
    starts, runs = values[0::2], values[1::2]
    delta = np.zeros(length + 1, dtype=np.int64)
    ends = np.minimum(starts + runs, length)
    np.add.at(delta, np.minimum(starts, length), 1)
    np.add.at(delta, ends, -1)
    mask = (np.cumsum(delta)[:length] > 0).reshape(shape)
    if border:
        mask[0, :] = mask[-1, :] = mask[:, 0] = mask[:, -1] = True
    return mask


# ----------------------------------------------------------------------------------------- edit records
def _bracket(words: list[str], marked: list[bool]) -> str:
    """Join words, wrapping each maximal run of marked words in [ ] (PIE-Bench's editing_prompt markup)."""
    out, i = [], 0
    while i < len(words):
        if marked[i]:
            j = i
            while j < len(words) and marked[j]:
                j += 1
            out.append("[" + " ".join(words[i:j]) + "]")
            i = j
        else:
            out.append(words[i])
            i += 1
    return " ".join(out)


def _marked_caption(scene: Scene, marks: set) -> str:
    """Caption with changed words in [ ]; marks hold (object index, field), (object index, 'all'), 'background'."""
    words, marked = [], []
    for k, o in enumerate(scene.objects):
        if k:
            words.append("and"), marked.append((k, "all") in marks)
        phrase = o.words()
        fields = [None, "size", "colour", *(["texture"] if o.texture != "plain" else []), "shape"]
        fields += [None] * (len(phrase) - len(fields))
        for w, f in zip(phrase, fields):
            words.append(w)
            marked.append((k, "all") in marks or (f is not None and (k, f) in marks))
    words += ["on", "a", scene.background, "background"]
    marked += [False, False, "background" in marks, False]
    return _bracket(words, marked)


def _propose(rng, scene: Scene, kind: str, touched: set[int], textured: bool = False) -> tuple[Scene, dict] | None:
    """One aspect edit of ``kind`` on ``scene`` touching an object not in ``touched``; None if impossible."""
    objs = list(scene.objects)
    free = [k for k in range(len(objs)) if k not in touched]
    if kind == "change_background":
        if "bg" in touched:
            return None
        new = str(rng.choice([b for b in BACKGROUNDS if b != scene.background]))
        return Scene(new, scene.objects), {"type": kind, "object": None, "attribute": "background",
                                           "source": scene.background, "target": new}
    if kind == "add_object":
        used = {o.position for o in objs}
        slots = [p for p in POSITIONS if p not in used]
        if len(objs) >= MAX_OBJECTS or not slots:
            return None
        o = ShapeObject(str(rng.choice(SHAPES)), str(rng.choice(COLOURS)), str(rng.choice(SIZES)),
                        str(rng.choice(slots)), str(rng.choice(TEXTURES)) if textured else "plain")
        return Scene(scene.background, (*objs, o)), {"type": kind, "object": len(objs), "attribute": "object",
                                                     "source": None, "target": o.phrase()}
    if not free:
        return None
    k = int(rng.choice(free))
    if kind == "delete_object":
        if len(objs) < 2 or touched:  # deleting re-indexes objects: only as the first aspect, never the last one
            return None
        gone = objs.pop(k)
        return Scene(scene.background, tuple(objs)), {"type": kind, "object": k, "attribute": "object",
                                                      "source": gone.phrase(), "target": None}
    field, choices = {"change_object": ("shape", SHAPES), "change_colour": ("colour", COLOURS),
                      "change_size": ("size", SIZES), "change_texture": ("texture", TEXTURES)}[kind]
    old = getattr(objs[k], field)
    new = str(rng.choice([c for c in choices if c != old]))
    objs[k] = dataclasses.replace(objs[k], **{field: new})
    return Scene(scene.background, tuple(objs)), {"type": kind, "object": k, "attribute": field, "source": old,
                                                  "target": new}


def _aspect_mask(src: ShapesBatch, tgt: ShapesBatch, aspect: dict, src_index: int | None) -> np.ndarray:
    """Region an aspect edits (PIE-Bench: 1 = region to edit): object union, or the background."""
    if aspect["type"] == "change_background":
        return ~src.masks[0].any(0) & ~tgt.masks[0].any(0)
    if aspect["type"] == "add_object":
        return tgt.masks[0, aspect["object"]]
    if aspect["type"] == "delete_object":
        return src.masks[0, src_index]
    return src.masks[0, src_index] | tgt.masks[0, aspect["object"]]


def render_edit(record: dict, image_size: int | None = None) -> tuple[ShapesBatch, ShapesBatch]:
    """Source and target renders (batches of one) of an edit record, aligned pixel for pixel."""
    size = image_size or record["image_size"]
    jit = np.asarray(record["jitter_xy"], np.float64)
    src = Scene.from_dict(record["source_scene"])
    tgt = Scene.from_dict(record["target_scene"])
    # objects keep their jitter through the edit: target object k came from source object source_index[k]
    tj = np.zeros((1, MAX_OBJECTS, 2))
    for k, j in enumerate(record["target_source_index"]):
        if j is not None:
            tj[0, k] = jit[j]
    return render_scenes([src], size, jit[None]), render_scenes([tgt], size, tj)


def edit_records(n: int, seed: int, n_aspects: tuple[int, int] = (1, 3), image_size: int = 32,
                 min_objects: int = 1, max_objects: int = 3, edit_types: tuple[str, ...] | None = None,
                 jitter: int = 1, textures: bool = False) -> list[dict]:
    """``n`` PIE-Bench-style multi-aspect edit records on random source scenes (deterministic in ``seed``).

    Each record is a JSON-ready dict with PIE-Bench's keys (``original_prompt``, ``editing_prompt`` with the
    changed words in ``[ ]``, ``editing_type_id`` (a string; the first aspect's), ``blended_word``
    ("source_word target_word" of the first aspect), ``mask`` (PIE-Bench RLE over the flattened
    ``image_size``x``image_size`` image, 1 = region to edit, the union over aspects)), PIE-Bench++'s
    (``source_prompt``, ``target_prompt`` (plain), ``edit_action`` {aspect text: {"position": word index in the
    source, "edit_type": id, "action": "+" | "-" | source words}}, ``aspect_mapping`` and ``blended_words``;
    ``edit_action`` rebuilds ``target_prompt`` from ``source_prompt`` under the official semantics: in order, a
    swap replaces the first occurrence of its source words by the aspect text (both unique in the caption), "+"
    inserts the text at its source position shifted by the earlier edits, "-" removes the text),
    and, so that an editor's output can be judged exactly, ``aspects`` (per aspect: type, target object index,
    attribute, source and target values, its own RLE ``mask``), ``source_scene`` / ``target_scene``
    (:meth:`Scene.to_dict`), ``target_source_index`` (source index of each target object, None if added),
    ``jitter_xy`` and ``image_size``. Render with :func:`render_edit`.

    Aspects touch distinct objects (or the background); a delete is only ever the first aspect (it re-indexes the
    objects); the number of aspects is uniform in ``n_aspects`` (fewer when the scene allows no more).
    ``edit_types`` defaults to every type of :data:`EDIT_TYPES` (``change_texture`` only with ``textures``).
    """
    if edit_types is None:
        edit_types = tuple(t for t in EDIT_TYPES if textures or t != "change_texture")
    if "change_texture" in edit_types and not textures:
        raise ValueError("change_texture edits need textures=True")
    rng = np.random.default_rng(seed)
    base = generate(n, int(rng.integers(2**31)), image_size, min_objects, max_objects, jitter, textures)
    jitter_all = rng.integers(-jitter, jitter + 1, (n, MAX_OBJECTS, 2))
    records = []
    for i in range(n):
        src_scene = base.scene(i)
        jit = jitter_all[i].astype(np.float64)
        want = int(rng.integers(n_aspects[0], n_aspects[1] + 1))
        scene, aspects, touched, index_map = src_scene, [], set(), list(range(len(src_scene.objects)))
        for kind in rng.permutation(list(edit_types)):
            if len(aspects) == want:
                break
            proposal = _propose(rng, scene, str(kind), touched, textures)
            if proposal is None:
                continue
            scene, aspect = proposal
            if aspect["type"] == "delete_object":
                aspect["source_object"] = index_map.pop(aspect["object"])
                touched = set()
            elif aspect["type"] == "add_object":
                index_map.append(None)
                touched.add(aspect["object"])
            elif aspect["type"] == "change_background":
                touched.add("bg")
            else:
                touched.add(aspect["object"])
            aspects.append(aspect)
        record = _finish_record(i, src_scene, scene, aspects, index_map, jit, image_size)
        records.append(record)
    return records


def _finish_record(i, src_scene, tgt_scene, aspects, index_map, jit, image_size) -> dict:
    src_b = render_scenes([src_scene], image_size, jit[None])
    tj = np.zeros((1, MAX_OBJECTS, 2))
    for k, j in enumerate(index_map):
        if j is not None:
            tj[0, k] = jit[j]
    tgt_b = render_scenes([tgt_scene], image_size, tj)
    marks, union = set(), np.zeros((image_size, image_size), bool)
    src_words = src_scene.caption().split()
    edit_action, aspect_mapping, blended = {}, {}, []
    for a in aspects:
        k = a["object"]
        src_index = a.get("source_object", index_map[k] if k is not None and k < len(index_map) else None)
        a_mask = _aspect_mask(src_b, tgt_b, a, src_index)
        a["mask"] = rle_encode(a_mask)
        union |= a_mask
        t = a["type"]
        if t == "change_background":
            marks.add("background")
            text, action = f"{a['target']} background", f"{a['source']} background"
            noun_s, noun_t, pos = "background", "background", len(src_words) - 2
        elif t == "add_object":
            marks.add((k, "all"))
            text, action, pos = f"and {a['target']}", "+", len(src_words) - 4  # before "on a ... background"
            noun_s = noun_t = tgt_scene.objects[k].shape
        elif t == "delete_object":
            # the phrase and one joining "and" go (a delete always leaves at least one object)
            pos = _object_word_index(src_scene, src_index)
            text, action = (f"{a['source']} and", "-") if src_index == 0 else (f"and {a['source']}", "-")
            pos = pos if src_index == 0 else pos - 1
            noun_s = noun_t = src_scene.objects[src_index].shape
        else:
            marks.add((k, a["attribute"]))
            o_t, o_s = tgt_scene.objects[k], src_scene.objects[src_index]
            # from the changed word to the position phrase: contiguous, and unique in the caption (one object a slot);
            # a texture edit starts after the colour (where "checked" is or goes)
            first = {"size": 1, "colour": 2, "texture": 3, "shape": 3}[a["attribute"]]
            if a["attribute"] == "shape" and o_s.texture != "plain":
                first = 4
            text = " ".join(o_t.words()[first:])
            action = " ".join(o_s.words()[first:])
            pos = _object_word_index(src_scene, src_index) + first
            noun_s, noun_t = o_s.shape, o_t.shape
        edit_action[text] = {"position": pos, "edit_type": EDIT_TYPES[t], "action": action}
        aspect_mapping[text] = [a["type"]]
        blended.append(f"{noun_s} {noun_t}")
    return {
        "id": f"{i:012d}",
        "image_size": image_size,
        "original_prompt": src_scene.caption(),
        "editing_prompt": _marked_caption(tgt_scene, marks),
        "source_prompt": src_scene.caption(),
        "target_prompt": tgt_scene.caption(),
        "editing_type_id": EDIT_TYPES[aspects[0]["type"]] if aspects else "0",
        "blended_word": blended[0] if blended else "",
        "blended_words": blended,
        "mask": rle_encode(union),
        "edit_action": edit_action,
        "aspect_mapping": aspect_mapping,
        "aspects": aspects,
        "source_scene": src_scene.to_dict(),
        "target_scene": tgt_scene.to_dict(),
        "target_source_index": index_map,
        "jitter_xy": jit.tolist(),
    }


def _object_word_index(scene: Scene, k: int) -> int:
    """Index of object k's leading 'a' in the caption's words (each earlier phrase plus its joining 'and')."""
    return sum(len(o.words()) + 1 for o in scene.objects[:k])


def strip_brackets(prompt: str) -> str:
    """PIE-Bench's editing_prompt with the ``[ ]`` markup removed."""
    return prompt.replace("[", "").replace("]", "")


__all__ = [
    "BACKGROUNDS", "COLOURS", "COLOUR_RGB", "DARK_SHADE", "EDIT_TYPES", "TEXTURES", "HALF_EXTENT", "MAX_OBJECTS",
    "POSITIONS",
    "POSITION_PHRASES", "SHAPES", "SIZES", "SLOT_CENTRES", "VOCABULARY", "Scene", "ShapeObject", "ShapesBatch",
    "edit_records", "generate", "render_edit", "render_scenes", "rle_decode", "rle_encode", "strip_brackets",
]
