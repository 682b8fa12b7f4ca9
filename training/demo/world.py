"""A procedural, captioned image world for training and testing CLIP-style models.

No pretrained weights exist on the machines this project is built on, so the
demo model is pretrained here, on scenes whose truth is known exactly: several
objects of different kinds, colours, sizes, textures and positions on varied
backgrounds, rendered at any size or aspect ratio, with captions in varied
wording. Because every caption carries its *meaning* (a small logical form), we
can say exactly which images a caption or a query matches. Training uses that to
avoid false negatives; benchmarks use it to score retrieval.

Everything is deterministic from a seed, and this module needs only numpy and
Pillow (no torch): the engine's benchmarks use it at run time.

Vocabulary room for later fine-tuning: the reserve kinds (``ring``, ``moon``)
and the object textures (``striped``, ``dotted``) are drawn in pretraining
images but never named in pretraining captions (a reserve object is "a shape").
Teaching those words later exercises text-only fine-tuning on labels the model
has never read.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image, ImageDraw

# --- attributes --------------------------------------------------------------------------

COLOURS = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "white")
RGB = {
    "red": (220, 30, 35),
    "orange": (245, 140, 20),
    "yellow": (240, 222, 30),
    "green": (40, 170, 60),
    "blue": (40, 80, 225),
    "purple": (135, 45, 190),
    "pink": (250, 130, 200),
    "white": (246, 246, 246),
}
NAMED_KINDS = ("circle", "square", "triangle", "star", "heart", "cross")
RESERVE_KINDS = ("ring", "moon")  # drawn, never named in pretraining captions
KINDS = NAMED_KINDS + RESERVE_KINDS
PLURALS = {k: k + ("es" if k.endswith(("s", "x")) else "s") for k in KINDS}
SIZES = ("small", "medium", "large")
# Radius as a fraction of the image's short side. Large objects still fit in one
# cell of the 3x3 layout grid, so positions stay unambiguous.
SIZE_RADIUS = {"small": (0.075, 0.095), "medium": (0.11, 0.13), "large": (0.145, 0.165)}
TEXTURES = ("solid", "striped", "dotted")  # only ever "solid" is implied by captions
HPOS = ("left", "centre", "right")
VPOS = ("top", "middle", "bottom")
TONES = ("dark", "grey", "light")
PATTERNS = ("plain", "gradient", "noisy", "lined", "checkered")
MAX_OBJECTS = 4

# Colour-kind pairs that never occur in the train (and test) splits: each colour
# and each named kind is still seen, only the combination is new.
HELD_OUT_PAIRS = (
    ("red", "star"),
    ("blue", "triangle"),
    ("green", "heart"),
    ("yellow", "cross"),
    ("purple", "square"),
    ("orange", "circle"),
)
SPLITS = {"train": 0, "test": 1, "compositions": 2}

ATTRS = ("colour", "kind", "size", "texture", "hpos", "vpos")
_VALUES = {
    "colour": COLOURS,
    "kind": KINDS,
    "size": SIZES,
    "texture": TEXTURES,
    "hpos": HPOS,
    "vpos": VPOS,
}


# --- scenes ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Obj:
    """One object. ``x``/``y`` are its centre as fractions of width/height; ``r`` its
    radius as a fraction of the image's short side (so shapes never distort)."""

    kind: str
    colour: str
    size: str
    texture: str
    x: float
    y: float
    r: float
    angle: float = 0.0  # degrees

    @property
    def hpos(self) -> str:
        return HPOS[min(int(self.x * 3), 2)]

    @property
    def vpos(self) -> str:
        return VPOS[min(int(self.y * 3), 2)]

    def attr(self, name: str) -> str:
        return getattr(self, name)


@dataclass(frozen=True)
class Background:
    tone: str
    pattern: str
    rgb: tuple[int, int, int]
    seed: int  # for noise, so a scene renders identically every time


@dataclass(frozen=True)
class Scene:
    objects: tuple[Obj, ...]
    background: Background

    @property
    def count(self) -> int:
        return len(self.objects)


def _background(rng: np.random.Generator) -> Background:
    tone = TONES[rng.integers(3)]
    lum = {"dark": (45, 80), "grey": (105, 140), "light": (170, 200)}[tone]
    base = int(rng.integers(*lum))
    tint = rng.integers(-12, 13, size=3)  # desaturated, so no background reads as an object colour
    rgb = tuple(int(np.clip(base + t, 0, 255)) for t in tint)
    return Background(tone, PATTERNS[rng.integers(len(PATTERNS))], rgb, int(rng.integers(2**31)))


