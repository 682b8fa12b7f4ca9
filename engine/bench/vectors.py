"""Synthetic embedding sets for the ANN benchmark, and how to tell what they look like.

No pretrained CLIP weights exist on the build machines, so the index part of the query
benchmark runs on generated vectors. Two kinds:

* ``clip_like``: what trained image embeddings look like geometrically. Real CLIP-family
  embeddings are far from uniform on the sphere: they sit in a narrow cone (a large
  shared mean direction, so unrelated photos still have cosine around 0.3-0.6), their
  variance is concentrated in a few dozen principal directions with a decaying spectrum,
  and photos form clusters (scenes, subjects, bursts of near-duplicates). The generator
  draws a Gaussian mixture on a random ``sub_dim``-dimensional subspace with a power-law
  spectrum, adds a shared mean (the cone) and a little isotropic noise in all ``dim``
  directions, and normalises. Queries are drawn from the same mixture and shifted by a
  separate "text" mean, the modality gap between text and image embeddings.
* ``uniform``: unit vectors uniform on the 512-sphere. Every direction is equally
  likely and nearest neighbours are barely nearer than anything else: the worst case for
  any graph index, reported so that nobody mistakes the clustered figure for a bound.

:func:`describe` measures what a set actually looks like (TwoNN intrinsic dimension,
mean pairwise cosine, variance in the top principal directions), so the report shows
the properties the recall figure depends on instead of asserting them.
"""

from __future__ import annotations

import numpy as np

KINDS = ("clip_like", "uniform")


def _unit(x: np.ndarray) -> np.ndarray:
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


class ClipLike:
    """A fixed random mixture; ``images(n)`` and ``queries(n)`` sample from it."""

    def __init__(
        self,
        dim: int = 512,
        *,
        sub_dim: int = 64,
        clusters: int = 1000,
        spread: float = 0.8,
        cone: float = 1.0,
        noise: float = 0.2,
        seed: int = 0,
    ):
        rng = np.random.default_rng(seed)
        self.dim, self.sub_dim, self.spread, self.noise = dim, sub_dim, spread, noise
        basis, _ = np.linalg.qr(rng.standard_normal((dim, sub_dim + 2)))
        # Columns: sub_dim spanning the content subspace, then the image and text means.
        self.basis = basis[:, :sub_dim].T.astype(np.float32).copy()  # (sub_dim, dim)
        # Power-law spectrum: a few dominant directions, a long tail, as PCA of real
        # embeddings shows. Normalised so the content part has unit expected norm.
        scale = np.arange(1, sub_dim + 1, dtype=np.float64) ** -0.5
        self.scale = (scale / np.sqrt((scale**2).sum())).astype(np.float32)
        self.centres = (rng.standard_normal((clusters, sub_dim)) * self.scale).astype(np.float32)
        self.image_mean = (cone * basis[:, sub_dim]).astype(np.float32)
        self.text_mean = (cone * basis[:, sub_dim + 1]).astype(np.float32)
        self._rng = rng

    def _sample(self, n: int, mean: np.ndarray, chunk: int = 100_000) -> np.ndarray:
        out = np.empty((n, self.dim), dtype=np.float32)
        rng = self._rng
        for s in range(0, n, chunk):
            e = min(n, s + chunk)
            m = e - s
            z = self.centres[rng.integers(0, len(self.centres), m)]
            z = (
                z
                + self.spread
                * rng.standard_normal((m, self.sub_dim), dtype=np.float32)
                * self.scale
            )
            x = z @ self.basis
            x += mean
            x += (self.noise / np.sqrt(self.dim)) * rng.standard_normal(
                (m, self.dim), dtype=np.float32
            )
            out[s:e] = x
        return _unit(out)

    def images(self, n: int) -> np.ndarray:
        return self._sample(n, self.image_mean)

    def queries(self, n: int) -> np.ndarray:
        return self._sample(n, self.text_mean)


def uniform(n: int, dim: int, seed: int = 0, chunk: int = 100_000) -> np.ndarray:
    """Unit vectors uniform on the sphere (the worst case for graph indexes)."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, dim), dtype=np.float32)
    for s in range(0, n, chunk):
        e = min(n, s + chunk)
        out[s:e] = rng.standard_normal((e - s, dim), dtype=np.float32)
    return _unit(out)


def make(kind: str, n: int, queries: int, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(stored vectors, query vectors) of one kind."""
    if kind == "clip_like":
        gen = ClipLike(dim, seed=seed)
        return gen.images(n), gen.queries(queries)
    if kind == "uniform":
        return uniform(n, dim, seed), uniform(queries, dim, seed + 1)
    raise ValueError(f"unknown vector kind {kind!r}; expected one of {KINDS}")


def twonn_dimension(x: np.ndarray, sample: int = 2000, base: int = 100_000, seed: int = 0) -> float:
    """Intrinsic dimension by TwoNN (Facco et al. 2017): ratios of 2nd to 1st NN distance.

    For points on a d-dimensional manifold mu = r2/r1 follows a Pareto law with index d,
    so d = (N - 1) / sum(log mu) (the maximum-likelihood form). `x` holds unit vectors
    (distances come from cosines). Exact neighbours of
    `sample` points among the first `base` points; exact duplicates are dropped.
    """
    rng = np.random.default_rng(seed)
    pool = x[: min(base, len(x))]
    pick = rng.choice(len(pool), size=min(sample, len(pool)), replace=False)
    r = np.empty((len(pick), 2))
    for s in range(0, len(pick), 500):
        rows = pick[s : s + 500]
        # Unit vectors: squared distance = 2 - 2 cos.
        cos = pool[rows] @ pool.T
        cos[np.arange(len(rows)), rows] = -np.inf  # not its own neighbour
        top = -np.partition(-cos, 1, axis=1)[:, :2]
        r[s : s + len(rows)] = np.sqrt(np.maximum(2.0 - 2.0 * top.astype(np.float64), 0.0))
    ok = r[:, 0] > 1e-6
    mu = r[ok, 1] / r[ok, 0]
    return float((ok.sum() - 1) / np.log(mu).sum())


def describe(x: np.ndarray, sample: int = 5000, seed: int = 0) -> dict:
    """Geometry of an embedding set: what the ANN recall depends on."""
    rng = np.random.default_rng(seed)
    pts = x[rng.choice(len(x), size=min(sample, len(x)), replace=False)].astype(np.float64)
    cos = pts @ pts.T
    off = cos[~np.eye(len(pts), dtype=bool)]
    centred = pts - pts.mean(0)
    var = np.linalg.svd(centred, compute_uv=False) ** 2
    var /= var.sum()
    return dict(
        twonn_dim=round(twonn_dimension(x, sample=min(sample, 2000), seed=seed), 1),
        mean_cosine=round(float(off.mean()), 3),
        top10_variance=round(float(var[:10].sum()), 3),
        top50_variance=round(float(var[:50].sum()), 3),
    )
