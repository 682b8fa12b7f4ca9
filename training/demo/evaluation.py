"""Held-out evaluation of a model on the procedural world.

Works on any pair of encoders (``images -> unit vectors``, ``texts -> unit
vectors``), so the same numbers come from the torch model in training and from
the exported ONNX model folder through the engine's own runtime. Numpy only at
import time.

Metrics:

* ``caption_recall``: text->image recall@1/5/10, the query being the scene's
  detailed caption, for galleries of 100 and 1,000 held-out scenes.
* ``attributes``: precision@10 of single-attribute queries ("a red object",
  "a triangle", "three objects", "something on the left") over 1,000 held-out
  scenes, per query and per attribute kind (mean and worst), with base rates.
* ``zero_shot``: accuracy of picking the right prompt per attribute on
  single-object scenes (count: on all scenes).
* ``compositions``: precision@10 of held-out colour-kind pairs ("a red star",
  never seen in training) against seen pairs, with base rates.
* ``panorama``: left/right queries over 3:1 panoramas with objects at the edges.
* ``tagging`` (SigLIP-trained models, given their logit scale and bias): the default tag
  threshold for labels typed by name (:func:`captions.label_names` through the vocabulary
  editor's default templates), the one of best F1 on half the scenes, with precision and
  recall at it on the other half, beside the same at the SigLIP family default.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from . import captions, world

Encoder = Callable[[list], np.ndarray]


def _render_sizes(n: int, seed: int) -> list[tuple[int, int]]:
    rng = np.random.default_rng([seed, 4242])
    out = []
    for _ in range(n):
        a = int(rng.integers(96, 192))
        r = rng.random()
        if r < 0.7:
            out.append((a, int(a * rng.uniform(0.8, 1.25))))
        elif r < 0.85:
            out.append((a, int(a * rng.uniform(1.5, 3.0))))
        else:
            out.append((int(a * rng.uniform(1.5, 2.0)), a))
    return out


def _images(scene_list: list[world.Scene], seed: int) -> list[Image.Image]:
    return [
        world.render(s, size)
        for s, size in zip(scene_list, _render_sizes(len(scene_list), seed), strict=True)
    ]


def precision_at(sims: np.ndarray, truth: np.ndarray, k: int = 10) -> np.ndarray:
    """sims, truth: [queries, gallery]; mean truth of each query's top k."""
    top = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(truth, top, axis=1).mean(1)


def _recall(sims: np.ndarray, ks=(1, 5, 10)) -> dict[str, float]:
    # rank of the true image (the diagonal) for each caption
    true = np.diag(sims)[:, None]
    rank = (sims > true).sum(1)
    return {f"R@{k}": float((rank < k).mean()) for k in ks}


