"""Invariances of search that catch real bugs (issue 3, item 4), on the bundled demo model.

* Backend: open_clip (torch, from the demo folder's ``open_clip_model.safetensors`` +
  ``open_clip_config.json``) and the engine's ONNX runtime rank the same images in the
  same order for the same queries.
* Batch size: indexing one folder with batch sizes 1, 7 and 32 stores the same vectors
  and gives the same top-10.
* File order: the same photos under shuffled names, in another folder, rank the same.

Every check is a plain function that returns what is wrong, and each one is also run
against an injected bug to show that it can fail.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import engine.models.runtime
from engine.bench.quality import save_scene
from engine.library import DEMO_MODEL, Library
from engine.models.preprocess import preprocess
from engine.models.registry import load_spec
from engine.models.tokenizer import Tokenizer
from engine.search import Filters, Query
from engine.settings import Settings
from training.demo import captions, world
from training.demo import evaluation as demo_eval

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "resources" / "demo"
N_IMAGES = 40  # small galleries: these run in the default suite
K = 10
# Queries of every attribute kind plus a few captions: short and long texts.
QUERIES = [q.text for q in captions.attribute_queries()] + [
    "a red circle on the left",
    "two objects: a large blue square and a small yellow star",
    "a white heart at the bottom on a dark background",
]
# Scores closer than this may swap places between backends without it being a bug
# (float32 and graph-level rounding); anything else must rank identically.
TIE_EPS = 1e-4
MIN_COSINE = 0.9999
VEC_ATOL = 1e-5


def gallery_scenes(n: int = N_IMAGES) -> tuple[list[world.Scene], list[tuple[int, int]]]:
    """Held-out scenes (a seed of their own) at the benchmark's varied sizes and aspect ratios."""
    return world.scenes("test", n, seed=11), demo_eval._render_sizes(n, 11)


def ranking_problems(
    ref: np.ndarray, other: np.ndarray, k: int = K, eps: float = TIE_EPS
) -> list[str]:
    """ref, other: [queries, images] scores of the same queries over the same images.
    The top-k of ``other`` must be ref's top-k in ref's order, except that items whose
    ref scores lie within ``eps`` of each other may trade places."""
    bad = []
    for q, (a, b) in enumerate(zip(ref, other, strict=True)):
        top_a = np.argsort(-a, kind="stable")[:k]
        top_b = np.argsort(-b, kind="stable")[:k]
        # b's j-th pick must score (in ref) like ref's j-th pick
        gap = np.abs(a[top_b] - a[top_a])
        if (gap > eps).any():
            bad.append(f"query {q}: top-{k} {top_b.tolist()} vs {top_a.tolist()}")
    return bad


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return float(((a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))).min())


# --- torch (open_clip) vs ONNX --------------------------------------------------------------


@pytest.fixture(scope="module")
def backends():
    """Both backends' vectors for the gallery and the queries, from the same inputs."""
    open_clip = pytest.importorskip("open_clip", reason="the torch reference needs open_clip")
    import torch

    spec = load_spec(DEMO / "model.json")
    scenes, sizes = gallery_scenes()
    pixels = np.stack([preprocess(world.render(s, sz), spec.preprocess) for s, sz in zip(scenes, sizes, strict=True)])
    tokens = Tokenizer.from_file(DEMO / "tokenizer.json", spec.tokenizer).encode(QUERIES)

    model = open_clip.create_model(f"local-dir:{DEMO}", load_weights=True).eval()

    def torch_encode(model, pixels, tokens):
        with torch.no_grad():
            img = model.encode_image(torch.from_numpy(pixels), normalize=True).numpy()
            txt = model.encode_text(torch.from_numpy(tokens), normalize=True).numpy()
        return img, txt

    onnx = engine.models.runtime.OnnxModel(DEMO, prefer_cpu=True)
    return dict(
        model=model, pixels=pixels, tokens=tokens, torch_encode=torch_encode,
        torch=torch_encode(model, pixels, tokens),
        onnx=(onnx.encode_images(pixels), onnx.encode_texts(QUERIES)),
    )  # fmt: skip


