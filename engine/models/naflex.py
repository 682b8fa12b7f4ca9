"""SigLIP 2 NaFlex input: a photo at its own aspect ratio, as a variable-length patch sequence.

A fixed-resolution model squashes or centre-crops every photo to a square; a
panorama loses its edges and a portrait its top and bottom. NaFlex instead:

1. resizes the photo so that its patch grid (``rows x cols`` patches of
   ``patch_size`` px) holds at most ``max_patches`` patches, keeping the aspect
   ratio up to rounding each side up to whole patches (:func:`grid_size`);
2. cuts it into ``rows * cols`` flattened patches (:func:`preprocess`);
3. pads a batch of such sequences to one length with a mask (:func:`collate`);
4. bilinearly resizes the model's square table of position embeddings to each
   photo's grid.

Everything here reproduces transformers' ``Siglip2ImageProcessorPil`` (the
processor the published ``google/siglip2-*-naflex`` checkpoints ship with,
``resample=2`` = Pillow bilinear) and ``Siglip2VisionEmbeddings`` exactly; the
tests compare both on real photos of many aspect ratios.

Step 4 is done here, not in the ONNX graph. Each photo in a batch has its own
grid, and transformers loops over the batch calling ``F.interpolate`` with a
data-dependent size: that cannot be traced into one graph with a batch axis.
But resizing is linear, so the resized table is ``W @ table`` with a fixed
weight matrix ``W`` per grid (:func:`position_weights`, the Kronecker product
of torch's antialiased bilinear weights along each axis). The graph takes ``W``
as an input and does one batched matmul; photos of any shapes share a batch.
Its cost is ``S x G x D`` multiply-adds per photo (G = base grid, 256 for the
published models), about 0.2 % of a B/16 forward pass.

One known difference from transformers: for a grid exactly one patch *wide*
(a strip taller than about 256:1 at 256 patches; no camera makes one), torch's
antialiased bilinear kernel returns the first row's value for every row
(``F.interpolate(t, size=(10, 1), ...)`` is constant along its height, unlike
resizing to (10, 8) and then to (10, 1)). Here such a grid gets the true
separable bilinear resize, which is what the checkpoints (trained in JAX) saw.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..errors import ModelError
from .registry import Preprocess

#: Patch budgets offered for NaFlex models: the published default and the two larger
#: settings SigLIP 2 was evaluated at (more detail, about 2.3x and 4x the compute).
BUDGETS = (256, 576, 1024)

_RESAMPLE = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR}


def grid_size(height: int, width: int, patch_size: int, max_patches: int) -> tuple[int, int]:
    """(rows, cols) of patches for a ``height`` x ``width`` photo and a patch budget.

    transformers' ``get_image_size_for_max_num_patches``: a binary search on the
    scale, each side rounded *up* to whole patches and at least one patch, for
    the largest scale whose grid fits the budget. Same float arithmetic, so the
    same grid for every photo size.
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    if patch_size <= 0 or max_patches <= 0:
        raise ValueError(
            f"patch_size and max_patches must be positive ({patch_size}, {max_patches})"
        )

    def scaled(scale: float, size: int) -> int:
        return int(max(patch_size, math.ceil(size * scale / patch_size) * patch_size))

    eps = 1e-5
    lo, hi = eps / 10, 100.0
    while (hi - lo) >= eps:
        scale = (lo + hi) / 2
        n = (scaled(scale, height) / patch_size) * (scaled(scale, width) / patch_size)
        if n <= max_patches:
            lo = scale
        else:
            hi = scale
    return scaled(lo, height) // patch_size, scaled(lo, width) // patch_size


def decode_side(patch_size: int, max_patches: int) -> int:
    """The shorter side a photo must be decoded at so NaFlex's resize never upsamples.

    A grid of aspect ratio r (long/short) has a short side of about
    ``patch_size * sqrt(max_patches / r)`` px, at most ``patch_size * sqrt(max_patches)``
    for a square photo. Asking the decoder (JPEG draft mode) for this shorter
    side is therefore enough for every aspect ratio, and lets it skip most of a
    camera photo's pixels.
    """
    return patch_size * math.ceil(math.sqrt(max_patches))


