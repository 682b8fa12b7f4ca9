"""Search quality through the public product path, on the procedural world.

Held-out scenes are written to disk as real files (JPEG mostly; some with an
EXIF orientation tag over rotated pixels; some PNG, WebP, TIFF), indexed by the
engine's Library exactly as a user's folder is, and queried with
``Library.search``. Because every scene's truth is known, every result can be
scored:

* caption text->image recall@1/5/10 for galleries of 100 and 1,000 photos;
* single-attribute queries ("a red object", "a triangle", "three objects",
  "something on the left"): precision@10 per attribute kind;
* zero-shot accuracy per attribute, from the stored image vectors;
* held-out colour-shape compositions vs seen ones (precision@10, base rates);
* EXIF invariance: the same scenes upright and EXIF-rotated, top-10 overlap.

The same function, with a small world, is the fast test that fails when a
pipeline bug (swapped channels, missing EXIF transpose, wrong normalisation)
creeps in.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..library import DEMO_MODEL, Library
from ..search import Filters, Query
from ..settings import Settings
from .common import bench_log

# stored pixels for an orientation tag, so that a viewer applying the tag shows the upright scene
_STORE_ROTATED = {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}
_ODD_FORMATS = (("png", "PNG"), ("webp", "WEBP"), ("tif", "TIFF"))


@dataclass
class WorldSpec:
    n_test: int = 1000
    n_comp: int = 500
    n_rotated: int = 100  # scenes also written EXIF-rotated, for the invariance check
    odd_every: int = 10  # every n-th test scene in an odd format
    rotate_every: int = 7  # every n-th test scene stored rotated with an EXIF tag
    seed: int = 0
    k: int = 10


def save_scene(img: Image.Image, path: Path, orientation: int | None = None) -> None:
    fmt = {"jpg": "JPEG", "png": "PNG", "webp": "WEBP", "tif": "TIFF"}[path.suffix[1:]]
    kw: dict = {"quality": 92} if fmt in ("JPEG", "WEBP") else {}
    if fmt == "WEBP":
        kw["quality"] = 95
    if orientation:
        img = img.transpose(_STORE_ROTATED[orientation])
        exif = Image.Exif()
        exif[0x0112] = orientation
        kw["exif"] = exif
    img.save(path, fmt, **kw)


def write_world(root: Path, ws: WorldSpec, *, all_rotated: bool = False) -> dict:
    """Render the held-out world to files. Returns path -> (split, index) and the scenes."""
    from training.demo import evaluation as demo_eval
    from training.demo import world

    test = world.scenes("test", ws.n_test, seed=ws.seed)
    comp = world.scenes("compositions", ws.n_comp, seed=ws.seed)
    where: dict[str, tuple[str, int]] = {}
    sizes = demo_eval._render_sizes(ws.n_test, ws.seed)
    orientations = (6, 8, 3)
    for i, (s, size) in enumerate(zip(test, sizes, strict=True)):
        sub = "test/first100" if i < 100 else "test/rest"
        ext, orient = "jpg", None
        if all_rotated or i % ws.rotate_every == 3:
            orient = orientations[i % 3]
        elif i % ws.odd_every == 5:
            ext = _ODD_FORMATS[(i // ws.odd_every) % len(_ODD_FORMATS)][0]
        p = root / sub / f"test_{i:05d}.{ext}"
        p.parent.mkdir(parents=True, exist_ok=True)
        save_scene(world.render(s, size), p, orient)
        where[str(p)] = ("test", i)
    for i, (s, size) in enumerate(zip(comp, demo_eval._render_sizes(ws.n_comp, ws.seed + 1), strict=True)):
        p = root / "compositions" / f"comp_{i:05d}.jpg"
        p.parent.mkdir(parents=True, exist_ok=True)
        save_scene(world.render(s, size), p)
        where[str(p)] = ("compositions", i)
    for i in range(min(ws.n_rotated, ws.n_test)):
        img = world.render(test[i], sizes[i])
        for name, orient in (("upright", None), ("rotated", orientations[i % 3])):
            p = root / "pairs" / name / f"pair_{i:05d}.jpg"
            p.parent.mkdir(parents=True, exist_ok=True)
            save_scene(img, p, orient)
            where[str(p)] = (f"pair-{name}", i)
    return dict(where=where, test=test, comp=comp)


def _ids(hits, where, split_prefix=None) -> list[int]:
    return [where[h.path][1] for h in hits if h.path in where]


def evaluate_library(lib: Library, root: Path, built: dict, ws: WorldSpec) -> dict:
    """Every metric, by searching the indexed world through Library.search."""
    from training.demo import captions, world

    where, test, comp = built["where"], built["test"], built["comp"]
    folder = lambda *parts: Filters(folders=[str(root.joinpath(*parts))])  # noqa: E731
    out: dict = {}

    # attribute queries over the 1,000-photo test gallery
    queries = captions.attribute_queries()
    truth = world.match_matrix(test, [q.meaning for q in queries])  # [scenes, queries]
    per_kind: dict[str, list[float]] = {}
    by_query = {}
    for qi, q in enumerate(queries):
        hits = lib.search(Query(text=q.text, k=ws.k, filters=folder("test")))
        got = _ids(hits, where)
        p = float(np.mean([truth[i, qi] for i in got])) if got else 0.0
        per_kind.setdefault(q.kind, []).append(p)
        by_query[q.text] = dict(p_at_10=round(p, 3), base_rate=round(float(truth[:, qi].mean()), 3))
    out["attributes"] = {
        k: dict(mean_p_at_10=round(float(np.mean(v)), 3), min_p_at_10=round(float(np.min(v)), 3))
        for k, v in per_kind.items()
    }
    out["attribute_queries"] = by_query

    # caption recall: galleries of 100 (a subfolder) and of all test photos
    rng = np.random.default_rng([ws.seed, 555])
    caps = [captions.caption_detailed(s, rng).text for s in test]
    recall = {}
    for name, n, filt in (("gallery_100", min(100, ws.n_test), folder("test", "first100")),
                          (f"gallery_{ws.n_test}", ws.n_test, folder("test"))):  # fmt: skip
        ranks = []
        for i in range(min(n, 300)):  # 300 caption queries are plenty for a stable recall
            got = _ids(lib.search(Query(text=caps[i], k=10, filters=filt)), where)
            ranks.append(got.index(i) if i in got else 10)
        ranks = np.array(ranks)
        recall[name] = {f"R@{k}": round(float((ranks < k).mean()), 3) for k in (1, 5, 10)}
    out["caption_recall"] = recall

    # zero-shot accuracy per attribute, from the stored vectors (what tagging will use)
    model = lib.model()
    test_paths = {i: p for p, (s, i) in where.items() if s == "test"}
    image_ids = {i: lib.db.image_id_for_path(p) for i, p in test_paths.items()}
    vecs = lib.db.vectors_for(lib.space_id, [v for v in image_ids.values() if v is not None])
    zs = {}
    single = [i for i, s in enumerate(test) if s.count == 1 and image_ids.get(i) in vecs]
    tasks = {
        "colour": ([f"{captions._article(c)} {c} object" for c in world.COLOURS],
                   lambda s: world.COLOURS.index(s.objects[0].colour), single),
        "shape": ([f"{captions._article(k)} {k}" for k in world.NAMED_KINDS],
                  lambda s: world.NAMED_KINDS.index(s.objects[0].kind),
                  [i for i in single if test[i].objects[0].kind in world.NAMED_KINDS]),
        "count": (["one object", "two objects", "three objects", "four objects"],
                  lambda s: s.count - 1, [i for i in range(len(test)) if image_ids.get(i) in vecs]),
        "position": (["something on the left", "something in the centre", "something on the right"],
                     lambda s: world.HPOS.index(s.objects[0].hpos), single),
    }  # fmt: skip
    for name, (prompts, label, idx) in tasks.items():
        t = model.encode_texts(prompts)
        img = np.stack([vecs[image_ids[i]] for i in idx])
        pred = (img @ t.T).argmax(1)
        zs[name] = round(float(np.mean(pred == np.array([label(test[i]) for i in idx]))), 3)
    out["zero_shot_accuracy"] = zs

    # held-out compositions against seen ones, in a gallery of compositions + test scenes
    mixed = comp + test[: ws.n_comp]
    mixed_where = {p: (s, i if s == "compositions" else ws.n_comp + i)
                   for p, (s, i) in where.items() if s == "compositions" or (s == "test" and i < ws.n_comp)}  # fmt: skip
    filt = Filters(folders=[str(root / "compositions"), str(root / "test")])
    comp_res = {}
    for name, qs in (("held_out", captions.composition_queries(True)), ("seen", captions.composition_queries(False))):
        t = world.match_matrix(mixed, [q.meaning for q in qs])
        ps = []
        for qi, q in enumerate(qs):
            hits = lib.search(Query(text=q.text, k=ws.k + 200, filters=filt))
            got = [mixed_where[h.path][1] for h in hits if h.path in mixed_where][: ws.k]
            ps.append(float(np.mean([t[i, qi] for i in got])) if got else 0.0)
        comp_res[name] = dict(mean_p_at_10=round(float(np.mean(ps)), 3), base_rate=round(float(t.mean()), 3))
    out["compositions"] = comp_res

    # EXIF invariance: the same scenes upright and rotated-with-tag must retrieve alike
    if ws.n_rotated:
        overlaps = []
        for q in queries:
            a = _ids(lib.search(Query(text=q.text, k=ws.k, filters=folder("pairs", "upright"))), where)
            b = _ids(lib.search(Query(text=q.text, k=ws.k, filters=folder("pairs", "rotated"))), where)
            overlaps.append(len(set(a) & set(b)) / max(1, len(a)))
        out["exif_top10_overlap"] = dict(mean=round(float(np.mean(overlaps)), 3),
                                         min=round(float(np.min(overlaps)), 3))  # fmt: skip
    return out


def run_quality(ws: WorldSpec, workdir: Path, *, model_key: str = DEMO_MODEL, log=lambda s: None) -> dict:
    t0 = time.perf_counter()
    root = workdir / "world"
    built = write_world(root, ws)
    t_write = time.perf_counter() - t0
    lib = Library(Settings(data_dir=workdir / "data", batch_size=64), model_key=model_key)
    try:
        lib.add_folder(root)
        rep = lib.scan()
        t_index = time.perf_counter() - t0 - t_write
        log(f"  wrote {len(built['where'])} photos in {t_write:.1f} s, indexed in {t_index:.1f} s "
            f"({rep.embedded} embedded, {rep.failed} failed)")  # fmt: skip
        res = evaluate_library(lib, root, built, ws)
    finally:
        lib.close()
    res["photos"] = len(built["where"])
    res["failed"] = rep.failed
    res["seconds"] = dict(write=round(t_write, 1), index=round(t_index, 1),
                          total=round(time.perf_counter() - t0, 1))  # fmt: skip
    return res


def table(res: dict) -> str:
    rows = ["metric | value", "--- | ---"]
    for g, r in res["caption_recall"].items():
        rows.append(f"caption {g} R@1 / R@5 / R@10 | {r['R@1']:.3f} / {r['R@5']:.3f} / {r['R@10']:.3f}")
    for k, v in res["attributes"].items():
        rows.append(f"'{k}' queries precision@10 mean (worst) | {v['mean_p_at_10']:.3f} ({v['min_p_at_10']:.3f})")
    for k, v in res["zero_shot_accuracy"].items():
        rows.append(f"zero-shot {k} accuracy | {v:.3f}")
    for k, v in res["compositions"].items():
        rows.append(f"{k.replace('_', '-')} colour-shape pairs precision@10 (base rate) | "
                    f"{v['mean_p_at_10']:.3f} ({v['base_rate']:.3f})")  # fmt: skip
    if "exif_top10_overlap" in res:
        o = res["exif_top10_overlap"]
        rows.append(f"EXIF-rotated vs upright top-10 overlap mean (worst) | {o['mean']:.3f} ({o['min']:.3f})")
    s = res["seconds"]
    rows.append(f"photos / failed / seconds (write, index, total) | {res['photos']} / {res['failed']} / "
                f"{s['write']}, {s['index']}, {s['total']}")  # fmt: skip
    return "\n".join(rows)


def run(args, out=None) -> dict:
    log = bench_log(out)
    ws = WorldSpec(n_test=200, n_comp=100, n_rotated=50) if args.quick else WorldSpec()
    log(f"quality bench: {ws.n_test} held-out scenes, {ws.n_comp} compositions, {ws.n_rotated} rotated pairs")
    with tempfile.TemporaryDirectory() as d:
        res = run_quality(ws, Path(d), model_key=args.model or DEMO_MODEL, log=log)
    if out:
        print("\n" + table(res), file=out)
    return res
