"""What the benchmarks share: test photos and full-size random-weight models.

No pretrained weights can be had on build machines, and none are needed for
timing: a random-weight ViT-B-32-256 costs exactly what a trained one does.
The model is exported once (this needs the training extra) and cached.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..models.registry import Registry, resources_dir


def default_photos() -> Path:
    p = resources_dir().parent.parent / "shared" / "data" / "photos"
    if not p.is_dir():
        raise SystemExit(f"benchmark photos not found at {p}; pass --photos DIR")
    return p


def photos_folder(args) -> Path:
    """The bench's photo folder: ``--photos`` or the shared test photos."""
    return Path(args.photos) if args.photos else default_photos()


def bench_log(out):
    """A line logger writing to ``out`` (flushed: benches are watched live), or a no-op."""
    return (lambda s: print(s, file=out, flush=True)) if out else (lambda s: None)


def cache_dir() -> Path:
    base = os.environ.get("PHOTOSIFT_BENCH_CACHE")
    if base:
        return Path(base)
    import platformdirs

    return Path(platformdirs.user_cache_dir("photosift", appauthor=False)) / "bench-models"


def random_weight_folder(key: str, log=print) -> Path:
    """A model folder with the registry model's architecture and random weights (built once)."""
    folder = cache_dir() / key
    if (folder / "model.json").is_file():
        return folder
    spec = Registry.load().get(key)
    log(
        f"  exporting a random-weight {spec.architecture} for timing (once; needs the training extra)"
    )
    try:
        from training.testmodels.full_size import export_random_weights
    except ImportError as e:
        raise SystemExit(f"this benchmark needs the training extra to build its model: {e}") from e
    export_random_weights(spec, folder)
    return folder


def bench_model(key: str, *, log=print, text: bool = True, image: bool = True, int8: bool = False):
    """OnnxModel of the random-weight folder; int8=True quantises its image tower once."""
    from ..models.runtime import OnnxModel

    folder = random_weight_folder(key, log)
    if int8:
        from ..models.quantize import current_settings, int8_settings, quantize_folder

        made = folder / "image.int8.onnx"
        # A graph cached by an older version (other settings) is made again, not timed.
        if not made.is_file() or int8_settings(made) != current_settings():
            log("  quantising the image tower to int8 (once per setting)")
            quantize_folder(folder)
    return OnnxModel(folder, int8=int8, load_text=text, load_image=image)