@dataclass(frozen=True)
class NaflexImage:
    """One photo as a patch sequence: ``patches`` float32 [rows * cols, patch_size**2 * 3]."""

    patches: np.ndarray
    rows: int
    cols: int

    @property
    def length(self) -> int:
        return self.rows * self.cols


@dataclass(frozen=True)
class NaflexBatch:
    """Padded model input for several photos (the image graph's three inputs).

    ``patches`` float32 [B, S, P], ``mask`` int64 [B, S] (1 = real patch),
    ``pos_weights`` float32 [B, S, G] (zero rows for padding), ``spatial_shapes``
    int64 [B, 2] (rows, cols; for reference and tests, not a graph input).
    """

    patches: np.ndarray
    mask: np.ndarray
    pos_weights: np.ndarray
    spatial_shapes: np.ndarray

    def feeds(self) -> dict[str, np.ndarray]:
        return {"patches": self.patches, "mask": self.mask, "pos_weights": self.pos_weights}


def resize(image: Image.Image, p: Preprocess, max_patches: int | None = None) -> Image.Image:
    """The photo resized to its NaFlex grid (a whole number of patches on each side)."""
    if p.resize_mode != "naflex" or not p.patch_size:
        raise ModelError(f"resize mode {p.resize_mode!r} is not NaFlex")
    budget = max_patches or p.max_patches
    if not budget:
        raise ModelError("NaFlex preprocessing needs max_patches")
    if image.mode != "RGB":
        image = image.convert("RGB")
    rows, cols = grid_size(image.height, image.width, p.patch_size, budget)
    size = (cols * p.patch_size, rows * p.patch_size)
    # transformers' PIL backend always calls Image.resize, even at the same size
    # (a no-op for Pillow's filters), so this is pixel-identical either way.
    if size != image.size:
        image = image.resize(size, _RESAMPLE[p.interpolation])
    return image


def patchify(pixels: np.ndarray, patch_size: int) -> np.ndarray:
    """float32 [H, W, 3] -> [rows * cols, patch_size * patch_size * 3], row-major patches.

    Within a patch the order is (y, x, channel), transformers' ``convert_image_to_patches``.
    """
    h, w, c = pixels.shape
    rows, cols = h // patch_size, w // patch_size
    x = pixels.reshape(rows, patch_size, cols, patch_size, c).transpose(0, 2, 1, 3, 4)
    return np.ascontiguousarray(x.reshape(rows * cols, patch_size * patch_size * c))


def normalize(pixels: np.ndarray, p: Preprocess) -> np.ndarray:
    """uint8 [H, W, 3] -> float32, as transformers: x * (1/255) in float64, then (x - mean) / std in float32."""
    x = (pixels.astype(np.float64) * (1 / 255)).astype(np.float32)
    x -= np.asarray(p.mean, dtype=np.float32)
    x /= np.asarray(p.std, dtype=np.float32)
    return x


