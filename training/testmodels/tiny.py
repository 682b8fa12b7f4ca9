"""Tiny random open_clip models, per architecture family, for tests.

Each family keeps the real model's building blocks and open_clip config (same
tower classes, pooling, norms, activations, tokenizer kind) and only shrinks
widths, depths and the image size, so an export or runtime bug that depends on
the architecture shows up in a model that builds in a fraction of a second:

``vit-b-32-256``        open_clip ViT-B-32-256 (CLIP ViT, CLIP BPE, argmax pooling)
``mobileclip2-s0``      MobileCLIP2-S0: timm FastViT MCi0 (MobileOne / RepMixer blocks,
                        re-parameterisable, BatchNorm) + non-causal text tower
``vit-b-16-siglip2-256`` ViT-B-16-SigLIP2-256: timm SigLIP ViT with MAP pooling, custom
                        text tower with last-token pooling, Gemma-style HF tokenizer

Random initialisation is perturbed where the real initialisation makes a tower
nearly blind to its input (FastViT's layer scales start at 1e-5), so a parity
test on these models can actually fail.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from engine.models.registry import ModelSpec, Preprocess, Source, TokenizerSpec

FAMILIES = ("vit-b-32-256", "mobileclip2-s0", "vit-b-16-siglip2-256")

# Real open_clip name and pretrained tag of each family: preprocessing and the
# tower configs are taken from open_clip's own tables for these.
REAL = {
    "vit-b-32-256": ("ViT-B-32-256", "datacomp_s34b_b86k"),
    "mobileclip2-s0": ("MobileCLIP2-S0", "dfndr2b"),
    "vit-b-16-siglip2-256": ("ViT-B-16-SigLIP2-256", "webli"),
}

EMBED_DIM = 32
_TIMM_TINY = {
    "mobileclip2-s0": "photosift_tiny_fastvit_mci0",
    "vit-b-16-siglip2-256": "photosift_tiny_vit_siglip",
}
_register_lock = threading.Lock()


@dataclass
class TinyModel:
    """A tiny random open_clip model with its spec and tokenizer.json."""

    family: str
    model: Any  # open_clip CLIP / CustomTextCLIP, in eval mode
    spec: ModelSpec
    tokenizer_json: Path


def _register_timm_tiny() -> None:
    """Register tiny variants of the two timm vision trunks (once per process)."""
    import timm
    from timm.models import register_model

    with _register_lock:
        if timm.is_model(_TIMM_TINY["mobileclip2-s0"]):
            return
        from functools import partial

        from timm.models.fastvit import RepConditionalPosEnc, _create_fastvit
        from timm.models.vision_transformer import _create_vision_transformer

        def photosift_tiny_fastvit_mci0(pretrained: bool = False, **kwargs):
            # MCi0's block recipe (MobileOne stem, RepMixer stages, SE, conditional
            # positional encoding, attention in the last stage), one block per stage.
            args = dict(
                layers=(1, 1, 1, 1),
                embed_dims=(8, 16, 32, 64),
                mlp_ratios=(3, 3, 3, 3),
                se_downsamples=(False, False, True, True),
                pos_embs=(None, None, None, partial(RepConditionalPosEnc, spatial_shape=(7, 7))),
                token_mixers=("repmixer", "repmixer", "repmixer", "attention"),
                lkc_use_act=True,
            )
            return _create_fastvit("fastvit_mci0", pretrained=False, **dict(args, **kwargs))

        def photosift_tiny_vit_siglip(pretrained: bool = False, **kwargs):
            args = dict(
                img_size=32,
                patch_size=8,
                embed_dim=EMBED_DIM,
                depth=1,
                num_heads=2,
                class_token=False,
                global_pool="map",
            )
            return _create_vision_transformer(
                "vit_base_patch16_siglip_256", pretrained=False, **dict(args, **kwargs)
            )

        register_model(photosift_tiny_fastvit_mci0)
        register_model(photosift_tiny_vit_siglip)


def _shrunk_cfg(family: str, text_vocab: int) -> dict[str, Any]:
    import open_clip

    name, _ = REAL[family]
    cfg = open_clip.get_model_config(name)
    vision, text = dict(cfg["vision_cfg"]), dict(cfg["text_cfg"])
    text.update(width=32, heads=2, layers=1, vocab_size=text_vocab)
    if family == "vit-b-32-256":
        vision.update(image_size=32, layers=1, width=32, head_width=16, patch_size=8)
    elif family == "mobileclip2-s0":
        # 64 px: the trunk downsamples 32x, leaving 2x2 for the attention stage.
        vision.update(image_size=64, timm_model_name=_TIMM_TINY[family])
    else:
        vision.update(image_size=32, timm_model_name=_TIMM_TINY[family])
    return dict(embed_dim=EMBED_DIM, vision_cfg=vision, text_cfg=text)


def _perturb(model, seed: int) -> None:
    """Make random weights input-sensitive and give BatchNorm non-trivial statistics."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("gamma") or ".layer_scale" in name:  # FastViT layer scales: 1e-5
                p.copy_(0.5 + 0.5 * torch.rand(p.shape, generator=g))
        for m in model.visual.modules():
            # Variance-preserving weights: timm's small init makes deep random conv
            # trunks map every image to nearly the same vector.
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) / fan_in**0.5)
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                # Eval-mode BN is a per-channel affine map; identity statistics
                # would let a graph that skipped or mis-fused it pass a parity check.
                m.running_mean.copy_(0.2 * torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))
                m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=g))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))