def _pick_pair(rng: np.random.Generator, split: str) -> tuple[str, str]:
    held = set(HELD_OUT_PAIRS)
    while True:
        colour = COLOURS[rng.integers(len(COLOURS))]
        # Reserve kinds are rarer: they are room for later, not the main vocabulary.
        kind = (
            KINDS[rng.integers(len(KINDS))]
            if rng.random() < 0.2
            else NAMED_KINDS[rng.integers(len(NAMED_KINDS))]
        )
        if split == "compositions" or (colour, kind) not in held:
            return colour, kind


def sample_scene(
    rng: np.random.Generator,
    split: str = "train",
    *,
    layout: str = "grid",
    n_objects: int | None = None,
) -> Scene:
    """Draw one random scene.

    ``split``: "train"/"test" never contain a held-out colour-kind pair;
    "compositions" always contains at least one (the first object).
    ``layout``: "grid" places objects in distinct cells of a 3x3 grid; "edges"
    places them in the left and right columns, hugging the image border (for
    panoramas, where objects near the edges are the ones that get lost).
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {sorted(SPLITS)}")
    n = n_objects or int(rng.integers(1, MAX_OBJECTS + 1))
    if layout == "grid":
        cells = [(c % 3, c // 3) for c in rng.permutation(9)[:n]]
    elif layout == "edges":
        cells = [((c % 2) * 2, c // 2) for c in rng.permutation(6)[:n]]
    else:
        raise ValueError(f"unknown layout {layout!r}")
    objs: list[Obj] = []
    for i, (cx, cy) in enumerate(cells):
        if split == "compositions" and i == 0:
            colour, kind = HELD_OUT_PAIRS[rng.integers(len(HELD_OUT_PAIRS))]
        else:
            colour, kind = _pick_pair(rng, "train" if split == "compositions" else split)
        size = SIZES[rng.integers(3)]
        r = float(rng.uniform(*SIZE_RADIUS[size]))
        texture = TEXTURES[0] if rng.random() < 0.7 else TEXTURES[1 + rng.integers(2)]
        for attempt in range(30):
            if layout == "edges":
                x = float(rng.uniform(0.0, 0.06)) if cx == 0 else float(rng.uniform(0.94, 1.0))
            else:
                x = (cx + float(rng.uniform(0.3, 0.7))) / 3
            y = (cy + float(rng.uniform(0.3, 0.7))) / 3
            if attempt == 29:  # give up jittering: small objects at cell centres never touch
                size, r = "small", SIZE_RADIUS["small"][0]
                x, y = (cx + 0.5) / 3 if layout == "grid" else x, (cy + 0.5) / 3
            # Check overlap in a square frame, the tightest aspect ratio we render.
            px, py = min(max(x, r), 1 - r), min(max(y, r), 1 - r)
            if all(
                math.hypot(px - min(max(o.x, o.r), 1 - o.r), py - min(max(o.y, o.r), 1 - o.r))
                > r + o.r + 0.02
                for o in objs
            ):
                break
        angle = float(rng.uniform(-20, 20))
        objs.append(Obj(kind, colour, size, texture, float(x), float(y), r, angle))
    return Scene(tuple(objs), _background(rng))


def with_new_kinds(scene: Scene, rng: np.random.Generator, split: str = "train") -> Scene:
    """The same scene (colours, sizes, places, background) with every object's kind
    redrawn to a different named kind. Training puts such twins in the same batch:
    telling them apart takes shapes, which colour and position cannot stand in for."""
    held = set(HELD_OUT_PAIRS) if split != "compositions" else set()
    objs = []
    for o in scene.objects:
        options = [k for k in NAMED_KINDS if k != o.kind and (o.colour, k) not in held]
        objs.append(replace(o, kind=options[rng.integers(len(options))]))
    return replace(scene, objects=tuple(objs))


def mirrored(scene: Scene) -> Scene:
    """The scene flipped left to right: same objects, left and right swapped. Training
    puts it beside the original, where only position words tell the two apart."""
    objs = tuple(replace(o, x=1.0 - o.x, angle=-o.angle) for o in scene.objects)
    return replace(scene, objects=objs)


def opposite(scene: Scene) -> Scene:
    """The scene with every object moved to the opposite place (left <-> right and top <->
    bottom; the centre stays), shapes drawn upright as before: the same objects, the
    same distances between them, other positions. Training puts it beside the original,
    where only position words tell the two apart."""
    objs = tuple(replace(o, x=1.0 - o.x, y=1.0 - o.y) for o in scene.objects)
    return replace(scene, objects=objs)


def scene_rng(index: int, split: str = "train", seed: int = 0) -> np.random.Generator:
    """The generator for scene ``index`` of ``split``: splits are disjoint streams."""
    return np.random.default_rng([seed, SPLITS[split], index])


def scenes(
    split: str, n: int, *, seed: int = 0, start: int = 0, layout: str = "grid"
) -> list[Scene]:
    """Scenes ``start..start+n-1`` of a split; scene i is the same whatever n is."""
    return [
        sample_scene(scene_rng(i, split, seed), split, layout=layout)
        for i in range(start, start + n)
    ]


# --- rendering ---------------------------------------------------------------------------


def _unit_polygon(kind: str) -> list[tuple[float, float]]:
    if kind == "square":
        return [(-0.85, -0.85), (0.85, -0.85), (0.85, 0.85), (-0.85, 0.85)]
    if kind == "triangle":
        return [(math.cos(a), math.sin(a)) for a in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)]
    if kind == "star":
        return [
            (
                (1.0 if i % 2 == 0 else 0.45) * math.cos(-math.pi / 2 + i * math.pi / 5),
                (1.0 if i % 2 == 0 else 0.45) * math.sin(-math.pi / 2 + i * math.pi / 5),
            )
            for i in range(10)
        ]
    if kind == "cross":
        a, b = 0.32, 0.95
        return [
            (-a, -b),
            (a, -b),
            (a, -a),
            (b, -a),
            (b, a),
            (a, a),
            (a, b),
            (-a, b),
            (-a, a),
            (-b, a),
            (-b, -a),
            (-a, -a),
        ]
    if kind == "heart":
        pts = []
        for i in range(24):
            t = 2 * math.pi * i / 24
            x = 16 * math.sin(t) ** 3
            y = 13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t)
            pts.append((x / 16.5, -(y + 2.5) / 15.5))
        return pts
    raise ValueError(kind)


_POLYGONS = {k: _unit_polygon(k) for k in ("square", "triangle", "star", "cross", "heart")}


def _mask(kind: str, rpx: float, angle: float, ss: int) -> Image.Image:
    """An L-mode mask of the shape, centred in a (2R+2)^2 box."""
    side = int(2 * rpx) + 2
    m = Image.new("L", (side, side), 0)
    d = ImageDraw.Draw(m)
    c = side / 2
    if kind in ("circle", "ring", "moon"):
        d.ellipse((c - rpx, c - rpx, c + rpx, c + rpx), fill=255)
        if kind == "ring":
            q = rpx * 0.55
            d.ellipse((c - q, c - q, c + q, c + q), fill=0)
        elif kind == "moon":
            o = rpx * 0.45
            d.ellipse((c - rpx + o, c - rpx - o * 0.4, c + rpx + o, c + rpx - o * 0.4), fill=0)
        return m
    ca, sa = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    pts = [(c + rpx * (x * ca - y * sa), c + rpx * (x * sa + y * ca)) for x, y in _POLYGONS[kind]]
    d.polygon(pts, fill=255)
    return m


def _texture(o: Obj, side: int, rpx: float) -> Image.Image:
    """Striped or dotted fill: the object's colour with a darker shade, so the
    colour still reads as the object's colour."""
    rgb = np.array(RGB[o.colour], dtype=np.float32)
    dark = rgb * 0.5
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32)
    period = max(rpx * 0.5, 3.0)
    if o.texture == "striped":
        on = ((xx + yy) / period) % 1.0 < 0.5
    else:
        fy, fx = (yy / period) % 1.0 - 0.5, (xx / period) % 1.0 - 0.5
        on = fx * fx + fy * fy < 0.09
    arr = np.where(on[..., None], dark, rgb).astype(np.uint8)
    return Image.fromarray(arr, "RGB")