def preprocess(image: Image.Image, p: Preprocess, max_patches: int | None = None) -> NaflexImage:
    """An upright RGB PIL image -> its NaFlex patch sequence for ``p`` (budget ``max_patches``,
    default ``p.max_patches``)."""
    resized = resize(image, p, max_patches)
    x = normalize(np.asarray(resized), p)
    ps = p.patch_size
    return NaflexImage(patchify(x, ps), resized.height // ps, resized.width // ps)


def _aa_bilinear_weights(in_size: int, out_size: int) -> np.ndarray:
    """[out_size, in_size] weights of torch's ``interpolate(mode="bilinear",
    align_corners=False, antialias=True)`` along one axis.

    A triangle filter widened by the scale when shrinking (antialiasing), as
    ATen's ``_compute_index_ranges_weights`` computes it; upsampling reduces to
    plain bilinear with half-pixel centres.
    """
    scale = in_size / out_size
    support = scale if scale >= 1.0 else 1.0
    invscale = 1.0 / scale if scale >= 1.0 else 1.0
    w = np.zeros((out_size, in_size), dtype=np.float64)
    for i in range(out_size):
        center = scale * (i + 0.5)
        lo = max(int(center - support + 0.5), 0)
        hi = min(int(center + support + 0.5), in_size)
        js = np.arange(lo, hi)
        row = np.maximum(0.0, 1.0 - np.abs((js - center + 0.5) * invscale))
        total = row.sum()
        w[i, lo:hi] = row / total if total else row
    return w


@functools.lru_cache(maxsize=256)
def position_weights(rows: int, cols: int, base: int) -> np.ndarray:
    """float32 [rows * cols, base * base]: resized position embeddings = this @ table.

    ``table`` is the model's [base * base, D] position embedding, a ``base`` x
    ``base`` grid in row-major order, as transformers reshapes it. Read-only:
    it is cached and shared between batches.
    """
    w = np.kron(_aa_bilinear_weights(base, rows), _aa_bilinear_weights(base, cols))
    w = w.astype(np.float32)
    w.flags.writeable = False
    return w


def collate(items: Sequence[NaflexImage], base: int, length: int | None = None) -> NaflexBatch:
    """Pad ``items`` to one sequence length (default: the longest) for one graph call."""
    if not items:
        raise ValueError("collate needs at least one image")
    s = max(it.length for it in items)
    if length is not None:
        if length < s:
            raise ValueError(f"length {length} is shorter than the longest sequence ({s})")
        s = length
    dim = items[0].patches.shape[1]
    b = len(items)
    patches = np.zeros((b, s, dim), dtype=np.float32)
    mask = np.zeros((b, s), dtype=np.int64)
    pos = np.zeros((b, s, base * base), dtype=np.float32)
    shapes = np.zeros((b, 2), dtype=np.int64)
    for i, it in enumerate(items):
        n = it.length
        patches[i, :n] = it.patches
        mask[i, :n] = 1
        pos[i, :n] = position_weights(it.rows, it.cols, base)
        shapes[i] = (it.rows, it.cols)
    return NaflexBatch(patches, mask, pos, shapes)


def plan_buckets(lengths: Sequence[int], max_waste: float = 0.1) -> list[list[int]]:
    """Group sequence indices so that padding each group to its longest wastes little.

    Sorted by length, a new group starts whenever padding the next (shorter)
    sequences to the group's longest would make padded tokens exceed
    ``max_waste`` of the group's real tokens. With a fixed patch budget almost
    every photo fills 90-100 % of it, so a batch usually stays one group; a
    tiny or extreme photo among them gets its own shorter call instead of
    inflating everyone's attention cost. Returns groups of indices into ``lengths``.
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    groups: list[list[int]] = []
    for i in order:
        if groups:
            g = groups[-1]
            longest = lengths[g[0]]
            real = sum(lengths[j] for j in g) + lengths[i]
            if longest * (len(g) + 1) - real <= max_waste * real:
                g.append(i)
                continue
        groups.append([i])
    return groups


def base_of(session) -> int:
    """The base position grid side of a NaFlex image graph, from its ``pos_weights`` input."""
    for inp in session.get_inputs():
        if inp.name == "pos_weights":
            g = inp.shape[-1]
            side = math.isqrt(g) if isinstance(g, int) else 0
            if side and side * side == g:
                return side
            break
    raise ModelError("image.onnx is not a NaFlex graph (no square 'pos_weights' input)")


def run(session, items: Sequence[NaflexImage], base: int, max_waste: float = 0.1) -> np.ndarray:
    """Embed NaFlex sequences with an image graph: one padded call per length bucket.

    Returns float32 [len(items), D] un-normalised, in the order of ``items``.
    """
    if not items:
        raise ValueError("no images to embed")
    out: np.ndarray | None = None
    for group in plan_buckets([it.length for it in items], max_waste):
        batch = collate([items[i] for i in group], base)
        vecs = session.run(None, batch.feeds())[0]
        if out is None:
            out = np.empty((len(items), vecs.shape[1]), dtype=np.float32)
        out[group] = vecs
    return out  # type: ignore[return-value]