def _spec(family: str, size: int) -> ModelSpec:
    import open_clip

    name, tag = REAL[family]
    pcfg = open_clip.get_pretrained_cfg(name, tag)
    ctx = open_clip.get_model_config(name)["text_cfg"].get("context_length", 77)
    hf_kind = family == "vit-b-16-siglip2-256"
    return ModelSpec(
        key=f"tiny-{family}",
        name=f"Tiny random {name}",
        family="siglip" if hf_kind else "clip",
        architecture=name,
        embed_dim=EMBED_DIM,
        preprocess=Preprocess(
            size=(size, size),
            mean=tuple(pcfg["mean"]),
            std=tuple(pcfg["std"]),
            interpolation=pcfg["interpolation"],
            resize_mode=pcfg["resize_mode"],
        ),
        tokenizer=TokenizerSpec(kind="hf" if hf_kind else "clip_bpe", context_length=ctx),
        source=Source(open_clip_name=name),
        license="Apache-2.0",
        description="Random weights, for tests only.",
    )


def build_tiny(family: str, workdir: Path, seed: int = 0) -> TinyModel:
    """Build the tiny model of ``family``; its tokenizer.json is written into ``workdir``."""
    import open_clip
    import torch

    if family not in FAMILIES:
        raise ValueError(f"unknown tiny family {family!r}; known: {FAMILIES}")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    _register_timm_tiny()
    tok_path = workdir / f"tokenizer-{family}.json"
    if family == "vit-b-16-siglip2-256":
        from tokenizers import Tokenizer

        if not tok_path.is_file():
            write_tiny_gemma_tokenizer(tok_path, context_length=64)
        vocab = Tokenizer.from_file(str(tok_path)).get_vocab_size()
    else:
        if not tok_path.is_file():
            from engine.models.clip_bpe import write_clip_tokenizer_json

            write_clip_tokenizer_json(tok_path)
        vocab = 49408
    torch.manual_seed(seed)
    name, _ = REAL[family]
    cfg = _shrunk_cfg(family, vocab)
    model = open_clip.create_model(name, pretrained=None, **cfg)
    _perturb(model, seed)
    model.eval()
    size = cfg["vision_cfg"]["image_size"]
    return TinyModel(family, model, _spec(family, size), tok_path)


def with_key(tiny: TinyModel, key: str) -> TinyModel:
    """The same tiny model under another registry key."""
    return replace(tiny, spec=tiny.spec.with_(key=key))


# A few hundred words of photo-caption English: enough for a BPE with real sub-words.
_CORPUS = [
    "",
    "a photo of a cat sitting on a red sofa in the living room",
    "two dogs playing in the snow at the park",
    "kids on a red slide at dusk with their parents watching",
    "a bowl of ramen with egg and green onions on a wooden table",
    "the skyline of a city at night with lights reflecting in the river",
    "a receipt from the grocery store on the kitchen counter",
    "a whiteboard covered in diagrams after a meeting",
    "mountains and a lake at sunrise with mist over the water",
    "a birthday cake with candles and balloons behind it",
    "an old car parked on a narrow street in the rain",
    "people walking on the beach at sunset near the waves",
    "a close up of a flower with a bee on it in the garden",
    "",
]


