"""A fine-tuned model as a model folder: a candidate until the user accepts it.

The folder is a model folder like any other (``engine.models.registry``): model.json,
text.onnx (the fine-tuned text tower, exported and checked against torch),
tokenizer.json (the base's) and image.onnx, which is the base's own file, hard-linked
(no gigabytes copied; a copy only where the file system cannot link). Its spec keeps
the base's image space, so every stored image vector stays valid: switching to the
fine-tuned model re-embeds nothing. The base model folder is only ever read.

The folder is assembled in ``<out>.tmp`` and renamed to ``out`` when complete, so a
cancelled or crashed run never leaves a folder that looks finished.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
import shutil
from pathlib import Path
from typing import Any

from engine.finetune.dataset import TrainingSet
from engine.models.registry import MODEL_FILE, ModelSpec, Source, save_spec
from engine.models.registry import file_sha256 as _sha256

from ..export.openclip import export_text_tower
from .siglit import FinetuneResult

LINKED_FILES = ("image.onnx", "image.int8.onnx")


def link_or_copy(src: Path, dst: Path) -> str:
    """Hard-link ``src`` to ``dst`` (same bytes, no space used); copy where linking fails."""
    try:
        os.link(src, dst)
        return "hardlink"
    except OSError:  # another file system, or one without hard links
        shutil.copyfile(src, dst)
        return "copy"


def candidate_key(base_key: str, source: str, when: dt.datetime | None = None) -> str:
    """``<base>-ft-<what it learned from>-<yyyymmdd-hhmmss>``: new versions never collide."""
    when = when or dt.datetime.now()
    what = source.split(":", 1)[-1].rstrip("/\\")
    what = re.sub(r"[^a-z0-9]+", "-", Path(what).name.lower()).strip("-")[:32] or "tags"
    return f"{base_key}-ft-{what}-{when:%Y%m%d-%H%M%S}"


def write_candidate(
    model: Any,
    base: ModelSpec,
    base_folder: Path,
    data: TrainingSet,
    result: FinetuneResult,
    out: Path,
    *,
    key: str | None = None,
) -> ModelSpec:
    """Write the fine-tuned model (text side of ``model``) as a model folder at ``out``."""
    out = Path(out)
    base_folder = Path(base_folder)
    now = dt.datetime.now(dt.UTC)
    key = key or candidate_key(base.key, data.source, now.astimezone())
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        spec = base.with_(key=key)
        report = export_text_tower(model, spec, base_folder / "tokenizer.json", tmp / "text.onnx")
        shutil.copyfile(base_folder / "tokenizer.json", tmp / "tokenizer.json")
        how = {
            f: link_or_copy(base_folder / f, tmp / f)
            for f in LINKED_FILES
            if (base_folder / f).is_file()
        }
        files = {
            f: {"sha256": _sha256(tmp / f), "size": (tmp / f).stat().st_size}
            for f in ("text.onnx", "tokenizer.json", "image.onnx")
        }
        m = result.metrics
        labels = ", ".join(data.labels[:5]) + (" ..." if len(data.labels) > 5 else "")
        extra: dict[str, Any] = {k: base.extra[k] for k in ("world",) if k in base.extra}
        extra["finetune"] = {
            "base_model": base.key,
            "data_source": data.source,
            "data_fingerprint": data.fingerprint(),
            "labels": data.labels,
            "photos": int(len(data.image_ids)),
            "date": now.isoformat(timespec="seconds"),
            "method": "SigLIT: image tower locked, text side trained with the sigmoid loss",
            "settings": result.settings,
            "metrics": m,
            "history": result.history,
            "image_tower": how,
        }
        extra["export"] = report
        bias = getattr(model, "logit_bias", None)
        spec = spec.with_(
            name=f"{base.name} + fine-tuned on {data.source.split(':', 1)[-1]}",
            description=(
                f"{base.name} with its text side fine-tuned on {len(data.image_ids)} photos "
                f"({len(data.labels)} labels: {labels}); image tower and image vectors unchanged. "
                f"Validation mAP {m['map_before']:.3f} -> {m['map_after']:.3f}."
            ),
            image_space=base.space,
            base_model=base.key,
            source=Source(files=files),
            size_mb=round((tmp / "text.onnx").stat().st_size / 2**20, 2),
            logit_scale=float(math.exp(float(model.logit_scale.detach().reshape(-1)[0]))),
            logit_bias=None if bias is None else float(bias.detach().reshape(-1)[0]),
            tag_threshold=None,  # the base's was measured for its scale and bias, not these
            extra=extra,
        )
        save_spec(spec, tmp / MODEL_FILE)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return spec