def _background_array(bg: Background, h: int, w: int) -> np.ndarray:
    base = np.array(bg.rgb, dtype=np.float32)
    short = min(h, w)
    if bg.pattern == "plain":
        return np.broadcast_to(base.astype(np.uint8), (h, w, 3)).copy()
    if bg.pattern == "gradient":
        ramp = np.linspace(-22, 22, h, dtype=np.float32)[:, None, None]
        out = base + np.broadcast_to(ramp, (h, w, 1))
    elif bg.pattern == "noisy":
        rng = np.random.default_rng(bg.seed)
        out = base + rng.normal(0, 10, size=(h, w, 1)).astype(np.float32)
    elif bg.pattern == "lined":
        period = short * 0.09
        yy = np.arange(h, dtype=np.float32)[:, None, None]
        out = base + np.broadcast_to(np.where((yy / period) % 1.0 < 0.5, 12.0, -12.0), (h, w, 1))
    else:  # checkered
        cell = short * 0.14
        yy = (np.arange(h) / cell).astype(int)[:, None]
        xx = (np.arange(w) / cell).astype(int)[None, :]
        out = base + np.where((yy + xx) % 2 == 0, 12.0, -12.0)[..., None].astype(np.float32)
    return np.clip(out, 0, 255).astype(np.uint8)


