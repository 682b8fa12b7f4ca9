"""Converting downloaded weights to ONNX, once, for models nobody publishes an export of:
open_clip weights (``open_clip_config.json`` + safetensors) and transformers SigLIP 2 NaFlex
checkpoints. That needs torch (the training extra), which the engine never imports, so the
conversion runs as a child process, ``python -m training.export.convert`` (the frozen
bundle's ``--convert`` role, engine.child), and writes the model folder.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from .. import child
from ..errors import ModelError, ModelNotAvailable, PhotosiftError
from ..settings import Settings
from .registry import MODEL_FILE, ModelSpec, save_spec

CHILD_MODULE = "training.export.convert"
FROZEN_ROLE = "--convert"  # packaging/photosift_entry.py: the frozen bundle's conversion child
NOT_HERE = 3  # the child's exit status when it cannot import the exporter (no training extra)


def convert_open_clip(spec: ModelSpec, settings: Settings, weights_dir: Path) -> Path:
    """One-time ONNX export of downloaded open_clip weights (needs the training extra)."""
    out = settings.models_dir / spec.key
    _convert("open_clip", spec, weights_dir, out, no_converter_message(spec))
    return out


def can_convert_open_clip() -> bool:
    """Whether open_clip weights can be converted to ONNX here (the training extra is installed;
    the lean installers leave it out). Finds the modules without importing them."""
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("torch", "open_clip"))


def no_converter_message(spec: ModelSpec) -> str:
    how = ("the photosift installer with training (the '-train' download)" if getattr(sys, "frozen", False)
           else "the training extra: pip install 'photosift[train]'")  # fmt: skip
    return (
        f"model {spec.key!r} ({spec.name}) comes as open_clip weights and needs a one-time "
        f"conversion to ONNX, which needs {how}. Or export it on a machine that has that and "
        f"import the folder (Models > Import folder, or `photosift models import FOLDER`)."
    )


def convert_transformers_naflex(spec: ModelSpec, settings: Settings, weights_dir: Path) -> Path:
    """One-time ONNX export of a downloaded SigLIP 2 NaFlex checkpoint (needs the training extra)."""
    out = settings.models_dir / spec.key
    _convert("naflex", spec, weights_dir, out,
             f"model {spec.key!r} was downloaded as transformers weights ({weights_dir}) and needs a "
             f"one-time conversion to ONNX, which needs the training extra: "
             f"pip install 'photosift[train]'. Or import an exported folder with `photosift models import`.")  # fmt: skip
    return out


def _convert(kind: str, spec: ModelSpec, weights_dir: Path, out: Path, not_here: str) -> None:
    """Run the conversion child; raise what it reports (``not_here`` when it has no exporter)."""
    with tempfile.TemporaryDirectory(prefix="photosift-convert-") as tmp:
        spec_file = Path(tmp) / MODEL_FILE
        save_spec(spec, spec_file)
        cmd = [*child.child_command(CHILD_MODULE, FROZEN_ROLE), kind, "--spec", str(spec_file),
               "--weights", str(weights_dir), "--out", str(out)]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, env=child.child_env())
    log = proc.stderr.decode("utf-8", "replace")
    sys.stderr.write(log)  # the exporter's log, where it went when the engine ran it itself
    if proc.returncode == 0:
        return
    if proc.returncode == NOT_HERE:
        raise ModelNotAvailable(not_here)
    try:
        report = json.loads(proc.stdout.decode("utf-8").strip().splitlines()[-1])
    except (ValueError, IndexError):
        report = {}
    error = {"model_error": ModelError, "not_available": ModelNotAvailable, "error": PhotosiftError}
    if report.get("error") in error:
        raise error[report["error"]](report.get("message") or f"converting {spec.key} failed")
    last = next((line for line in reversed(log.splitlines()) if line.strip()), "")
    raise ModelError(f"{spec.key}: converting the downloaded weights to ONNX failed "
                     f"(the conversion process ended with status {proc.returncode}): {last}")  # fmt: skip