def backend_problems(torch_vecs, onnx_vecs) -> tuple[list[str], float, float]:
    (ti, tt), (oi, ot) = torch_vecs, onnx_vecs
    img_cos, txt_cos = min_cosine(ti, oi), min_cosine(tt, ot)
    bad = ranking_problems(tt @ ti.T, ot @ oi.T)
    if img_cos < MIN_COSINE:
        bad.append(f"image vectors: min cosine {img_cos:.6f} < {MIN_COSINE}")
    if txt_cos < MIN_COSINE:
        bad.append(f"text vectors: min cosine {txt_cos:.6f} < {MIN_COSINE}")
    return bad, img_cos, txt_cos


def test_torch_and_onnx_backends_rank_alike(backends, record_property):
    bad, img_cos, txt_cos = backend_problems(backends["torch"], backends["onnx"])
    record_property("image_min_cosine", img_cos)
    record_property("text_min_cosine", txt_cos)
    assert bad == [], bad
    # the gallery is not degenerate: queries rank the images differently
    ti, tt = backends["torch"]
    tops = {tuple(np.argsort(-row)[:K]) for row in tt @ ti.T}
    assert len(tops) > len(QUERIES) // 2


def _train_mode(b):  # BatchNorm on batch statistics: the classic export-reference bug
    b["model"].train()
    try:
        return b["torch_encode"](b["model"], b["pixels"], b["tokens"])
    finally:
        b["model"].eval()


def _bgr(b):  # one backend fed BGR
    return b["torch_encode"](b["model"], np.ascontiguousarray(b["pixels"][:, ::-1]), b["tokens"])


def _no_end_token(b):  # a text tower that pools at the last position instead of <end>
    tokens = b["tokens"].copy()
    tokens[tokens == tokens.max()] = 0
    return b["torch_encode"](b["model"], b["pixels"], tokens)


@pytest.mark.parametrize("bug", [_train_mode, _bgr, _no_end_token], ids=["train-mode", "bgr", "no-end-token"])
def test_backend_check_catches_a_disagreeing_backend(backends, bug):
    bad, _, _ = backend_problems(bug(backends), backends["onnx"])
    assert bad, "the backend check missed an injected disagreement"


# --- batch size and file order, through the indexer ----------------------------------------


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory):
    """The gallery as files: JPEGs, some EXIF-rotated, one PNG (decode paths differ)."""
    root = tmp_path_factory.mktemp("inv") / "photos"
    root.mkdir()
    scenes, sizes = gallery_scenes()
    for i, (s, sz) in enumerate(zip(scenes, sizes, strict=True)):
        ext = "png" if i % 13 == 5 else "jpg"
        save_scene(world.render(s, sz), root / f"scene_{i:03d}.{ext}", (6, 8, 3)[i % 3] if i % 5 == 2 else None)
    return root


def shuffled_copy(src: Path, dst: Path, seed: int = 0) -> dict[str, str]:
    """Copy every file of ``src`` under a new name whose sort order is shuffled.
    Returns new path -> original path."""
    files = sorted(src.iterdir())
    order = np.random.default_rng(seed).permutation(len(files))
    dst.mkdir(parents=True)
    back = {}
    for rank, i in enumerate(order):
        f = files[i]
        new = dst / f"{rank:03d}_{f.stem[::-1]}{f.suffix}"
        shutil.copyfile(f, new)
        back[str(new)] = str(f)
    return back


def index(folder: Path, data_dir: Path, batch_size: int) -> dict:
    """Index ``folder`` in a fresh library. Returns path -> vector and query -> top-10 paths."""
    lib = Library(Settings(data_dir=data_dir, batch_size=batch_size), model_key=DEMO_MODEL)
    try:
        lib.add_folder(folder)
        rep = lib.scan()
        assert rep.failed == 0, rep.failures
        paths = sorted(str(p) for p in folder.iterdir())
        ids = {p: lib.db.image_id_for_path(p) for p in paths}
        vecs = lib.db.vectors_for(lib.space_id, [i for i in ids.values() if i is not None])
        tops = {q: [h.path for h in lib.search(Query(text=q, k=K, filters=Filters(folders=[str(folder)])))] for q in QUERIES}
    finally:
        lib.close()
    return dict(vectors={p: vecs[i] for p, i in ids.items() if i in vecs}, tops=tops)