def render(
    scene: Scene, size: tuple[int, int] = (96, 96), *, supersample: int | None = None
) -> Image.Image:
    """Draw a scene as an RGB image of ``size`` = (height, width).

    Shapes keep their proportions at every aspect ratio (radii scale with the
    short side); positions scale with each axis, clamped so objects stay whole.
    Small images are drawn at 2x and reduced, for anti-aliased edges.
    """
    h, w = size
    ss = supersample or (2 if min(h, w) <= 256 else 1)
    H, W = h * ss, w * ss
    img = Image.fromarray(_background_array(scene.background, H, W), "RGB")
    short = min(H, W)
    for o in scene.objects:
        rpx = o.r * short
        cx = min(max(o.x * W, rpx), W - rpx)
        cy = min(max(o.y * H, rpx), H - rpx)
        m = _mask(o.kind, rpx, o.angle, ss)
        left, top = int(round(cx - m.width / 2)), int(round(cy - m.height / 2))
        fill = _texture(o, m.width, rpx) if o.texture != "solid" else RGB[o.colour]
        img.paste(fill, (left, top, left + m.width, top + m.height), m)
    return img.reduce(ss) if ss > 1 else img


# --- meaning: what a caption or query says -----------------------------------------------


@dataclass(frozen=True)
class Clause:
    """A statement about objects: with ``count`` None, "there is an object with
    these attributes" (distinct from the objects of the other such clauses); with
    ``count`` n, "exactly n objects have these attributes" (no attributes: n objects in all)."""

    attrs: tuple[tuple[str, str], ...] = ()
    count: int | None = None

    def holds_for(self, o: Obj) -> bool:
        return all(o.attr(k) == v for k, v in self.attrs)


@dataclass(frozen=True)
class Meaning:
    clauses: tuple[Clause, ...] = ()
    background: tuple[tuple[str, str], ...] = ()  # ("tone", "dark"), ("pattern", "lined")


@dataclass(frozen=True)
class Caption:
    text: str
    meaning: Meaning
    form: str = ""  # which template family produced it (for statistics)


def matches(scene: Scene, meaning: Meaning) -> bool:
    """True when the scene makes the statement true."""
    bg = scene.background
    if any(getattr(bg, k) != v for k, v in meaning.background):
        return False
    exist = [c for c in meaning.clauses if c.count is None]
    for c in meaning.clauses:
        if c.count is not None and sum(c.holds_for(o) for o in scene.objects) != c.count:
            return False
    if len(exist) > scene.count:
        return False
    return any(
        all(c.holds_for(scene.objects[j]) for c, j in zip(exist, perm, strict=True))
        for perm in itertools.permutations(range(scene.count), len(exist))
    )


def scene_array(scene_list: list[Scene]) -> np.ndarray:
    """Objects as attribute indices, int8 [N, MAX_OBJECTS, len(ATTRS)], -1 for no object."""
    out = np.full((len(scene_list), MAX_OBJECTS, len(ATTRS)), -1, dtype=np.int8)
    for i, s in enumerate(scene_list):
        for j, o in enumerate(s.objects):
            out[i, j] = [_VALUES[a].index(o.attr(a)) for a in ATTRS]
    return out


_PERMS = {
    k: np.array(list(itertools.permutations(range(MAX_OBJECTS), k)), dtype=np.int64).reshape(-1, k)
    for k in range(1, MAX_OBJECTS + 1)
}


def match_matrix(
    scene_list: list[Scene], meanings: list[Meaning], arr: np.ndarray | None = None
) -> np.ndarray:
    """bool [len(scene_list), len(meanings)]: scene i makes meaning j true.
    Vectorised over scenes (the training loop calls it on every batch); agrees with ``matches``."""
    arr = scene_array(scene_list) if arr is None else arr
    valid = arr[..., 0] >= 0  # [N, M]
    tone = np.array([TONES.index(s.background.tone) for s in scene_list])
    pattern = np.array([PATTERNS.index(s.background.pattern) for s in scene_list])
    out = np.zeros((len(scene_list), len(meanings)), dtype=bool)
    for j, m in enumerate(meanings):
        ok = np.ones(len(scene_list), dtype=bool)
        for k, v in m.background:
            ok &= (tone == TONES.index(v)) if k == "tone" else (pattern == PATTERNS.index(v))
        sats = []
        for c in m.clauses:
            sat = valid.copy()
            for k, v in c.attrs:
                sat &= arr[..., ATTRS.index(k)] == _VALUES[k].index(v)
            if c.count is None:
                sats.append(sat)
            else:
                ok &= sat.sum(1) == c.count
        if sats:
            perms = _PERMS[len(sats)]  # [P, k]
            if len(perms) == 0:
                ok[:] = False
            else:
                s = np.stack(sats, 1)  # [N, k, M]
                picked = s[:, np.arange(len(sats))[None, :], perms]  # [N, P, k]
                ok &= picked.all(2).any(1)
        out[:, j] = ok
    return out