def write_tiny_gemma_tokenizer(
    path: Path, context_length: int = 64, vocab_size: int = 600, *, raw: bool = False
) -> Path:
    """A small tokenizer.json shaped like SigLIP 2's Gemma tokenizer, as open_clip uses it.

    Gemma's layout: ``<pad>`` 0, ``<eos>`` 1, ``<bos>`` 2, ``<unk>`` 3, spaces as
    ``▁``, BPE with byte fallback; open_clip's SigLIP 2 tokenizer appends
    ``<eos>`` (no ``<bos>``), pads with ``<pad>`` to 64, and canonicalises text,
    which is baked into the normaliser (see ``tokenizer_json``). ``raw=True``
    writes it as a hub repo would hold it (nothing baked, no fixed length), the
    input of transformers and of ``tokenizer_json.open_clip_tokenizer_json``.
    """
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )

    from ..export.tokenizer_json import bake_clean, configure_fixed_length

    specials = ["<pad>", "<eos>", "<bos>", "<unk>"] + [f"<0x{b:02X}>" for b in range(256)]
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Replace(" ", "▁")
    tok.pre_tokenizer = pre_tokenizers.Split("▁", behavior="merged_with_next")
    tok.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, show_progress=False, min_frequency=1
    )
    tok.train_from_iterator([line for line in _CORPUS if line] * 3, trainer=trainer)
    eos = tok.token_to_id("<eos>")
    tok.post_processor = processors.TemplateProcessing(
        single="$A <eos>", special_tokens=[("<eos>", eos)]
    )
    if not raw:
        bake_clean(tok, "canonicalize")
        configure_fixed_length(tok, context_length, tok.token_to_id("<pad>"), "<pad>")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tok.save(str(tmp))
    tmp.replace(path)
    return path


def write_tiny_hf_tokenizer_repo(folder: Path) -> Path:
    """The tokenizer files of a hub repo: the raw tokenizer.json plus transformers' config for it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_tiny_gemma_tokenizer(folder / "tokenizer.json", raw=True)
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "pad_token": "<pad>",
        "eos_token": "<eos>",
        "bos_token": "<bos>",
        "unk_token": "<unk>",
        "padding_side": "right",
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    return folder


def save_open_clip_dir(tiny: TinyModel, folder: Path) -> Path:
    """Lay out ``tiny`` as an open_clip hub repo: open_clip_config.json, weights, tokenizer files.

    This is what ``open_clip.create_model("local-dir:...")`` and photosift's hub
    conversion read, so tests can exercise that path offline.
    """

    import open_clip
    from safetensors.torch import save_model

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    name, _ = REAL[tiny.family]
    model_cfg = dict(open_clip.get_model_config(name))
    model_cfg.update(_shrunk_cfg(tiny.family, _text_vocab(tiny)))
    p = tiny.spec.preprocess
    preprocess_cfg = {
        "size": list(p.size),
        "mean": list(p.mean),
        "std": list(p.std),
        "interpolation": p.interpolation,
        "resize_mode": p.resize_mode,
    }
    if tiny.spec.tokenizer.kind == "hf":
        # The hub repo's own files: the raw tokenizer and transformers' config for it.
        model_cfg["text_cfg"]["hf_tokenizer_name"] = str(folder)
        write_tiny_hf_tokenizer_repo(folder)
    config = {"model_cfg": model_cfg, "preprocess_cfg": preprocess_cfg}
    (folder / "open_clip_config.json").write_text(json.dumps(config, indent=2))
    save_model(tiny.model, str(folder / "open_clip_model.safetensors"))
    return folder


def _text_vocab(tiny: TinyModel) -> int:
    text = getattr(tiny.model, "text", None)
    if text is not None and hasattr(text, "vocab_size"):
        return int(text.vocab_size)
    return int(tiny.model.token_embedding.num_embeddings)
