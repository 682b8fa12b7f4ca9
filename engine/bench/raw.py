"""Camera RAW decoding cost per file: the embedded preview, a half-size demosaic, and a JPEG of
the same picture at the same size, as indexing decodes them (for a model input of ``SIDE`` px).

Files: the RAWs in ``--photos`` (default ../shared/data/raw/real), plus (without ``--quick``) a
24-megapixel DNG written here with a full-size JPEG preview, the size of today's cameras (the
shared real files are 0.4-3 MP). For each file, each path is timed ``REPS`` times and the median
kept, wall and CPU (LibRaw demosaics on several threads):

* preview: what indexing does when the embedded preview is big enough (LibRaw extracts the
  JPEG, Pillow decodes it with DCT scaling);
* demosaic: unpack + half-size demosaic, the path for RAWs without a usable preview;
* jpeg: the same picture saved as a JPEG of the RAW's full size, decoded like any JPEG.

Ratios to the JPEG are what matter: absolute numbers move with the machine (its CPU flags and
load are printed beside them).
"""

from __future__ import annotations

import functools
import os
import statistics
import tempfile
import time
from pathlib import Path

from ..errors import DecodeError
from ..photos.decode import DEFAULT_MAX_PIXELS, _embedded_jpeg, decode_photo
from ..photos.formats import is_raw
from ..photos.raw import decode_raw, libraw_version

SIDE = 256  # the input of the recommended model (ViT-B-32-256)
REPS = 5


def _raw_folder(args) -> Path:
    if args.photos:
        return Path(args.photos)
    from .common import default_photos

    try:
        return default_photos().parent / "raw" / "real"
    except SystemExit as e:
        raise SystemExit(f"{e} (for RAW files: --photos DIR of RAW files)") from None


def _timed(fn, reps: int) -> tuple[float, float, object]:
    """Median wall and CPU milliseconds of ``fn()`` over ``reps`` runs, and its last result."""
    walls, cpus, got = [], [], None
    for _ in range(reps):
        c, t = time.process_time(), time.perf_counter()
        got = fn()
        walls.append((time.perf_counter() - t) * 1e3)
        cpus.append((time.process_time() - c) * 1e3)
    return statistics.median(walls), statistics.median(cpus), got


def _camera_sized(folder: Path, log) -> Path:
    """A 6000 x 4000 DNG (uncompressed 16-bit CFA, 48 MB) with a full-size JPEG preview."""
    import numpy as np
    from PIL import Image

    from .dngfile import write_dng

    log("  writing a 24 MP DNG with a full-size preview (6000 x 4000)")
    rng = np.random.default_rng(0)
    small = rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)
    pic = Image.fromarray(small).resize((6000, 4000), Image.Resampling.BICUBIC)
    return write_dng(folder / "camera_24mp.dng", pic, preview=pic)


def run(args, out=None) -> dict:
    from .common import bench_log
    from .int8 import cpu_flags

    log = bench_log(out)
    folder = _raw_folder(args)
    files = sorted(p for p in folder.iterdir() if p.is_file() and is_raw(p.name))
    reps = 2 if args.quick else REPS
    jpeg = functools.partial(_embedded_jpeg, max_pixels=DEFAULT_MAX_PIXELS)
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    log(f"raw bench: LibRaw {libraw_version()}, model side {SIDE} px, {reps} runs per path "
        f"(median); CPU flags: {cpu_flags()}; {os.cpu_count()} cores; load average "
        f"{' '.join(f'{x:.2f}' for x in load) if load else '?'}")  # fmt: skip
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if not args.quick:
            files.append(_camera_sized(tmp, log))
        for p in files:
            try:
                decode_raw(p, side=SIDE, max_pixels=DEFAULT_MAX_PIXELS, decode_jpeg=jpeg)  # warm-up
                w_in, _, chosen = _timed(lambda p=p: decode_raw(p, side=SIDE, max_pixels=DEFAULT_MAX_PIXELS,
                                                               decode_jpeg=jpeg), reps)  # fmt: skip
                w_dm, c_dm, demosaiced = _timed(lambda p=p: decode_raw(p, side=SIDE, max_pixels=DEFAULT_MAX_PIXELS,
                                                             decode_jpeg=jpeg, use_preview=False), reps)  # fmt: skip
                full = decode_raw(p, side=0, max_pixels=DEFAULT_MAX_PIXELS, decode_jpeg=jpeg).image
            except DecodeError as e:
                log(f"  {p.name}: not decodable ({e})")
                continue
            same = tmp / f"{p.name}.jpg"
            full.save(same, quality=90)
            decode_photo(same, target=(SIDE, SIDE))  # warm-up
            w_jp, c_jp, _ = _timed(lambda s=same: decode_photo(s, target=(SIDE, SIDE)), reps)
            row = dict(file=p.name, width=full.width, height=full.height, source=chosen.source,
                       index_ms=round(w_in, 1), demosaic_ms=round(w_dm, 1),
                       demosaic_cpu_ms=round(c_dm, 1), demosaic=demosaiced.source.split()[-1],
                       jpeg_ms=round(w_jp, 1),
                       jpeg_cpu_ms=round(c_jp, 1))  # fmt: skip
            if chosen.source == "preview":
                row["preview_ms"] = row["index_ms"]
            rows.append(row)
            pv = f"preview {row['preview_ms']:7.1f}" if "preview_ms" in row else "preview       -"
            log(f"  {p.name[:38]:38s} {full.width:5d}x{full.height:<5d} {pv}  "
                f"demosaic ({row['demosaic']}) {w_dm:7.1f} (CPU {c_dm:7.1f})  jpeg {w_jp:6.1f} (CPU {c_jp:6.1f}) ms  "
                f"-> indexing takes the {chosen.source}")  # fmt: skip
    with_preview = [r for r in rows if "preview_ms" in r]
    res = dict(
        libraw=libraw_version(), side=SIDE, cpu_flags=cpu_flags(), cores=os.cpu_count(),
        load=[round(x, 2) for x in load] if load else None, files=rows,
        preview_over_jpeg=_median_ratio(with_preview, "preview_ms"),
        demosaic_over_jpeg=_median_ratio(rows, "demosaic_ms"),
        indexing_over_jpeg=_median_ratio(rows, "index_ms"),
    )  # fmt: skip
    log(f"  median per file, against a JPEG of the same size: preview x{res['preview_over_jpeg']}, "
        f"half-size demosaic x{res['demosaic_over_jpeg']}, what indexing does x{res['indexing_over_jpeg']}")  # fmt: skip
    return res


def _median_ratio(rows: list[dict], key: str) -> float | None:
    ratios = [r[key] / r["jpeg_ms"] for r in rows if r.get(key) and r["jpeg_ms"] > 0]
    return round(statistics.median(ratios), 2) if ratios else None
