"""`photosift bench adapters`: each hub layout's towers against photosift's own export of the
same architecture, on this CPU, in one run.

For each layout a full-size random-weight model (which times exactly like the trained one) is
exported the way its publisher does it (training.testmodels.hub_layouts) and installed as a user's
download is; photosift's own export (training.export.openclip: dynamic batch) of the same architecture
is the baseline. Both run through engine.models.runtime.OnnxModel, as indexing and search run them:

* images/s at the indexing batch (16), fp32 and int8: Immich's graphs are fixed to batch 1,
  and run freed of it (engine.models.freebatch); ``images_per_s@16_as_exported`` is the
  graph as Immich exported it, one photo per run on each core; the others take the batch whole;
* texts/s one at a time (a typed query) and 64 at a time (re-tagging a vocabulary).

The two sides alternate, three rounds each, and the best round counts (the least disturbed).
Needs the training extra to build the models (cached under the bench cache folder).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .common import bench_log, cache_dir, random_weight_folder

# layout -> (the registry entry of the architecture, what the layout's repo is made from)
CASES = {
    "rclip": "vit-b-32-256-datacomp",
    "immich": "vit-b-32-openai",
    "transformers.js": "vit-b-32-openai",
}
TEXTS = [f"a photo of {w} at {p}" for w in ("a dog", "two cats", "a red car", "my kids", "a cake", "snow",
                                               "a receipt", "the sea") for p in ("dusk", "home", "noon", "night",
                                                                                 "the park", "school", "work", "sea")]  # fmt: skip


def layout_folder(layout: str, log) -> Path:
    """A model folder in ``layout`` with a full-size random-weight model (built once)."""
    from ..models.registry import Registry
    from ..settings import Settings

    key = CASES[layout]
    spec = Registry.load().get(key)
    data = cache_dir() / f"layout-{layout}"
    folder = data / "models" / spec.key
    if (folder / "model.json").is_file():
        return folder
    log(f"  exporting a random-weight {spec.architecture} the way {layout} does (once; needs the training extra)")
    try:
        from training.testmodels.hub_layouts import export_full_size
    except ImportError as e:
        raise SystemExit(f"this benchmark needs the training extra to build its models: {e}") from e
    from ..models.install import import_folder

    repo = export_full_size(layout, spec.source.open_clip_name, data)
    known = spec if layout != "transformers.js" else None
    reg = Registry({spec.key: spec}) if known else Registry({})
    got = import_folder(repo, Settings(data_dir=data), reg, key=spec.key if known else None)
    return data / "models" / got.key


def _time_images(model, pixels: np.ndarray, batch: int) -> float:
    t = time.perf_counter()
    for i in range(0, len(pixels), batch):
        model.encode_images(pixels[i : i + batch])
    return len(pixels) / (time.perf_counter() - t)


def _time_texts(model, texts: list[str], batch: int) -> float:
    model._text_cache.clear()  # time the towers, not the cache of recent queries
    t = time.perf_counter()
    for i in range(0, len(texts), batch):
        model.encode_texts(texts[i : i + batch])
    return len(texts) / (time.perf_counter() - t)


def measure(a, b, n_images: int = 48, rounds: int = 3, a8=None, b8=None, a1=None
            ) -> dict[str, dict[str, float]]:  # fmt: skip
    """Best-of-``rounds`` throughput of models ``a`` and ``b``, alternating; ``a8``/``b8``: the
    same models with their int8 image towers (the default where the CPU has VNNI); ``a1``:
    ``a``'s image graph as exported, fixed to batch 1 (compared with ``b`` too)."""
    h, w = a.input_size
    assert (h, w) == b.input_size, "compare like with like"
    pixels = np.random.default_rng(0).normal(0, 1, (n_images, 3, h, w)).astype(np.float32)
    for m in (a, b, a8, b8, a1):  # warm up (allocations, caches)
        if m is not None:
            m.encode_images(pixels[:1])
    best: dict[str, dict[str, float]] = {"a": {}, "b": {}}
    for _ in range(rounds):
        for side, m, m8 in (("a", a, a8), ("b", b, b8)):
            r = {"images_per_s@16": _time_images(m, pixels, 16), "texts_per_s@1": _time_texts(m, TEXTS, 1),
                 "texts_per_s@64": _time_texts(m, TEXTS, 64)}  # fmt: skip
            if m8 is not None:
                r["images_per_s@16_int8"] = _time_images(m8, pixels, 16)
            if a1 is not None:  # the same images/s of the baseline, against the graph as exported
                r["images_per_s@16_as_exported"] = _time_images(a1 if side == "a" else m, pixels, 16)
            for k, v in r.items():
                best[side][k] = max(best[side].get(k, 0.0), v)
    return best


def _int8(folder: Path):
    """``folder``'s model with its int8 image tower (made once, as an install on VNNI does)."""
    from ..models import freebatch
    from ..models.quantize import quantize_folder
    from ..models.runtime import OnnxModel

    if not (folder / "image.int8.onnx").is_file():
        quantize_folder(folder)
    model = OnnxModel(folder, int8=True, prefer_cpu=True, load_text=False)
    freed, _ = freebatch.image_graph(folder, model.spec, model.parts.image)
    if model.image_graph.batch is not None and freed.batch is None:
        # made from the batch-1 graph by an older photosift: made again from the freed one
        (folder / "image.int8.onnx").unlink()
        quantize_folder(folder)
        model = OnnxModel(folder, int8=True, prefer_cpu=True, load_text=False)
    return model


def run(args, out=None) -> dict:
    from ..models.runtime import OnnxModel

    log = bench_log(out)
    from ..models.cpu import describe

    flags = describe()
    log(f"adapters: each layout's towers vs photosift's own export of the same architecture (CPU: {flags})")
    results: dict[str, dict] = {"cpu": flags}
    own_cache: dict[str, tuple] = {}
    for layout, key in CASES.items():
        folder = layout_folder(layout, log)
        if key not in own_cache:
            own = random_weight_folder(key, log)
            own_cache[key] = (OnnxModel(own, prefer_cpu=True), _int8(own))
        theirs = OnnxModel(folder, prefer_cpu=True)
        exported = None
        if theirs.parts.image.batch is not None:  # Immich's: as exported, too
            exported = OnnxModel(folder, prefer_cpu=True, load_text=False, free_batch=False)
        best = measure(theirs, own_cache[key][0], n_images=16 if args.quick else 48,
                       rounds=2 if args.quick else 3, a8=_int8(folder), b8=own_cache[key][1],
                       a1=exported)  # fmt: skip
        row = {k: {"layout": round(best["a"][k], 2), "own": round(best["b"][k], 2),
                   "ratio": round(best["a"][k] / best["b"][k], 3)} for k in best["a"]}  # fmt: skip
        results[layout] = {"model": key, **row}
        log(f"  {layout:16s} {key}:")
        for k, v in row.items():
            log(f"    {k:16s} {v['layout']:8.2f} vs own {v['own']:8.2f}  ratio {v['ratio']:.3f}")
    return results