def index_problems(ref: dict, other: dict, rename: dict[str, str] | None = None) -> list[str]:
    """Same photos (``rename``: other's path -> ref's path), same vectors, same top-10."""
    name = (lambda p: rename[p]) if rename else (lambda p: p)  # noqa: E731
    bad = []
    got = {name(p): v for p, v in other["vectors"].items()}
    if set(got) != set(ref["vectors"]):
        bad.append(f"{len(got)} vectors vs {len(ref['vectors'])}")
    for p, v in ref["vectors"].items():
        if p in got and not np.allclose(got[p], v, atol=VEC_ATOL):
            bad.append(f"{Path(p).name}: vector differs by {np.abs(got[p] - v).max():.2e}")
    for q, top in ref["tops"].items():
        mine = [name(p) for p in other["tops"][q]]
        if mine != top:
            bad.append(f"{q!r}: top-{K} differs")
    return bad


@pytest.fixture(scope="module")
def by_batch_size(photo_folder, tmp_path_factory):
    return {b: index(photo_folder, tmp_path_factory.mktemp(f"bs{b}"), b) for b in (1, 7, 32)}


def test_results_do_not_depend_on_batch_size(by_batch_size):
    ref = by_batch_size[1]
    assert len(ref["vectors"]) == N_IMAGES
    for b in (7, 32):
        assert index_problems(ref, by_batch_size[b]) == [], f"batch size {b}"


def test_results_do_not_depend_on_file_order(photo_folder, by_batch_size, tmp_path):
    rename = shuffled_copy(photo_folder, tmp_path / "shuffled")
    assert list(rename) != sorted(rename, key=lambda p: rename[p])  # the order really changed
    other = index(tmp_path / "shuffled", tmp_path / "data", 7)
    assert index_problems(by_batch_size[7], other, rename) == []
    assert index_problems(by_batch_size[1], other, rename) == []


def _batch_statistics(monkeypatch):
    """An image tower that normalises with the statistics of its batch (a train-mode
    BatchNorm left in an export): every vector then depends on its batch-mates."""
    real = engine.models.runtime.OnnxModel.encode_images

    def encode(self, pixels):
        mean = pixels.mean(0, keepdims=True)
        return real(self, pixels - 0.5 * mean + 0.5 * mean.mean())

    monkeypatch.setattr(engine.models.runtime.OnnxModel, "encode_images", encode)


def _misaligned_vectors(monkeypatch):
    """Vectors handed back in another order than the images came in (an off-by-one
    or a reordering of a batch): the wrong file gets each vector whenever batches hold more than one."""
    real = engine.models.runtime.OnnxModel.encode_images
    monkeypatch.setattr(engine.models.runtime.OnnxModel, "encode_images", lambda self, px: np.roll(real(self, px), 1, axis=0))


@pytest.mark.parametrize("bug", [_batch_statistics, _misaligned_vectors], ids=["batch-statistics", "misaligned-vectors"])
def test_batch_size_check_catches_batch_dependent_bugs(photo_folder, by_batch_size, tmp_path, monkeypatch, bug):
    bug(monkeypatch)
    other = index(photo_folder, tmp_path / "data", 7)
    assert index_problems(by_batch_size[1], other), "the batch-size check missed an injected bug"


def test_file_order_check_catches_an_order_dependent_bug(photo_folder, tmp_path, monkeypatch):
    # With vectors misassigned within each batch, which file gets which vector depends
    # on its batch-mates, and so on the order the files come in.
    rename = shuffled_copy(photo_folder, tmp_path / "shuffled")
    _misaligned_vectors(monkeypatch)
    ref = index(photo_folder, tmp_path / "ref", 7)
    other = index(tmp_path / "shuffled", tmp_path / "data", 7)
    assert index_problems(ref, other, rename), "the file-order check missed an order-dependent bug"


def test_images_are_distinct():
    # guards the checks above against a degenerate gallery (all scenes alike)
    scenes, sizes = gallery_scenes()
    arrs = [np.asarray(world.render(s, sz).resize((32, 32), Image.BILINEAR), dtype=np.float32) for s, sz in zip(scenes, sizes, strict=True)]
    assert min(np.abs(a - b).mean() for i, a in enumerate(arrs) for b in arrs[:i]) > 1.0
