"""The demo model's recipe: the settings of a training run and what follows from them (the
open_clip architecture, the preprocessing and tokenizer specs the model folder records), and
the run-time preprocessing and tokenizer training feeds it, so that the model learns from
exactly what the app gives it. Used by pretraining, evaluation and the bundled folder alike.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.models.registry import Preprocess, TokenizerSpec

LOSSES = ("clip", "siglip")


@dataclass(frozen=True)
class Settings:
    """Everything that determines a training run (saved beside the checkpoint)."""

    loss: str = "siglip"
    seed: int = 0
    # model
    # Image tower: "resnet" is open_clip's ModifiedResNet (CLIP's RN: conv stages,
    # attention pooling); "vit" a VisionTransformer. Measured here at equal CPU time,
    # the small ViT learned colour, count and position but no shapes at all (a linear
    # probe of its embedding told six kinds apart at 22%, chance 17%); convolutions
    # learn shapes in a few hundred steps.
    vision: str = "resnet"
    image_size: int = (
        96  # resnet: divisible by 32; 96 px gives a 3x3 grid to pool, like the world's
    )
    patch_size: int = 8  # vit only
    # resnet: the attention pool's position table starts this many times open_clip's scale
    # (norm ~1 per token). Beside layer-4 features of norm ~15 it told the pool nothing about
    # where a feature sits, and AdamW with weight decay never grew it (1.06 after a run):
    # a linear probe read left/centre/right off the image vectors at 0.55 (chance 0.33).
    # At 10x it reads 0.99; 30x made training unstable (caption R@10 0.08).
    pool_position_scale: float = 10.0
    vision_width: int = 24  # resnet: stem width (stages are 4x..32x); vit: token width
    vision_layers: int = 1  # resnet: blocks per stage; vit: transformer layers
    # resnet only: blocks per stage, overriding vision_layers (e.g. (1, 2, 2, 1))
    stage_blocks: tuple[int, int, int, int] | None = None
    text_width: int = 128
    text_layers: int = 2
    embed_dim: int = 128
    context_length: int = 64
    vocab_size: int = 2048  # upper bound; the trained BPE may stop earlier
    # data
    n_train: int = 24_000  # scenes, rendered once; captions are redrawn every epoch
    # Every scene comes with a twin that differs only in its kinds. Colour and position
    # alone tell most scenes apart, so without twins shapes go unlearned. (Adding a
    # mirrored third, ``world.mirrored``, was measured worse: shape p@10 0.67 vs 0.77.)
    twins: bool = True
    # ... and a position twin: the same scene with every object at the opposite place
    # (``world.opposite``), so captions' position words become necessary.
    position_twins: bool = False
    render_short_side: tuple[int, int] = (96, 160)  # images are drawn larger, then preprocessed
    # optimisation
    steps: int = 1400  # about 13 minutes with the render on a 2-core AVX-512/AMX CPU
    batch_size: int = 128  # small batches, more updates: the budget is CPU minutes
    lr: float = 1e-3
    # siglip: the starting temperature t (logits are t * cosine + b). AdamW moves log t by
    # about lr a step, so over a CPU-minutes run t stays near where it starts.
    init_temperature: float = 10.0
    warmup: int = 50
    weight_decay: float = 0.1
    # bfloat16 autocast. None: only where the CPU computes bf16 natively (avx512_bf16 or
    # AMX), where it measured about 1.3x faster. Without it (AVX2-only CPUs) torch emulates
    # bf16, measured 10x slower per step on an AVX2 EPYC (23 vs 2.3 CPU-s).
    bf16: bool | None = None
    # NHWC convolutions (resnet only): measured about 1.6x faster per step on this CPU
    # with bf16, so the same CPU minutes buy more steps.
    channels_last: bool = True
    threads: int = 2
    workers: int = 2  # processes that render the training set
    resample_captions: bool = True  # False: every epoch sees the same captions (tests)
    # How often each caption form is drawn ((form, share) pairs, see captions.CAPTION_FORMS),
    # and which attribute single-attribute captions name (colour, kind, count, position,
    # size). Shapes are what the image tower learns last, and only from captions that name
    # them: at 500 steps, raising the kind share of attribute captions from 0.35 to 0.65 and
    # 0.75 raised shape mAP from 0.54 to 0.64 and 0.75 (shape-query AP over 1,000 held-out
    # scenes), colour unchanged; fewer full captions cost caption recall, so they keep 0.3.
    # With the position table above, position words need captions of their own: position
    # 0.07 -> 0.22 (kind 0.75 -> 0.6) took zero-shot left/centre/right from 0.41 to 1.0.
    # "label" captions are what tagging asks ("a close-up photo of a red."): without them
    # labels typed in the vocabulary editor scored 0.14-0.24 on photos that have them.
    caption_mix: tuple[tuple[str, float], ...] = (
        ("full", 0.3),
        ("object", 0.13),
        ("attribute", 0.4),
        ("label", 0.1),
        ("counted", 0.07),
    )
    attribute_weights: tuple[float, ...] = (0.08, 0.6, 0.07, 0.22, 0.03)

    @classmethod
    def smoke(cls, loss: str = "siglip") -> Settings:
        """Tiny everything: a few seconds, for tests."""
        return cls(
            loss=loss,
            vision="resnet",
            image_size=32,
            patch_size=8,
            vision_width=8,
            vision_layers=1,
            text_width=32,
            text_layers=1,
            embed_dim=32,
            context_length=64,
            vocab_size=512,
            n_train=32,
            render_short_side=(32, 48),
            steps=30,
            batch_size=32,
            lr=3e-3,
            warmup=0,
            weight_decay=0.0,
            twins=False,
            bf16=False,
            channels_last=False,
            threads=1,
            workers=0,
            resample_captions=False,
        )


def resnet_layers(s: Settings) -> list[int]:
    """Residual blocks in each of the four ModifiedResNet stages."""
    return list(s.stage_blocks) if s.stage_blocks else [s.vision_layers] * 4


def demo_preprocess(s: Settings) -> Preprocess:
    """Squash, not crop: a crop would cut away objects near the edges, and with
    them the truth of captions such as "something on the left"."""
    return Preprocess(
        size=(s.image_size, s.image_size),
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        interpolation="bicubic",
        resize_mode="squash",
    )


def tokenizer_spec(s: Settings) -> TokenizerSpec:
    return TokenizerSpec(kind="hf", context_length=s.context_length)


def model_config(s: Settings, vocab_size: int) -> dict:
    """An open_clip ``model_cfg`` (what open_clip_config.json holds)."""
    cfg = {
        "embed_dim": s.embed_dim,
        "vision_cfg": {
            "image_size": s.image_size,
            "patch_size": s.patch_size,
            "width": s.vision_width,
            "layers": s.vision_layers,
            "head_width": 32,
            "mlp_ratio": 4.0,
        }
        if s.vision == "vit"
        else {
            "image_size": s.image_size,
            "width": s.vision_width,
            "layers": resnet_layers(s),  # a list selects open_clip's ModifiedResNet
        },
        "text_cfg": {
            "context_length": s.context_length,
            "vocab_size": vocab_size,
            "width": s.text_width,
            "heads": max(1, s.text_width // 32),
            "layers": s.text_layers,
            "pad_id": 0,
            # argmax pooling reads the position of the highest id: the tokenizer's <end>
            "pool_type": "argmax",
        },
    }
    if s.loss == "siglip":
        # SigLIP starts at t = 10, b = -10: right for one positive among 32k. Here a
        # caption is true of about a fifth of a batch ("a red object"), so b starts
        # near that prior's log-odds; from -10 it would crawl there for most of the run.
        cfg["init_logit_scale"] = math.log(s.init_temperature)
        cfg["init_logit_bias"] = -2.0
    return cfg


def build_model(cfg: dict, seed: int = 0):
    """A fresh open_clip CLIP from a config dict, deterministic from ``seed``."""
    import torch
    from open_clip.model import CLIP

    torch.manual_seed(seed)
    return CLIP(**cfg)


def init_model(s: Settings, vocab_size: int):
    """The model a training run starts from: ``build_model``, then the run's own init."""
    import torch

    model = build_model(model_config(s, vocab_size), s.seed)
    if s.vision == "resnet" and s.pool_position_scale != 1.0:
        with torch.no_grad():
            model.visual.attnpool.positional_embedding.mul_(s.pool_position_scale)
    return model


def image_preprocessor(p: Preprocess) -> Callable:
    """The run-time preprocessing (PIL image -> float32 [3, H, W])."""
    from engine.models.preprocess import preprocess

    return lambda image: preprocess(image, p)


def text_tokenizer(tokenizer_json: Path, spec: TokenizerSpec) -> Callable[[list[str]], np.ndarray]:
    """The run-time tokenizer (texts -> int64 [N, context_length])."""
    from engine.models.tokenizer import Tokenizer

    return Tokenizer.from_file(tokenizer_json, spec).encode
