"""A tiny random transformers SigLIP 2 NaFlex model, for tests and benchmarks.

Same classes as ``google/siglip2-base-patch16-naflex`` (``Siglip2Model``: linear
patch embedding, square position table resized per photo, MAP head, text tower
pooled at the last token), shrunk to width 32 and one layer. ``save_hf_dir``
lays it out as the hub repo holds the real one (config.json, model.safetensors,
preprocessor_config.json, tokenizer.json, tokenizer_config.json), which is what
photosift's hub conversion reads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.models.registry import ModelSpec, Preprocess, Source, TokenizerSpec

from .tiny import write_tiny_gemma_tokenizer, write_tiny_hf_tokenizer_repo

WIDTH = 32


@dataclass
class TinyNaflex:
    model: Any  # transformers Siglip2Model, eval mode
    spec: ModelSpec
    tokenizer_json: Path  # baked (canonicalised, fixed length), as a model folder carries


def tiny_config(vocab: int, *, width: int = WIDTH, layers: int = 1, heads: int = 2,
                patch_size: int = 8, base: int = 8):  # fmt: skip
    from transformers import Siglip2Config

    common = dict(hidden_size=width, intermediate_size=2 * width, num_hidden_layers=layers,
                  num_attention_heads=heads)  # fmt: skip
    return Siglip2Config(
        text_config=dict(
            common,
            vocab_size=vocab,
            max_position_embeddings=64,
            pad_token_id=0,
            bos_token_id=2,
            eos_token_id=1,
        ),  # fmt: skip
        vision_config=dict(common, patch_size=patch_size, num_patches=base * base),
    )


def tiny_spec(key: str, width: int, patch_size: int, max_patches: int) -> ModelSpec:
    return ModelSpec(
        key=key,
        name="Tiny random SigLIP 2 NaFlex",
        family="siglip",
        architecture="SigLIP2-NaFlex (transformers Siglip2Model, tiny)",
        embed_dim=width,
        preprocess=Preprocess(
            size=(patch_size, patch_size),
            mean=(0.5, 0.5, 0.5),
            std=(0.5, 0.5, 0.5),
            interpolation="bilinear",
            resize_mode="naflex",
            patch_size=patch_size,
            max_patches=max_patches,
        ),
        tokenizer=TokenizerSpec(kind="hf", context_length=64),
        source=Source(),
        license="Apache-2.0",
        description="Random weights, for tests only.",
    )


def perturb(model: Any, seed: int = 0) -> None:
    """Variance-preserving random weights: transformers' small init maps every photo to
    nearly the same vector, and a parity check on such a model could not fail."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.Linear):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) / m.weight.shape[1] ** 0.5)
                if m.bias is not None:
                    m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
        for name, p in model.named_parameters():
            if name.endswith("position_embedding.weight") or name.endswith("probe"):
                p.copy_(torch.randn(p.shape, generator=g))
            elif "attention.in_proj_weight" in name:
                p.copy_(torch.randn(p.shape, generator=g) / p.shape[1] ** 0.5)


def build_tiny_naflex(workdir: Path, *, seed: int = 0, key: str = "tiny-siglip2-naflex",
                      max_patches: int = 64, **config) -> TinyNaflex:  # fmt: skip
    """Build the tiny NaFlex model; its tokenizer.json is written into ``workdir``."""
    import torch
    from tokenizers import Tokenizer
    from transformers import Siglip2Model

    workdir = Path(workdir)
    tok = workdir / "tokenizer-siglip2-naflex.json"
    if not tok.is_file():
        write_tiny_gemma_tokenizer(tok, context_length=64)
    vocab = Tokenizer.from_file(str(tok)).get_vocab_size()
    cfg = tiny_config(vocab, **config)
    torch.manual_seed(seed)
    model = Siglip2Model(cfg)
    perturb(model, seed)
    model.eval()
    v = cfg.vision_config
    spec = tiny_spec(key, v.hidden_size, v.patch_size, max_patches)
    return TinyNaflex(model, spec, tok)


def save_hf_dir(tiny: TinyNaflex, folder: Path) -> Path:
    """Lay ``tiny`` out as its hub repo: transformers weights, processor and tokenizer files."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tiny.model.save_pretrained(str(folder), safe_serialization=True)
    p = tiny.spec.preprocess
    processor = {
        "image_processor_type": "Siglip2ImageProcessor",
        "processor_class": "Siglip2Processor",
        "do_normalize": True,
        "do_rescale": True,
        "do_resize": True,
        "image_mean": list(p.mean),
        "image_std": list(p.std),
        "max_num_patches": p.max_patches,
        "patch_size": p.patch_size,
        "resample": 2,
        "rescale_factor": 1 / 255,
    }
    (folder / "preprocessor_config.json").write_text(json.dumps(processor, indent=2))
    write_tiny_hf_tokenizer_repo(folder)
    return folder
