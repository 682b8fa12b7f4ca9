"""The rclip bench's corpus builder (engine.bench.corpus) and its Python finder: no rclip, no
model, no timing; generated source JPEGs, so the shared data is not needed either."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.bench.corpus import build_corpus, rclip_hash, source_jpegs
from engine.index.scan import file_hash

SIZES = [(40, 30), (320, 240), (1600, 1200), (2000, 500), (600, 900)]


def _sources(folder: Path) -> list[Path]:
    rng = np.random.default_rng(7)
    for i, (w, h) in enumerate(SIZES):
        # smooth gradients plus a block, so crops and rescales give different pixels
        yy, xx = np.mgrid[0:h, 0:w]
        px = np.stack([(xx * 255 // w), (yy * 255 // h), np.full_like(xx, 40 * i)], -1).astype(
            np.uint8
        )
        y, x = int(rng.integers(0, h // 2)), int(rng.integers(0, w // 2))
        px[y : y + h // 4, x : x + w // 4] = rng.integers(0, 255, 3)
        sub = folder / ("a" if i % 2 else "b")
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(px).save(sub / f"src{i}.jpg", quality=92)
    odd = folder / "odd-files"
    odd.mkdir()
    (odd / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    (folder / "a" / "copy.JPG").write_bytes((folder / "b" / "src0.jpg").read_bytes())  # a duplicate
    (folder / "a" / "notes.txt").write_text("not a photo")
    return source_jpegs(folder)


def test_sources_skip_odd_files_duplicates_and_non_jpegs(tmp_path):
    src = _sources(tmp_path / "data")
    assert len(src) == len(SIZES)  # the copy counts once, the broken one and the text not at all
    assert len({p.read_bytes() for p in src}) == len(SIZES)
    assert not any("odd-files" in p.parts for p in src)


def test_corpus_unique_deterministic_and_spread(tmp_path):
    src = _sources(tmp_path / "data")
    n = 24
    m1 = build_corpus(src, n, tmp_path / "c1")
    m2 = build_corpus(src, n, tmp_path / "c2")
    files = sorted((tmp_path / "c1" / "photos").rglob("*.jpg"))
    assert len(files) == n == len(m1["files"])
    # deterministic: the same sources give the same bytes
    assert [f["sha256"] for f in m1["files"]] == [f["sha256"] for f in m2["files"]]
    # unique content in both tools' sense
    data = [f.read_bytes() for f in files]
    assert len({file_hash(os.fspath(f)) for f in files}) == n
    assert len({(rclip_hash(d), len(d)) for d in data}) == n
    assert [hashlib.sha256(d).hexdigest() for d in data] == [f["sha256"] for f in m1["files"]]
    # every file decodes, and its recorded size is right
    for f, meta in zip(files, m1["files"], strict=True):
        with Image.open(f) as im:
            im.load()
            assert im.size == (meta["width"], meta["height"])
    # the size spread is kept: tiny ones, and the largest source at full size
    mp = [f["width"] * f["height"] for f in m1["files"]]
    assert min(mp) <= 64 * 64
    assert max(mp) >= 0.3 * max(w * h for w, h in SIZES)
    assert any(f["op"].startswith("original") for f in m1["files"])
    assert len({f["width"] for f in m1["files"]}) > n // 2


def test_corpus_is_reused_and_rebuilt_when_asked_for_another_size(tmp_path):
    src = _sources(tmp_path / "data")
    out = tmp_path / "c"
    build_corpus(src, 6, out)
    stamp = (out / "manifest.json").stat().st_mtime_ns
    build_corpus(src, 6, out)
    assert (out / "manifest.json").stat().st_mtime_ns == stamp  # cached, not rewritten
    m = build_corpus(src, 9, out)
    assert len(list((out / "photos").rglob("*.jpg"))) == 9 == m["n"]


def test_no_python_for_rclip_says_what_to_do(tmp_path, monkeypatch):
    from engine.bench.rclip import SetupError, find_python

    monkeypatch.setenv("PATH", os.fspath(tmp_path))  # no python3.12 / python3.13 here
    monkeypatch.setenv("PYENV_ROOT", os.fspath(tmp_path / "no-pyenv"))
    monkeypatch.delenv("PHOTOSIFT_RCLIP_PYTHON", raising=False)
    with pytest.raises(SetupError, match=r"needs Python 3\.12 or 3\.13 .*--rclip-python"):
        find_python()
    with pytest.raises(SetupError, match="not a working Python 3.12"):
        find_python(os.fspath(tmp_path / "nope"))