def evaluate(
    encode_images: Encoder,
    encode_texts: Encoder,
    *,
    n_gallery: int = 1000,
    seed: int = 0,
    logit: tuple[float, float] | None = None,
) -> dict:
    """All metrics for one model. ``encode_images`` takes PIL images; ``logit``: a SigLIP
    model's (scale, bias), for the tag threshold."""
    rng = np.random.default_rng([seed, 555])
    test = world.scenes("test", n_gallery, seed=seed)
    img = encode_images(_images(test, seed))
    out: dict = {"gallery": n_gallery}

    caps = [captions.caption_detailed(s, rng).text for s in test]
    txt = encode_texts(caps)
    sims = txt @ img.T
    out["caption_recall"] = {
        f"gallery_{n}": _recall(sims[:n, :n]) for n in sorted({min(100, n_gallery), n_gallery})
    }

    queries = captions.attribute_queries()
    truth = world.match_matrix(test, [q.meaning for q in queries]).T  # [queries, gallery]
    p10 = precision_at(encode_texts([q.text for q in queries]) @ img.T, truth)
    per_query = {
        q.text: {"p@10": float(p), "base_rate": float(t.mean())}
        for q, p, t in zip(queries, p10, truth, strict=True)
    }
    kinds: dict[str, dict] = {}
    for kind in ("colour", "shape", "count", "position"):
        vals = [float(p) for q, p in zip(queries, p10, strict=True) if q.kind == kind]
        kinds[kind] = {"mean_p@10": float(np.mean(vals)), "min_p@10": float(np.min(vals))}
    out["attributes"] = {"by_kind": kinds, "by_query": per_query}

    out["zero_shot"] = _zero_shot(test, img, encode_texts)

    comp = world.scenes("compositions", n_gallery // 2, seed=seed)
    mixed = comp + test[: n_gallery // 2]
    mixed_img = np.concatenate([encode_images(_images(comp, seed + 1)), img[: n_gallery // 2]])
    res = {}
    for name, qs in (
        ("held_out", captions.composition_queries(True)),
        ("seen", captions.composition_queries(False)),
    ):
        t = world.match_matrix(mixed, [q.meaning for q in qs]).T
        p = precision_at(encode_texts([q.text for q in qs]) @ mixed_img.T, t)
        res[name] = {
            "mean_p@10": float(p.mean()),
            "base_rate": float(t.mean()),
            "by_query": {q.text: float(v) for q, v in zip(qs, p, strict=True)},
        }
    out["compositions"] = res

    pano = [
        world.sample_scene(
            world.scene_rng(i, "test", seed + 7), "test", layout="edges", n_objects=1
        )
        for i in range(300)
    ]
    pano_img = encode_images([world.render(s, (96, 288)) for s in pano])
    qs = [q for q in queries if q.text in ("something on the left", "something on the right")]
    t = world.match_matrix(pano, [q.meaning for q in qs]).T
    p = precision_at(encode_texts([q.text for q in qs]) @ pano_img.T, t)
    out["panorama"] = {"mean_p@10": float(p.mean()), "base_rate": float(t.mean())}
    if logit is not None:
        out["tagging"] = tag_threshold(test, img, encode_texts, *logit)
    return out


def tag_threshold(
    test: list[world.Scene], img: np.ndarray, encode_texts: Encoder, scale: float, bias: float
) -> dict:
    """The probability threshold at which labels typed by name tag these scenes best.

    Labels are scored as the engine scores them (``engine.tags.tagging``): a label without
    prompts is the mean of its name in the editor's default templates, its probability
    the model's sigmoid. The threshold is the one of best micro-F1 on the first half of
    the scenes (a grid of 0.01 steps); precision, recall and F1 are reported on the
    second half, at it and at the family default."""
    from engine.tags.scoring import FAMILY_THRESHOLD, Scoring, sigmoid
    from engine.tags.vocab import DEFAULT_TEMPLATES, Label, prompt_texts

    family_default = FAMILY_THRESHOLD["siglip"]  # what a model without its own threshold gets
    labels = captions.label_names()
    texts = [prompt_texts(Label(name), DEFAULT_TEMPLATES) for name, _ in labels]
    t = np.stack([encode_texts(ts).mean(0) for ts in texts])
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    prob = sigmoid(Scoring("siglip", scale, bias).logits(img, t))  # [scenes, labels]
    truth = world.match_matrix(test, [m for _, m in labels])
    half = len(test) // 2

    def scores(th: float, rows: slice) -> dict[str, float]:
        got, want = prob[rows] >= th, truth[rows]
        tp, fp, fn = (got & want).sum(), (got & ~want).sum(), (~got & want).sum()
        return {
            "precision": float(tp / max(1, tp + fp)),
            "recall": float(tp / max(1, tp + fn)),
            "f1": float(2 * tp / max(1, 2 * tp + fp + fn)),
        }

    grid = np.round(np.arange(0.02, 0.96, 0.01), 2)
    best = max(grid, key=lambda th: scores(th, slice(0, half))["f1"])
    return {
        "threshold": float(best),
        "labels": len(labels),
        "scenes": len(test) - half,
        **scores(best, slice(half, None)),
        "family_default": {
            "threshold": family_default,
            **scores(family_default, slice(half, None)),
        },
    }


def _zero_shot(test: list[world.Scene], img: np.ndarray, encode_texts: Encoder) -> dict[str, float]:
    single = [i for i, s in enumerate(test) if s.count == 1]
    out = {}
    tasks = {
        "colour": (
            [f"{'an' if c[0] in 'aeiou' else 'a'} {c} object" for c in world.COLOURS],
            lambda s: world.COLOURS.index(s.objects[0].colour),
            single,
        ),
        "shape": (
            [f"{'an' if k[0] in 'aeiou' else 'a'} {k}" for k in world.NAMED_KINDS],
            lambda s: world.NAMED_KINDS.index(s.objects[0].kind),
            [i for i in single if test[i].objects[0].kind in world.NAMED_KINDS],
        ),
        "count": (
            ["one object", "two objects", "three objects", "four objects"],
            lambda s: s.count - 1,
            list(range(len(test))),
        ),
        "hpos": (
            ["something on the left", "something in the centre", "something on the right"],
            lambda s: world.HPOS.index(s.objects[0].hpos),
            single,
        ),
        "vpos": (
            ["something at the top", "something halfway down", "something at the bottom"],
            lambda s: world.VPOS.index(s.objects[0].vpos),
            single,
        ),
    }
    for name, (prompts, label, idx) in tasks.items():
        t = encode_texts(prompts)
        pred = (img[idx] @ t.T).argmax(1)
        out[name] = float(np.mean(pred == np.array([label(test[i]) for i in idx])))
    return out


def _folder_model(folder: Path):
    """An exported model folder through the engine's ONNX runtime: (model, PIL images ->
    unit vectors, its SigLIP (scale, bias) or None)."""
    from engine.models.runtime import OnnxModel

    m = OnnxModel(Path(folder), prefer_cpu=True)
    logit = None
    if m.spec.family == "siglip" and m.spec.logit_scale is not None:
        logit = (m.spec.logit_scale, m.spec.logit_bias or 0.0)

    def images(ims: list) -> np.ndarray:
        out = [
            m.encode_images([m.preprocess(im) for im in ims[i : i + 256]])
            for i in range(0, len(ims), 256)
        ]
        return np.concatenate(out)

    return m, images, logit


def evaluate_folder(folder: Path, **kw) -> dict:
    """Evaluate an exported model folder through the engine's ONNX runtime."""
    m, images, logit = _folder_model(folder)
    if logit is not None:
        kw.setdefault("logit", logit)
    return evaluate(images, m.encode_texts, **kw)


def tag_threshold_folder(folder: Path, *, n: int = 1000, seed: int = 0) -> dict | None:
    """:func:`tag_threshold` of an exported SigLIP model folder on ``n`` held-out scenes
    (the scenes :func:`evaluate` uses); None for a softmax-trained model."""
    m, images, logit = _folder_model(folder)
    if logit is None:
        return None
    test = world.scenes("test", n, seed=seed)
    return tag_threshold(test, images(_images(test, seed)), m.encode_texts, *logit)


def evaluate_torch(model, settings, tokenizer_json: Path, **kw) -> dict:
    """Evaluate the torch model in process, through the run-time preprocessing and tokenizer."""
    import torch
    import torch.nn.functional as F

    from .recipe import demo_preprocess, image_preprocessor, text_tokenizer, tokenizer_spec

    pre = image_preprocessor(demo_preprocess(settings))
    tok = text_tokenizer(tokenizer_json, tokenizer_spec(settings))
    model.eval()
    if getattr(model, "logit_bias", None) is not None:
        kw.setdefault("logit", (model.logit_scale.exp().item(), model.logit_bias.item()))

    def images(ims: list) -> np.ndarray:
        with torch.no_grad():
            out = [
                F.normalize(
                    model.encode_image(
                        torch.from_numpy(np.stack([pre(im) for im in ims[i : i + 256]]))
                    ),
                    dim=-1,
                )
                for i in range(0, len(ims), 256)
            ]
        return torch.cat(out).numpy()

    def texts(ts: list[str]) -> np.ndarray:
        with torch.no_grad():
            return F.normalize(model.encode_text(torch.from_numpy(tok(ts))), dim=-1).numpy()

    return evaluate(images, texts, **kw)


def summary(m: dict) -> str:
    """A small markdown table of the headline numbers."""
    rows = ["| metric | value |", "| --- | --- |"]
    for g, r in m["caption_recall"].items():
        rows.append(
            f"| caption {g} R@1 / R@5 / R@10 | {r['R@1']:.3f} / {r['R@5']:.3f} / {r['R@10']:.3f} |"
        )
    for k, v in m["attributes"]["by_kind"].items():
        rows.append(
            f"| {k} queries p@10 mean (worst) | {v['mean_p@10']:.3f} ({v['min_p@10']:.3f}) |"
        )
    for k, v in m["zero_shot"].items():
        rows.append(f"| zero-shot {k} accuracy | {v:.3f} |")
    for k, v in m["compositions"].items():
        rows.append(
            f"| {k.replace('_', '-')} colour-kind pairs p@10 (base rate) | {v['mean_p@10']:.3f} ({v['base_rate']:.3f}) |"
        )
    p = m["panorama"]
    rows.append(
        f"| 3:1 panoramas, edge objects, left/right p@10 (base rate) | {p['mean_p@10']:.3f} ({p['base_rate']:.3f}) |"
    )
    if "tagging" in m:
        t, d = m["tagging"], m["tagging"]["family_default"]
        rows.append(
            f"| tags by label name: threshold, P / R (at the SigLIP default {d['threshold']:g}) "
            f"| {t['threshold']:g}, {t['precision']:.3f} / {t['recall']:.3f} "
            f"({d['precision']:.3f} / {d['recall']:.3f}) |"
        )
    return "\n".join(rows)
