"""Graphs photosift derives from a model's own (engine.models.textcut: a text tower cut to each
text's length; engine.models.freebatch: a tower fixed to batch 1 freed to take any batch), and
the decision file that remembers, per source graph, what was derived and proved.

A decision holds for one source graph: its recorded sha256, or (a folder that records none,
such as a benchmark's own export) its size, mtime and inode; and for one version of the
derivation, so that a photosift that derives differently derives again."""

from __future__ import annotations

import json
import os
from pathlib import Path

DATA_SUFFIX = ".data"  # a derived graph's weights: <graph>.data beside it


def source_key(folder: Path, file: str, files: dict[str, dict]) -> str:
    """What identifies source graph ``file`` of a model folder: its recorded sha256, else
    its size, mtime and inode."""
    want = (files.get(file) or {}).get("sha256")
    if want:
        return want
    st = (Path(folder) / file).stat()
    return f"stat:{st.st_size}:{st.st_mtime_ns}:{st.st_ino}"


def read_decision(path: Path, source: str, version: int) -> dict | None:
    """The decision made for the source graph ``source`` by derivation ``version``, or None
    (none yet, for another file, or by another version: decided again)."""
    try:
        d = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(d, dict) or d.get("source_sha256") != source or d.get("version") != version:
        return None
    return d


def write_decision(path: Path, source: str, version: int, found: dict | None) -> None:
    """Remember ``found`` (``{"graph": file, ...}``; None: nothing derived) for ``source``."""
    d = {"source_sha256": source, "version": version, **(found or {"graph": None})}
    tmp = Path(path).with_name(Path(path).name + ".tmp")
    tmp.write_text(json.dumps(d), encoding="utf-8")
    tmp.replace(path)


def stamp(path: Path) -> dict:
    """A derived file's sha256 and size, as model.json records a file."""
    from .registry import file_sha256

    return {"sha256": file_sha256(path), "size": Path(path).stat().st_size}


def save_graph(model, dst: Path, stage: Path) -> None:
    """Write ONNX ``model`` to ``dst`` with its weights in ``dst.data`` beside it, by way of the
    folder ``stage`` (on the same file system), so that neither file is ever seen half written.
    ONNX Runtime maps such a weights file instead of copying it into its own memory (measured
    on the ViT-B/32 text tower: 0.22 s to load against 0.49 s, peak RSS 229 MB against 417 MB).
    A graph whose weights are all small gets no data file (and loses a stale one)."""
    import onnx

    dst = Path(dst)
    onnx.save_model(model, os.fspath(stage / dst.name), save_as_external_data=True,
                    all_tensors_to_one_file=True, location=dst.name + DATA_SUFFIX,
                    size_threshold=1024)  # fmt: skip
    data = stage / (dst.name + DATA_SUFFIX)
    if data.exists():
        data.replace(dst.with_name(data.name))
    else:
        dst.with_name(data.name).unlink(missing_ok=True)
    (stage / dst.name).replace(dst)
