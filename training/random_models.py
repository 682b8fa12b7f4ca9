"""Full-size registry architectures with random weights, exported to model folders.

Benchmarks time these: a random-weight ViT-B-32-256 costs exactly what a trained
one does, and no pretrained weights can be had on build machines.
"""

from __future__ import annotations

from pathlib import Path

from engine.clip_bpe import write_clip_tokenizer_json
from engine.registry import ModelSpec, Source

from .export import export_open_clip


def export_random_weights(spec: ModelSpec, folder: Path, seed: int = 0) -> ModelSpec:
    """Build `spec.architecture` with random weights (seeded) and export it to `folder`."""
    import open_clip
    import torch

    if spec.tokenizer.kind != "clip_bpe":
        raise ValueError(f"{spec.key}: random-weight export supports CLIP BPE tokenizers only")
    torch.manual_seed(seed)
    model = open_clip.create_model(spec.architecture, pretrained=None)
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tok = write_clip_tokenizer_json(folder.parent / f"{folder.name}.tokenizer.json")
    return export_open_clip(model, spec.with_(source=Source()), tok, folder)
