"""`photosift bench tagging`: re-tag speed, and tagging quality on the demo model's world.

Speed: 100,000 stored vectors against a 1,000-label vocabulary, re-tagged from the
database alone (label vectors come from their stored cache; the stand-in model below
has no text encoder at all, so a call to it would fail the run). Timed: the first run
(every tag new) and a run after every threshold moved (a diff is written).

Quality: scenes of ``training/demo/world.py`` written to JPEG files, indexed by the engine
with the demo model, tagged with the ``shapes-world`` starter vocabulary (colours,
shapes, counts, positions). The truth of every label on every scene is known, so
precision and recall per attribute kind are exact. Half the scenes are a review pool,
the other half are scored. A simulated user then answers, per label, the pool photos the
app is least sure of (closest to the threshold) until 5, then 20, confirmations per
label (rejecting the wrong ones on the way); precision and recall are measured again on
the scored half, which no answer touched.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .common import bench_log

# "unnamed": things drawn in the demo model's training images but never named in its
# captions (the reserve shapes, the textures): the text prior knows nothing, like
# "my cat Miso", so only the user's confirmations can teach them.
KINDS = ("colour", "shape", "count", "position", "unnamed")


def shapes_world_labels() -> list[tuple[str, dict, str, tuple]]:
    """(label, json spec, attribute kind, meaning clause args) for the demo world."""
    from training.demo import captions, world

    out = []
    for c in world.COLOURS:
        a = captions._article(c)
        out.append((c, {"name": c, "prompts": [f"{a} {c} object", f"something {c}", f"{a} {c} shape", f"{c} thing"]},
                    "colour", ((("colour", c),), None)))  # fmt: skip
    for k in world.NAMED_KINDS:
        a = captions._article(k)
        out.append((k, {"name": k, "prompts": [f"{a} {k}", k, f"a picture with {a} {k}", f"{a} {k} shape"]},
                    "shape", ((("kind", k),), None)))  # fmt: skip
    words = {1: "one", 2: "two", 3: "three", 4: "four"}
    for n, w in words.items():
        prompts = (["one object", "a single object", "just one object"] if n == 1
                   else [f"{w} objects", f"{w} shapes", f"there are {w} objects"])  # fmt: skip
        name = "one object" if n == 1 else f"{w} objects"
        out.append((name, {"name": name, "prompts": prompts}, "count", ((), n)))
    for attr, v, phrases in (
        ("hpos", "left", ["on the left", "on the left side", "at the left"]),
        ("hpos", "centre", ["in the centre", "in the center", "in the centre column"]),
        ("hpos", "right", ["on the right", "on the right side", "at the right"]),
        ("vpos", "top", ["at the top", "near the top", "in the upper part"]),
        ("vpos", "bottom", ["at the bottom", "near the bottom", "in the lower part"]),
    ):
        name = f"something {phrases[0]}"
        prompts = [f"{noun} {p}" for noun in ("something", "an object", "a shape") for p in phrases]
        out.append((name, {"name": name, "prompts": prompts}, "position", (((attr, v),), None)))
    for name, prompts, attrs in (
        ("ring", ["a ring", "a ring shape", "a picture with a ring"], (("kind", "ring"),)),
        ("moon", ["a moon", "a crescent moon", "a moon shape"], (("kind", "moon"),)),
        (
            "striped",
            ["a striped object", "something striped", "a striped shape"],
            (("texture", "striped"),),
        ),
        (
            "dotted",
            ["a dotted object", "something dotted", "a polka-dot shape"],
            (("texture", "dotted"),),
        ),
    ):
        out.append((name, {"name": name, "prompts": prompts}, "unnamed", (attrs, None)))
    return out


def shapes_world_vocabulary_json() -> dict:
    return {
        "name": "shapes-world",
        "description": "Colours, shapes, counts and positions of the demo model's procedural world "
        "(training/demo/world.py). Made for the bundled demo model; real photos need a real model.",
        "templates": ["{}", "a picture of {}", "an image of {}"],
        "labels": [spec for _, spec, _, _ in shapes_world_labels()],
    }


# -- speed -----------------------------------------------------------------------------------


class _StoredOnlyModel:
    """A model whose text side is never needed: label vectors are already stored."""

    def __init__(self, dim: int):
        from ..models.registry import Registry

        # SigLIP-B/16's own scale and bias (exp(t) about 112, b about -16.5): realistic score spreads.
        self.spec = (
            Registry.load()
            .get("photosift-demo")
            .with_(key="bench-stored-only", embed_dim=dim, logit_scale=112.0, logit_bias=-16.5)
        )

    def encode_texts(self, texts):
        raise AssertionError("re-tagging must not run the text encoder")


def bench_speed(n: int, labels: int, dim: int, workdir: Path, log=print) -> dict:
    from ..store.db import LibraryDB, NewPhoto
    from ..tags import tagstore as S
    from ..tags.tagging import Tagger, texts_sig
    from ..tags.vocab import make_vocabulary, prompt_texts

    rng = np.random.default_rng(0)
    db = LibraryDB(workdir / "speed.db")
    space = db.space_id("bench", dim)
    # Photos built as mixtures of a few label directions plus noise, so tags are sparse and
    # realistic in number (about 1-3 per photo), as with real vocabularies.
    t = rng.standard_normal((labels, dim)).astype(np.float32)
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    folder = db.add_folder(str(workdir))
    t0 = time.perf_counter()
    for s in range(0, n, 10_000):
        m = min(10_000, n - s)
        pick = rng.integers(0, labels, (m, 2))
        x = 0.22 * t[pick].sum(1) + rng.standard_normal((m, dim)).astype(np.float32) / np.sqrt(dim)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        db.commit_batch(
            space,
            [NewPhoto(f"/b/{s + i}.jpg", folder, 1, 1, f"h{s + i}", {}, x[i]) for i in range(m)],
        )
    t_fill = time.perf_counter() - t0
    vocab = make_vocabulary("bench", [f"label {i}" for i in range(labels)])
    sv = S.create(db, vocab)
    model = _StoredOnlyModel(dim)
    tg = Tagger(db, model, space)
    S.save_text_vectors(db, tg.model_id, [(sl.id, texts_sig(prompt_texts(sl.label, sv.vocab.templates)), t[i])
                                          for i, sl in enumerate(sv.labels)])  # fmt: skip
    tg.vectors()  # load the stored vectors once (a running engine keeps them)
    t0 = time.perf_counter()
    ids, x = tg.vectors()
    plan = tg.plan(S.load(db, "bench"))
    t_plan = time.perf_counter() - t0
    t0 = time.perf_counter()
    keys = tg._compute(plan, ids, x)
    t_compute = time.perf_counter() - t0
    # The floor on this machine, now: the bare matrix product of the same sizes. The shared
    # CPU's load changes from run to run, so the ratio is what carries over.
    t0 = time.perf_counter()
    for s in range(0, len(x), 16_384):
        x[s : s + 16_384] @ plan.t.T
    t_matmul = time.perf_counter() - t0
    first = tg.run("bench")
    # Move every label's threshold a little: the next run writes only the difference.
    db.conn.execute("UPDATE vocabularies SET threshold=0.15, version=version+1 WHERE name='bench'")
    second = tg.run("bench")
    res = dict(
        photos=n, labels=labels, dim=dim, fill_s=round(t_fill, 1), plan_s=round(t_plan, 3),
        score_s=round(t_compute, 3), matmul_s=round(t_matmul, 3),
        gflops=round(2 * n * labels * dim / t_matmul / 1e9, 1), tags=len(keys),
        first_run_s=round(first.seconds, 3), first_added=first.added,
        retag_after_threshold_change_s=round(second.seconds, 3), retag_added=second.added,
        retag_removed=second.removed, load_average=[round(v, 2) for v in os.getloadavg()],
    )  # fmt: skip
    db.close()
    log(f"  load average {res['load_average']} (the machine's other work slows every number)")
    log(f"  bare matrix product {t_matmul:.2f} s ({res['gflops']} GFLOP/s on this machine now)")
    log(f"  re-tag {n:,} x {labels:,} labels, d={dim}: score {t_compute:.2f} s, first run (all {first.added:,} tags "
        f"new) {first.seconds:.2f} s, after a threshold change {second.seconds:.2f} s "
        f"(+{second.added:,} / -{second.removed:,})")  # fmt: skip
    return res


# -- quality ------------------------------------------------------------------------------------


@dataclass
class QualitySpec:
    n: int = 800
    budgets: tuple[int, ...] = (5, 20)
    seed: int = 3
    big_labels: bool = True  # also time a 10,000-label vocabulary


def _prf(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float, float]:
    tp = float((pred & truth).sum())
    p = tp / max(1.0, float(pred.sum()))
    r = tp / max(1.0, float(truth.sum()))
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def quality_world(
    qs: QualitySpec, workdir: Path, *, model_key: str = "photosift-demo", log=print
) -> dict:
    import json

    from training.demo import world

    from ..library import Library
    from ..settings import Settings
    from ..tags import tagstore as S
    from ..tags.vocab import parse

    scenes = world.scenes("test", qs.n, seed=qs.seed)
    root = workdir / "photos"
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(qs.seed)
    paths = []
    for i, sc in enumerate(scenes):
        h, w = [(96, 96), (120, 160), (160, 120), (144, 192)][rng.integers(4)]
        p = root / f"scene_{i:05d}.jpg"
        world.render(sc, (h, w)).save(p, quality=92)
        paths.append(str(p))
    lib = Library(Settings(data_dir=workdir / "data", batch_size=64), model_key=model_key)
    try:
        lib.add_folder(root)
        rep = lib.scan()
        log(f"  indexed {rep.embedded} world photos ({rep.failed} failed)")
        spec = shapes_world_labels()
        vocab = parse(json.dumps(shapes_world_vocabulary_json()), "json")
        S.create(lib.db, vocab)
        tg = lib.tagger()
        tg.run("shapes-world")
        sv = S.load(lib.db, "shapes-world")
        image_ids = np.array([lib.db.image_id_for_path(p) for p in paths])
        meanings = [world.Meaning((world.Clause(*args),)) for _, _, _, args in spec]
        truth = world.match_matrix(scenes, meanings)  # [scenes, labels]
        pool = np.arange(qs.n) < qs.n // 2
        evals = ~pool
        kinds = [k for _, _, k, _ in spec]

        def measure() -> dict:
            out = {}
            pred = np.zeros_like(truth)
            for j, sl in enumerate(sv.labels):
                got = S.effective_ids(lib.db, tg.model_id, sl.id)
                pred[:, j] = np.isin(image_ids, list(got))
            for kind in KINDS:
                cols = [j for j, k in enumerate(kinds) if k == kind]
                p, r, f = _prf(pred[evals][:, cols], truth[evals][:, cols])
                out[kind] = dict(precision=round(p, 3), recall=round(r, 3), f1=round(f, 3))
            p, r, f = _prf(pred[evals], truth[evals])
            out["all"] = dict(precision=round(p, 3), recall=round(r, 3), f1=round(f, 3))
            return out

        results = {"0": measure()}
        log(f"  0 confirmations per label: {_line(results['0'])}")
        asked = np.zeros_like(truth)
        confirmed = np.zeros(len(spec), int)
        ids_all, x_all = tg.vectors()
        row_of = {int(i): n for n, i in enumerate(ids_all)}
        pool_rows = np.array([row_of[int(image_ids[i])] for i in np.nonzero(pool)[0]])
        pool_scenes = np.nonzero(pool)[0]
        for budget in qs.budgets:
            for j, sl in enumerate(sv.labels):
                while confirmed[j] < budget:
                    plan = tg.plan(S.load(lib.db, "shapes-world"))
                    z = plan.logits(tg.scoring, x_all[pool_rows])[:, j]
                    order = np.argsort(np.abs(z - plan.thr[j]))  # least sure first
                    todo = [i for i in order if not asked[pool_scenes[i], j]]
                    if not todo or asked[pool, j].sum() >= 3 * budget:
                        break
                    # Answer a few at a time, as a user does from the review grid.
                    batch = todo[:4]
                    conf = [
                        int(image_ids[pool_scenes[i]]) for i in batch if truth[pool_scenes[i], j]
                    ]
                    rej = [
                        int(image_ids[pool_scenes[i]])
                        for i in batch
                        if not truth[pool_scenes[i], j]
                    ]
                    take = budget - confirmed[j]
                    conf = conf[:take]
                    for i in batch:
                        asked[pool_scenes[i], j] = True
                    if conf:
                        S.set_answers(lib.db, sl.id, conf, S.CONFIRMED)
                    if rej:
                        S.set_answers(lib.db, sl.id, rej, S.REJECTED)
                    confirmed[j] += len(conf)
                tg.recalibrate(S.load(lib.db, "shapes-world"), sl)
            tg.run("shapes-world")
            results[str(budget)] = measure()
            n_ans = S.answers(lib.db, [sl.id for sl in sv.labels])
            results[str(budget)]["answers"] = dict(
                confirmed=int(sum(len(a) for a, _ in n_ans.values())),
                rejected=int(sum(len(b) for _, b in n_ans.values())),
            )
            log(f"  {budget} confirmations per label: {_line(results[str(budget)])}")
        big = big_vocabulary(lib, log) if qs.big_labels else None
        return dict(photos=qs.n, scored=int(evals.sum()), labels=len(spec), by_confirmations=results,
                    big_vocabulary=big)  # fmt: skip
    finally:
        lib.close()


def big_vocabulary(lib, log, n: int = 10_000) -> dict:
    """A 10,000-label vocabulary, default templates (50,000 prompts): first tagging runs the
    text encoder once per prompt; a re-tag after an edit reuses every stored label vector."""
    from ..tags import tagstore as S
    from ..tags.vocab import make_vocabulary

    words = ["red", "blue", "green", "small", "large", "striped", "round", "bright", "dark", "old"]
    things = [
        "circle",
        "square",
        "star",
        "heart",
        "cross",
        "triangle",
        "ring",
        "moon",
        "shape",
        "object",
    ]
    names = [f"{words[i % 10]} {things[i // 10 % 10]} {i // 100}" for i in range(n)]
    t0 = time.perf_counter()
    S.create(lib.db, make_vocabulary("big", names))
    tg = lib.tagger()
    first = tg.run("big")
    t_first = time.perf_counter() - t0
    S.update(lib.db, "big", add=[make_vocabulary("x", ["one more label"]).labels[0]])
    second = tg.run("big")
    log(f"  {n:,}-label vocabulary: first tagging (encodes {5 * n:,} prompts) {t_first:.1f} s, "
        f"re-tag after adding a label {second.seconds:.2f} s ({second.assigned:,} tags)")  # fmt: skip
    S.delete(lib.db, "big")
    return dict(
        labels=n, first_s=round(t_first, 1), retag_s=round(second.seconds, 2), tags=first.assigned
    )


def _line(r: dict) -> str:
    return "; ".join(
        f"{k} P {v['precision']:.2f} R {v['recall']:.2f}"
        for k, v in r.items()
        if k in (*KINDS, "all")
    )


def run(args, out=None) -> dict:
    log = bench_log(out)
    n, labels = (20_000, 200) if args.quick else (100_000, 1000)
    res: dict = {}
    with tempfile.TemporaryDirectory() as d:
        log(f"tagging bench: re-tag speed ({n:,} vectors x {labels:,} labels)")
        res["speed"] = [bench_speed(n, labels, dim, Path(d) / str(dim), log) for dim in (512,)]
    with tempfile.TemporaryDirectory() as d:
        qs = QualitySpec(n=200, big_labels=False) if args.quick else QualitySpec()
        log(
            f"tagging bench: quality on the demo world ({qs.n} photos, half answered from, half scored)"
        )
        res["quality"] = quality_world(
            qs, Path(d), model_key=args.model or "photosift-demo", log=log
        )
    return res
