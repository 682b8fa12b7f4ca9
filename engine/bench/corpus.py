"""A deterministic corpus of N unique JPEGs made from the real ones in ../shared/data.

The shared test data holds only ~160 real JPEGs; a library-scale measurement needs more
(the issue that asked for the rclip comparison measured 1,160 photos of 0.004-24 MP). This
writes N files from them, each with content of its own, keeping the real size spread:

* three source photos in four appear once as themselves, byte for byte (camera EXIF,
  orientation and all: the real spread, up to the 24 MP panorama);
* every other file is a variant of a source: a random crop keeping 70-100 % of each side,
  a mirror flip half the time, scaled so its long side is one step of ``LADDER`` (64 px to
  2048 px, or the crop as it is), re-encoded at one of five qualities, every sixth one
  progressive.

Content is unique in both tools' sense: photosift identifies a photo by a hash of its bytes
(engine.index.scan.file_hash), rclip 4.0.8 reuses a vector for a file whose SHA-256 of the first
MiB and last KiB (rclip/utils/helpers.py compute_file_hash) and size match another's; the
builder checks both and re-encodes at another quality on a clash. Everything is seeded, so
the same sources and Pillow give the same bytes; the corpus is built once and cached with a
manifest (written last: a half-built corpus is never reused).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

VERSION = 2
SEED = 1160
# Long side of a variant; None keeps the crop's own size (about half the variants stay large).
LADDER = (None, 64, None, 160, None, 400, None, 1024, 2048, None)
QUALITIES = (95, 90, 85, 80, 75)
PER_DIR = 250  # files per sub-folder, like a camera's DCIM tree
SKIP_DIRS = {"odd-files"}  # files made to break decoders: not photos to time


def source_jpegs(root: Path) -> list[Path]:
    """The real JPEGs under ``root`` (every sub-folder but odd-files), content-unique, in a
    seeded order that mixes the folders (so a small corpus is not all from one of them)."""
    root = Path(root)
    found: list[Path] = []
    for d, dirs, files in os.walk(root):
        dirs[:] = sorted(x for x in dirs if x not in SKIP_DIRS)
        found += [Path(d) / f for f in files if f.lower().endswith((".jpg", ".jpeg"))]
    found.sort(key=lambda p: p.relative_to(root).as_posix())
    seen: set[str] = set()
    keep: list[Path] = []
    for p in found:
        h = hashlib.sha256(p.read_bytes()).hexdigest()
        if h in seen:
            continue
        try:
            with Image.open(p) as im:
                if im.format != "JPEG":
                    continue
        except OSError:
            continue
        seen.add(h)
        keep.append(p)
    order = np.random.default_rng(SEED).permutation(len(keep))
    return [keep[i] for i in order]


def rclip_hash(data: bytes) -> str:
    """rclip 4.0.8's duplicate key (rclip/utils/helpers.py compute_file_hash): SHA-256 of the
    first MiB and, for files over 1 KiB, the last KiB."""
    h = hashlib.sha256(data[: 1024 * 1024])
    if len(data) > 1024:
        h.update(data[-1024:])
    return h.hexdigest()


def _variant(src: Path, i: int, rnd: int) -> tuple[Image.Image, str]:
    """Pixels of variant ``i`` (round ``rnd`` over the sources) and what was done."""
    rng = np.random.default_rng([SEED, i])
    with Image.open(src) as im:
        im = ImageOps.exif_transpose(im).convert("RGB")  # upright pixels; the variant has no EXIF
    w, h = im.size
    fw, fh = rng.uniform(0.7, 1.0, 2)
    cw, ch = max(8, int(w * fw)), max(8, int(h * fh))
    x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    im = im.crop((x0, y0, x0 + cw, y0 + ch))
    ops = [f"crop {cw}x{ch}"]
    if rng.random() < 0.5:
        im = ImageOps.mirror(im)
        ops.append("mirror")
    target = LADDER[(i + rnd) % len(LADDER)]
    if target and max(im.size) > target:
        s = target / max(im.size)
        size = (max(1, round(im.width * s)), max(1, round(im.height * s)))
        im = im.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
        ops.append(f"scale {size[0]}x{size[1]}")
    return im, ", ".join(ops)


def _encode(im: Image.Image, quality: int, progressive: bool) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality, progressive=progressive)
    return buf.getvalue()


def _fingerprint(sources: list[Path]) -> list[list]:
    return [[p.name, p.stat().st_size] for p in sources]


def build_corpus(sources: list[Path], n: int, out: Path, log=lambda s: None) -> dict:
    """Write ``n`` unique JPEGs made from ``sources`` under ``out/photos`` (once) and return the
    manifest (also written to ``out/manifest.json``).

    The manifest lists each file with its source, what was done, its size in pixels and bytes,
    and its SHA-256; ``out`` is reused while the version, ``n`` and the sources are the same.
    """
    if not sources:
        raise ValueError("no source JPEGs to build the corpus from")
    out = Path(out)
    fp = _fingerprint(sources)
    manifest_path = out / "manifest.json"
    if manifest_path.is_file():
        m = json.loads(manifest_path.read_text())
        if m.get("version") == VERSION and m.get("n") == n and m.get("sources") == fp:
            return m
    log(f"  writing a corpus of {n} unique JPEGs from {len(sources)} real ones to {out} (once)")
    tmp = out.with_name(out.name + ".part")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    seen_sha: set[str] = set()
    seen_rclip: set[tuple[str, int]] = set()

    def unique(data: bytes) -> bool:
        return (hashlib.sha256(data).hexdigest() not in seen_sha
                and (rclip_hash(data), len(data)) not in seen_rclip)  # fmt: skip

    files = []
    for i in range(n):
        rnd, j = divmod(i, len(sources))
        src = sources[j]
        data = src.read_bytes() if rnd == 0 and j % 4 != 3 else b""
        if data and unique(data):
            with Image.open(io.BytesIO(data)) as probe:  # upright size, without decoding
                orientation = probe.getexif().get(0x0112, 1)
                size = probe.size[::-1] if orientation in (5, 6, 7, 8) else probe.size
            op = "original" + (f", EXIF orientation {orientation}" if orientation != 1 else "")
        else:
            im, op = _variant(src, i, rnd)
            progressive = i % 6 == 5
            for attempt in range(2 * len(QUALITIES)):  # a clash is rare: try other qualities
                q = QUALITIES[(i + attempt) % len(QUALITIES)] - attempt // len(QUALITIES)
                data = _encode(im, q, progressive)
                if unique(data):
                    break
            else:
                raise RuntimeError(f"could not make a unique variant {i} of {src}")
            size = im.size
            op += f", quality {q}" + (", progressive" if progressive else "")
        sha = hashlib.sha256(data).hexdigest()
        seen_sha.add(sha)
        seen_rclip.add((rclip_hash(data), len(data)))
        rel = f"{i // PER_DIR:03d}/IMG_{i:05d}.jpg"
        dest = tmp / "photos" / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
        files.append(dict(path=rel, source=src.name, op=op, width=size[0], height=size[1],
                          bytes=len(data), sha256=sha))  # fmt: skip
    mp = sorted(f["width"] * f["height"] / 1e6 for f in files)
    m = dict(version=VERSION, n=n, sources=fp, files=files,
             mp_min=round(mp[0], 4), mp_p25=round(mp[len(mp) // 4], 3), mp_median=round(mp[len(mp) // 2], 3),
             mp_p75=round(mp[3 * len(mp) // 4], 3), mp_max=round(mp[-1], 2),
             total_mb=round(sum(f["bytes"] for f in files) / 1e6, 1))  # fmt: skip
    (tmp / "manifest.json").write_text(json.dumps(m, indent=1))
    tmp.replace(out)
    return m


def corpus_stats(m: dict) -> str:
    """One line saying what the corpus is."""
    full = sum(1 for f in m["files"] if f["op"].startswith("original"))
    return (f"{m['n']} JPEGs of {m['mp_min']}-{m['mp_max']} MP (quartiles {m['mp_p25']} / {m['mp_median']} / "
            f"{m['mp_p75']}), {m['total_mb']} MB, {full} of them real photos as they are")  # fmt: skip
