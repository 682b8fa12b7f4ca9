"""Full-size registry architectures with random weights, exported to model folders.

Benchmarks time these: a random-weight ViT-B-32-256 costs exactly what a trained
one does, and no pretrained weights can be had on build machines.
"""

from __future__ import annotations

from pathlib import Path

from engine.models.clip_bpe import write_clip_tokenizer_json
from engine.models.registry import ModelSpec, Source, TokenizerSpec

from ..export.openclip import export_open_clip


def export_random_weights(spec: ModelSpec, folder: Path, seed: int = 0) -> ModelSpec:
    """Build `spec.architecture` with random weights (seeded) and export it to `folder`."""
    import open_clip
    import torch

    name = spec.source.open_clip_name or spec.architecture
    text_cfg = (open_clip.get_model_config(name) or {}).get("text_cfg", {})
    if "hf_tokenizer_name" in text_cfg:
        raise ValueError(f"{spec.key}: random-weight export supports CLIP BPE tokenizers only")
    # open_clip's own tokenizer for the architecture, whatever a ready export ships with it
    spec = spec.with_(tokenizer=TokenizerSpec("clip_bpe", text_cfg.get("context_length", 77)))
    torch.manual_seed(seed)
    model = open_clip.create_model(name, pretrained=None)
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tok = write_clip_tokenizer_json(folder.parent / f"{folder.name}.tokenizer.json")
    return export_open_clip(model, spec.with_(source=Source()), tok, folder)
