"""Timing of SigLIT fine-tuning with a ViT-B-32-sized text tower (random weights).

``python -m training.finetune.bench [--photos 1000] [--labels 20] [--tunes full,last:2,lora:8]``
prints one JSON object. ``photosift bench finetune`` runs it as a child process (the
engine never imports torch). Weights are random (no pretrained weights can be had on
build machines) and cost exactly what trained ones do; the vectors carry a planted
label structure so that early stopping behaves as on real data.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

WORDS = [
    "receipt",
    "whiteboard",
    "sunset",
    "beach",
    "dog",
    "cat",
    "miso",
    "tofu",
    "garden",
    "kitchen",
    "bicycle",
    "concert",
    "mountain",
    "river",
    "snow",
    "forest",
    "city",
    "street",
    "portrait",
    "baby",
    "cake",
    "car",
    "train",
    "boat",
    "bridge",
]


def vit_b32_text_model(seed: int = 0):
    """open_clip's ViT-B-32 config: the full text tower (12 x 512, context 77, CLIP BPE);
    the image tower shrunk to almost nothing, since SigLIT never runs it."""
    import open_clip
    import torch

    cfg = dict(open_clip.get_model_config("ViT-B-32"))
    cfg["vision_cfg"] = dict(
        cfg["vision_cfg"], layers=1, width=64, head_width=32, image_size=32, patch_size=16
    )
    torch.manual_seed(seed)
    return open_clip.create_model("ViT-B-32", pretrained=None, **cfg)


def planted_data(n: int, n_labels: int, dim: int, seed: int = 0):
    from engine.finetune.dataset import TrainingSet

    rng = np.random.default_rng(seed)
    targets = (rng.random((n, n_labels)) < 0.12).astype(np.int8)
    for j in range(n_labels):  # every label gets enough photos
        targets[rng.choice(n, 15, replace=False), j] = 1
    dirs = rng.standard_normal((n_labels, dim))
    v = rng.standard_normal((n, dim)) * 0.6 + targets @ dirs
    v = (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)
    labels = [f"{WORDS[j % len(WORDS)]} {j}" for j in range(n_labels)]
    return TrainingSet(
        image_ids=np.arange(n), vectors=v, labels=labels,
        texts=[[lab, f"a photo of {lab}"] for lab in labels], targets=targets,
        space="bench", source="bench",
    )  # fmt: skip


def timing(n: int = 1000, n_labels: int = 20, tunes=("full", "last:2", "lora:8"),
           steps: int = 20, full_run: str | None = "last:2", threads: int | None = None) -> dict:  # fmt: skip
    """Seconds per step for each way of tuning, and one complete early-stopped run."""
    from engine.models.clip_bpe import write_clip_tokenizer_json
    from engine.models.registry import TokenizerSpec
    from engine.models.tokenizer import Tokenizer

    from .siglit import FinetuneSettings, finetune

    with tempfile.TemporaryDirectory() as d:
        tok_json = write_clip_tokenizer_json(Path(d) / "tokenizer.json")
        tokenize = Tokenizer.from_file(
            tok_json, TokenizerSpec(kind="clip_bpe", context_length=77)
        ).encode
        data = planted_data(n, n_labels, 512)
        out: dict = {"photos": n, "labels": n_labels, "per_step": {}}
        for tune in tunes:
            model = vit_b32_text_model()
            t0, c0 = time.perf_counter(), time.process_time()
            s = FinetuneSettings(
                tune=tune, max_steps=steps, eval_every=steps, patience=10**6, threads=threads
            )
            r = finetune(model, tokenize, data, s)
            out["per_step"][tune] = rec = dict(
                wall_s_per_step=round((time.perf_counter() - t0) / steps, 4),
                cpu_s_per_step=round((time.process_time() - c0) / steps, 4),
                trainable_params=r.metrics["trainable_params"],
            )
            print(json.dumps({"tune": tune, **rec}), file=sys.stderr, flush=True)  # partial results
        if full_run:
            model = vit_b32_text_model()
            t0, c0 = time.perf_counter(), time.process_time()
            r = finetune(model, tokenize, data, FinetuneSettings(tune=full_run, threads=threads))
            out["complete_run"] = dict(
                tune=full_run, wall_s=round(time.perf_counter() - t0, 2),
                cpu_s=round(time.process_time() - c0, 2), steps=r.metrics["steps"],
                best_step=r.metrics["best_step"], map_before=r.metrics["map_before"],
                map_after=r.metrics["map_after"],
            )  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.finetune.bench")
    ap.add_argument("--photos", type=int, default=1000)
    ap.add_argument("--labels", type=int, default=20)
    ap.add_argument("--tunes", default="full,last:2,lora:8")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument(
        "--complete", default="last:2", help="tuning for one complete run ('' for none)"
    )
    ap.add_argument("--threads", type=int, help="torch threads (default: all cores)")
    a = ap.parse_args(argv)
    res = timing(
        a.photos, a.labels, tuple(a.tunes.split(",")), a.steps, a.complete or None, a.threads
    )
    sys.stdout.write(json.dumps(res) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
